"""A mu-conditioned model in canonical mode against canonical ED labels (issue 22).

For each canonical ED dataset (``nearsight generate --filling N`` without ``--mu-window``: per-frame ``mu`` is ED's
solved ``mu*``, fields are the canonical fields), the model runs in canonical mode at the dataset's filling and
reports: ``mu*`` error against ED (max and RMS over frames), the count held (max ``|N - N_e| / N_e``), and the
transverse-field error ``RMS(h_perp_ML - h_perp_ED) / RMS(h_perp_ED)`` pooled, and for disordered (t < 10) and
ordered frames; also the same in grand-canonical mode at ED's ``mu*`` (they agree: canonical = grand at mu*).

    OMP_NUM_THREADS=1 python benchmarks/canonical_ml_check.py --model runs/mu/m.pt out/mu22/test12_canonical.h5 ...
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from nearsight import Lattice
from nearsight.fields import transverse_rms_ratio
from nearsight.io import read_dataset
from nearsight.ml import MLProvider, load_model


def check(model_path: str, path: str, split_time: float, batch: int) -> dict:
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
    for i in range(len(S)):                   # grand canonical at ED's mu*, one frame at a time
        hg.append(MLProvider(net, lat, mu=float(np.clip(mu_ed[i], *net.window)))(S[i]).fields.numpy())
    mu_ml, n_ml, h_ml, h_g = np.concatenate(mus), np.concatenate(ns), np.concatenate(hs), np.stack(hg)
    dis = t < split_time
    ratio = lambda m, h: transverse_rms_ratio(h[m], h_ed[m], S[m]) if m.any() else float("nan")  # noqa: E731
    return {"dataset": path, "lattice": f"{lat.L1}x{lat.L2}", "frames": len(S), "n_electrons": can.n_electrons,
            "mu_ed_range": [float(mu_ed.min()), float(mu_ed.max())],
            "mu_err_max": float(np.abs(mu_ml - mu_ed).max()), "mu_err_rms": float(np.sqrt(((mu_ml - mu_ed) ** 2).mean())),
            "mu_err_mean": float((mu_ml - mu_ed).mean()),
            "count_rel_err_max": float(np.abs(n_ml - can.n_electrons).max() / can.n_electrons),
            "field_ratio": ratio(np.ones(len(S), bool), h_ml), "field_ratio_disordered": ratio(dis, h_ml),
            "field_ratio_ordered": ratio(~dis, h_ml), "frames_disordered": int(dis.sum()),
            "field_ratio_grand_at_ed_mu": ratio(np.ones(len(S), bool), h_g),
            "seconds_canonical": sec, "newton_evaluations_last_batch": evals[-1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("datasets", nargs="+")
    p.add_argument("--split-time", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(1)
    for d in a.datasets:
        print(json.dumps(check(a.model, d, a.split_time, a.batch), indent=1))


if __name__ == "__main__":
    main()
