"""A mu-conditioned model in canonical mode against canonical ED labels (issue 22).

For each canonical ED dataset (``nearsight generate --filling N`` without ``--mu-window``: per-frame ``mu`` is ED's
solved ``mu*``, fields are the canonical fields), the model runs in canonical mode at the dataset's filling and
reports: ``mu*`` error against ED (max and RMS over frames), the count held (max ``|N - N_e| / N_e``), and the
transverse-field error ``RMS(h_perp_ML - h_perp_ED) / RMS(h_perp_ED)`` pooled, and for disordered (t < 10) and
ordered frames; also the same in grand-canonical mode at ED's ``mu*`` (they agree: canonical = grand at mu*).

A grand-canonical ED dataset at one fixed ``mu`` (``--mu``, or a relabel spec with ``mu:``) is checked in
grand-canonical mode at that ``mu`` instead: the field error (pooled, t < split, t >= split) and the count per site
against ED's. ``--reference MODEL`` (e.g. the fixed-mu model ``square-double-exchange``) is scored on the same
frames beside it, so "nothing is lost in grand-canonical mode" is a side-by-side figure.

    OMP_NUM_THREADS=1 python benchmarks/canonical_ml_check.py --model runs/mu/m.pt out/mu22/test12_canonical.h5 ...
    OMP_NUM_THREADS=1 python benchmarks/canonical_ml_check.py --model square-double-exchange-canonical \
        --reference square-double-exchange data/canon/test16_mu44.h5 data/canon/test20_mu44.h5
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

from nearsight import Lattice
from nearsight.fields import transverse_rms_ratio
from nearsight.io import atomic_path, read_dataset
from nearsight.ml import MLProvider, load_model

#: the issue-22 bar on the mu* error: within this of ED's on every frame
MU_BAR = 0.02


def check_grand(model_path: str, path: str, split_time: float, batch: int, reference: str | None) -> dict:
    """Grand-canonical mode at the dataset's fixed ``mu`` against fixed-mu ED labels (and ``reference`` beside it)."""
    arrays, attrs = read_dataset(path)
    mu = float(attrs["mu"])
    lat = Lattice(attrs["lattice"], int(attrs["L1"]), int(attrs.get("L2") or attrs["L1"]))
    S, h_ed, t = arrays["spins"], arrays["fields"], arrays["time"]
    dis = t < split_time
    ratio = lambda m, h: transverse_rms_ratio(h[m], h_ed[m], S[m]) if m.any() else float("nan")  # noqa: E731
    out = {"dataset": path, "lattice": f"{lat.L1}x{lat.L2}", "frames": len(S), "mu": mu,
           "frames_disordered": int(dis.sum())}
    for key, name in (("model", model_path), ("reference", reference)):
        if name is None:
            continue
        net = load_model(name, lat)
        if getattr(net, "window", None) is None and net.card.get("mu") != mu:
            raise SystemExit(f"{name}: a fixed-mu model at mu = {net.card.get('mu')}, the labels are at mu = {mu}")
        prov = MLProvider(net, lat, mu=mu) if getattr(net, "window", None) is not None else MLProvider(net, lat)
        rs = [prov(S[i:i + batch]) for i in range(0, len(S), batch)]
        h = np.concatenate([r.fields.numpy() for r in rs])
        out[key] = {"name": name, "field_ratio": ratio(np.ones(len(S), bool), h),
                    "field_ratio_disordered": ratio(dis, h), "field_ratio_ordered": ratio(~dis, h)}
        if "n_electrons" in rs[0].extras and "n_electrons" in arrays:
            n = np.concatenate([r.extras["n_electrons"].numpy() for r in rs])
            out[key]["count_err_per_site_rms"] = float(np.sqrt(((n - arrays["n_electrons"]) ** 2).mean()) / lat.N)
    return out


def plot_frames(t, dmu, dn, path: str, title: str) -> None:
    """Per frame against time: the ``mu*`` error, the count error per site at ED's ``mu*``, and the model's secant
    ``dN/dmu`` per site between the two (``-dn / dmu``; frames with ``|dmu| < 1e-3`` left out): the ``mu*`` error is
    the count error over that slope."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ax[0].plot(t, np.abs(dmu), "o", ms=3)
    ax[0].axhline(MU_BAR, color="k", ls=":", lw=1, label=f"{MU_BAR} (issue 22)")
    ax[0].set(xlabel="t", ylabel="|mu*_ML - mu*_ED|", title=title)
    ax[0].legend(fontsize=8)
    ax[1].plot(t, np.abs(dn), "o", ms=3)
    ax[1].set(xlabel="t", ylabel="|N_ML(mu*_ED) - N_e| / N", title="count error at ED's mu*")
    ok = np.abs(dmu) >= 1e-3
    ax[2].semilogy(t[ok], -dn[ok] / dmu[ok], "o", ms=3)
    ax[2].set(xlabel="t", ylabel="dN/dmu per site (secant)", title="compressibility")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def check(model_path: str, path: str, split_time: float, batch: int, reference: str | None = None,
          frames_csv: str | None = None) -> dict:
    arrays, attrs = read_dataset(path)
    if attrs.get("filling") is None or "mu" not in arrays:
        raise SystemExit(f"{path}: not a canonical ED dataset with per-frame mu (filling {attrs.get('filling')})")
    lat = Lattice(attrs["lattice"], int(attrs["L1"]), int(attrs.get("L2") or attrs["L1"]))
    net = load_model(model_path, lat)
    can = MLProvider(net, lat, filling=float(attrs["filling"]))
    S, h_ed, mu_ed, t = arrays["spins"], arrays["fields"], arrays["mu"], arrays["time"]
    mus, ns, hs, hg, evals = [], [], [], [], []
    t0 = time.perf_counter()
    for i in range(0, len(S), batch):
        r = can(S[i:i + batch])
        mus.append(r.extras["mu"].numpy())
        ns.append(r.extras["n_electrons"].numpy())
        hs.append(r.fields.numpy())
        evals.append(can.last_evaluations)
    sec = time.perf_counter() - t0
    ng = []
    for i in range(len(S)):                   # grand canonical at ED's mu*, one frame at a time
        rg = MLProvider(net, lat, mu=float(np.clip(mu_ed[i], *net.window)))(S[i])
        hg.append(rg.fields.numpy())
        ng.append(float(rg.extras["n_electrons"].reshape(-1)[0]))
    mu_ml, n_ml, h_ml, h_g = np.concatenate(mus), np.concatenate(ns), np.concatenate(hs), np.stack(hg)
    # the count error at ED's mu* (per site) and the model's dN/dmu between the two mu: mu* error = count error / slope
    dn_g = (np.asarray(ng) - can.n_electrons) / lat.N
    if frames_csv:
        err = lambda h, i: transverse_rms_ratio(h[i:i + 1], h_ed[i:i + 1], S[i:i + 1])  # noqa: E731
        with atomic_path(frames_csv) as tmp, open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["frame", "time", "mu_ed", "mu_ml", "count_err_per_site_at_mu_ed", "field_error",
                        "field_error_at_mu_ed"])
            w.writerows([i, float(t[i]), float(mu_ed[i]), float(mu_ml[i]), float(dn_g[i]), err(h_ml, i), err(h_g, i)]
                        for i in range(len(S)))
        plot_frames(t, mu_ml - mu_ed, dn_g, frames_csv[:-4] + ".png", f"{Path(path).stem}: {lat.L1}x{lat.L2}")
    dis, far = t < split_time, np.abs(mu_ml - mu_ed) > MU_BAR
    ratio = lambda m, h: transverse_rms_ratio(h[m], h_ed[m], S[m]) if m.any() else float("nan")  # noqa: E731
    ref = {}
    if reference is not None:                # e.g. a canonical-label model, run in its card's ensemble
        rp = MLProvider(load_model(reference, lat), lat)
        h_r = np.concatenate([rp(S[i:i + batch]).fields.numpy() for i in range(0, len(S), batch)])
        ref = {"reference": {"name": reference, "field_ratio": ratio(np.ones(len(S), bool), h_r),
                             "field_ratio_disordered": ratio(dis, h_r), "field_ratio_ordered": ratio(~dis, h_r)}}
    return {**ref, "dataset": path, "lattice": f"{lat.L1}x{lat.L2}", "frames": len(S), "n_electrons": can.n_electrons,
            "mu_ed_range": [float(mu_ed.min()), float(mu_ed.max())],
            "mu_err_max": float(np.abs(mu_ml - mu_ed).max()), "mu_err_rms": float(np.sqrt(((mu_ml - mu_ed) ** 2).mean())),
            "mu_err_mean": float((mu_ml - mu_ed).mean()),
            "count_rel_err_max": float(np.abs(n_ml - can.n_electrons).max() / can.n_electrons),
            "field_ratio": ratio(np.ones(len(S), bool), h_ml), "field_ratio_disordered": ratio(dis, h_ml),
            "field_ratio_ordered": ratio(~dis, h_ml), "frames_disordered": int(dis.sum()),
            "field_ratio_grand_at_ed_mu": ratio(np.ones(len(S), bool), h_g),
            # the frames whose mu* misses ED's by more than the bar: their fields at the model's mu* and at ED's mu*
            f"frames_mu_err_over_{MU_BAR}": int(far.sum()), "field_ratio_there": ratio(far, h_ml),
            "field_ratio_grand_at_ed_mu_there": ratio(far, h_g),
            "count_err_per_site_at_ed_mu_rms": float(np.sqrt((dn_g ** 2).mean())),
            "count_err_per_site_at_ed_mu_max": float(np.abs(dn_g).max()),
            "seconds_canonical": sec, "newton_evaluations_last_batch": evals[-1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("datasets", nargs="+")
    p.add_argument("--split-time", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", default=None, metavar="PREFIX",
                   help="canonical datasets: write PREFIX_<dataset>.csv, one row per frame (time, ED's and the "
                        "model's mu*, the model's count error per site at ED's mu*, the field error in canonical "
                        "mode and grand-canonically at ED's mu*), and "
                        "PREFIX_<dataset>.png (those against time, with the secant dN/dmu)")
    p.add_argument("--reference", default=None, help="a second model scored beside --model on the same frames, in its card's ensemble "
                                                        "(fixed-mu datasets: at the dataset's mu)")
    a = p.parse_args()
    torch.set_num_threads(1)
    for d in a.datasets:
        if read_dataset(d)[1].get("mu") is not None:
            print(json.dumps(check_grand(a.model, d, a.split_time, a.batch, a.reference), indent=1))
        else:
            frames = f"{a.frames}_{Path(d).stem}.csv" if a.frames else None
            print(json.dumps(check(a.model, d, a.split_time, a.batch, a.reference, frames), indent=1))


if __name__ == "__main__":
    main()
