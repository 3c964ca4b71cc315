"""Voltage-driven domain-wall motion: NEGF-LLG, the generalized-potential model trained on NEGF labels, ML-LLG.

    python examples/domain_wall.py STEP configs/driven/domain_wall.yaml [--install]

STEP is one of
  reference  NEGF-LLG runs of each wall of the config at each bias (trajectories with fields, resumable)
  snapshots  NEGF labels on random walls (position, width, tilt, noise, bias): training and held-out sets
  train      fit the generalized-potential model (with its spin-transfer part) on the training snapshots;
             --install copies it into the package as the shipped model named in the config
  validate   held-out transverse-field error on the held-out snapshots and on every frame of the NEGF-LLG runs
  compare    ML-LLG from the same walls at the same biases: wall position against time, velocity against bias
             (ML vs NEGF, with fit errors), time per step, and an ML run on a strip several times longer; plots
  floor      the nearsightedness floor of the NEGF labels against radius (what a local model cannot beat)
  thermal    the same with thermal noise: replica ensembles of NEGF-LLG and ML-LLG (independent noise), velocity
             mean +- standard error against bias
  all        every step in turn
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from nearsight.analysis.locality import locality_profile
from nearsight.analysis.walls import wall_position, wall_velocity
from nearsight.datasets.snapshots import draw_snapshots
from nearsight.dynamics.run import run_llg
from nearsight.electrons import AnisotropyProvider, NEGFProvider
from nearsight.errors import NearsightError
from nearsight.fields import SumProvider
from nearsight.fields import transverse_rms_ratio as rms_ratio
from nearsight.io import open_h5, read_attrs, read_dataset, write_dataset
from nearsight.trajectory import read_trajectory
from nearsight.lattice import Strip
from nearsight.ml.driven import (GeneralizedMLProvider, GeneralizedPotentialModel, generalized_card, load_generalized,
                                 save_generalized)
from nearsight.providers import build_provider
from nearsight.training.driven import fit_generalized
from nearsight.states import domain_wall, normalize


def load_config(path: str) -> dict:
    if not os.path.exists(path):
        raise NearsightError(f"config {path!r} does not exist (see configs/driven/domain_wall.yaml)")
    with open(path) as fh:
        return yaml.safe_load(fh)


def strip_of(cfg, Lx=None) -> Strip:
    return Strip(int(Lx or cfg["strip"]["Lx"]), int(cfg["strip"]["Ly"]))


def negf(cfg, bias: float, strip=None) -> NEGFProvider:
    return build_provider({"lattice": strip or strip_of(cfg), "solver": "negf", **cfg["model"], "bias": bias,
                           "wide_band": cfg.get("wide_band"), "tol": float(cfg.get("negf_tol", 1e-6))})


def anisotropy(cfg, lattice) -> AnisotropyProvider:
    a = cfg["anisotropy"]
    return AnisotropyProvider(lattice, a["K"], a.get("axis", (0, 0, 1)))


def driven(cfg, model=None):
    """``provider_for_bias(V, strip)``: NEGF electrons (``model=None``) or the ML model, plus the anisotropy."""
    if model is None:
        return lambda V, st: SumProvider(negf(cfg, V, st), anisotropy(cfg, st))
    return lambda V, st: SumProvider(GeneralizedMLProvider(model, st, bias=V), anisotropy(cfg, st))


def paths(cfg) -> dict:
    out, data, name = cfg["out"], cfg["data"], cfg["name"]
    os.makedirs(out, exist_ok=True)
    os.makedirs(data, exist_ok=True)
    return {**{sp: os.path.join(data, f"{name}_{sp}.h5") for sp, *_ in splits(cfg)},
            "model": os.path.join(out, f"{name}.pt"), "model_vw": os.path.join(out, f"{name}-no-transfer.pt"),
            "out": out}


def ref_path(cfg, solver: str, bias: float, k: int, Lx=None) -> str:
    tag = f"_L{Lx}" if Lx else ""
    return os.path.join(cfg["out"], f"{solver}{tag}_V{bias:g}_wall{k}.h5")


def initial_wall(cfg, w: dict, strip: Strip) -> np.ndarray:
    shift = (strip.Lx - int(cfg["strip"]["Lx"])) / 2.0        # a longer strip: the same wall, centred the same way
    return domain_wall(strip, w["x0"] + shift, w["width"], phi=w.get("phi", 0.0))


def source_of(model=None) -> str:
    """What made a run: ``negf``, or an ML model file (its SHA-256 prefix). Runs are cached by path; a cached run
    made by another source (a retrained model) is run again."""
    if model is None:
        return "negf"
    with open(model.card["path"], "rb") as fh:
        return "model:" + hashlib.sha256(fh.read()).hexdigest()[:16]


def cached(path: str, source: str) -> bool:
    """True if ``path`` holds a finished run made by ``source`` (files from before sources were recorded count as
    NEGF runs); a run by another source is deleted."""
    if not os.path.exists(path):
        return False
    with open_h5(path, "trajectory") as f:
        made_by = read_attrs(f).get("source", "negf")
    if made_by == source:
        return True
    print(f"{path} was made by another model: running it again")
    os.remove(path)
    return False


def run_walls(cfg, provider_for_bias, solver: str, Lx=None, steps=None, biases=None, source="negf") -> dict:
    """LLG from each wall of the config at each bias; returns {(bias, k): (times, X, wall_s, steps)}."""
    L = cfg["llg"]
    strip = strip_of(cfg, Lx)
    out = {}
    for bias in (biases or cfg["biases"]):
        prov = provider_for_bias(float(bias), strip)
        for k, w in enumerate(cfg["walls"]):
            path = ref_path(cfg, solver, bias, k, Lx)
            n = int(steps or L["steps"])
            done = cached(path, source)
            if not done:
                t0 = time.perf_counter()
                run_llg(prov, initial_wall(cfg, w, strip), steps=n, dt=L["dt"], alpha=L["alpha"], kT=L["kT"],
                        every=L["every"], out=path, resume=os.path.exists(path + ".partial"), progress=True,
                        attrs={"wall": json.dumps(w), "config_name": cfg["name"], "source": source})
                wall_s = time.perf_counter() - t0
            arrays, attrs = read_trajectory(path)
            X = wall_position(arrays["spins"][:, 0], strip.Lx, strip.Ly)
            out[(float(bias), k)] = (arrays["time"], X, None if done else wall_s, n)
            v, dv = wall_velocity(arrays["time"], X)
            print(f"{solver:>4s} Lx={strip.Lx} V={bias:g} wall {k}: X {X[0]:.2f} -> {X[-1]:.2f}, "
                  f"v = {v:.5f} +- {dv:.5f}" + ("" if done else f"  ({wall_s:.0f} s)"))
    return out


# ------------------------------------------------------------------------------------------------- steps
def step_reference(cfg, args):
    run_walls(cfg, driven(cfg), "negf")


def step_snapshots(cfg, args):
    """NEGF labels on random walls: uniform position, width, tilt and bias, plus Gaussian noise on the spins."""
    sc, P = cfg["snapshots"], paths(cfg)
    strip = strip_of(cfg)
    per = int(sc.get("per_call", 8))
    for split, count, seed, ranges in splits(cfg):
        sr = {**sc, **ranges}                       # this file's ranges (a more_train entry may narrow them)
        if os.path.exists(P[split]):
            print(f"{P[split]} exists; delete it to regenerate")
            continue
        S_all, H_all, E_all, V_all, I_all = [], [], [], [], []
        calls = draw_snapshots(sr, strip, np.random.default_rng(seed), count, per)
        for V, draws in tqdm(calls, total=(count + per - 1) // per, desc=f"NEGF {split} snapshots"):
            S = np.stack([d[2] for d in draws])
            r = negf(cfg, V, strip).compute(torch.as_tensor(S))
            S_all.append(S)
            H_all.append(r.fields.numpy())
            E_all.append(r.energy.numpy())
            V_all.append(np.full(per, V))
            I_all.append(r.extras["charge_current"][:, 0].numpy())
        write_dataset(P[split], np.concatenate(S_all), np.concatenate(H_all), np.concatenate(E_all),
                      trajectory=np.repeat(np.arange(len(S_all)), per),
                      attrs={"lattice": "strip", "L1": strip.Lx, "L2": strip.Ly, **cfg["model"],
                             "wide_band": cfg.get("wide_band") or 0.0, "solver": "negf", "split": split},
                      extra={"bias": np.concatenate(V_all), "charge_current": np.concatenate(I_all)})
        print(f"wrote {P[split]}: {len(np.concatenate(V_all))} labelled configurations")


def noise_amplitudes(cfg, split="val") -> np.ndarray:
    """The noise amplitude of each configuration of a snapshot file (replayed from its seed; no NEGF)."""
    sc = cfg["snapshots"]
    (_, count, seed, ranges), = [sp for sp in splits(cfg) if sp[0] == split]
    calls = draw_snapshots({**sc, **ranges}, strip_of(cfg), np.random.default_rng(seed), count,
                           int(sc.get("per_call", 8)))
    return np.array([d[1] for _, draws in calls for d in draws])


def splits(cfg) -> list:
    """(name, count, seed, ranges) of each snapshot file: the training sets (``train`` with ``seed``, then each entry
    of ``more_train``, which may narrow the ranges ``bias``, ``noise``, ``x0``, ``width`` to add data where the
    model errs most) and the held-out set ``val`` (``val_seed``, the full ranges); each file has its own random
    stream."""
    sc, keys = cfg["snapshots"], ("bias", "noise", "x0", "width")
    out = [("train", int(sc["train"]), int(sc["seed"]), {})]
    out += [(f"train{k + 2}", int(m["count"]), int(m["seed"]), {key: m[key] for key in keys if key in m})
            for k, m in enumerate(sc.get("more_train") or [])]
    return out + [("val", int(sc["val"]), int(sc["val_seed"]), {})]


def _load_labels(*files):
    parts = [read_dataset(f)[0] for f in files]
    return tuple(torch.as_tensor(np.concatenate([a[k] for a in parts])) for k in ("spins", "fields", "bias"))



def predict(model, S, V, chunk=64):
    return torch.cat([model.fields(S[k:k + chunk], V[k:k + chunk]).to(torch.float64)
                      for k in range(0, len(S), chunk)])


def step_train(cfg, args):
    """Fit the model of the config; with ``fit.ablation`` also the same model without its spin-transfer part."""
    if args.only != "ablation":
        train_one(cfg, args, cfg["fit"]["spin_transfer"], paths(cfg)["model"])
    if cfg["fit"].get("ablation") and args.only != "model":
        train_one(cfg, argparse.Namespace(install=False), False, paths(cfg)["model_vw"])


def train_one(cfg, args, transfer, model_path: str):
    """Fit one model (``transfer``: the ``spin_transfer`` setting: false, true or a list of stencils) and save it."""
    P, f = paths(cfg), cfg["fit"]
    train_files = [P[sp] for sp, *_ in splits(cfg) if sp != "val"]
    S, H, V = _load_labels(*train_files)
    torch.manual_seed(int(f.get("seed", 0)))
    model = GeneralizedPotentialModel(strip_of(cfg), f["descriptor"], hidden=tuple(f["hidden"]),
                                      lead_scales=tuple(f["lead_scales"]), spin_transfer=transfer,
                                      column_range=int(f.get("column_range", 0)))
    t0 = time.perf_counter()
    hist = fit_generalized(model, S, H, V, epochs=int(f["epochs"]), lr=float(f["lr"]),
                           batch_size=int(f["batch_size"]), seed=int(f.get("seed", 0)))
    train_s = time.perf_counter() - t0
    Sv, Hv, Vv = _load_labels(P["val"])
    held = rms_ratio(predict(model, Sv, Vv), Hv, Sv)
    print(f"spin_transfer={transfer}: trained {f['epochs']} epochs in {train_s:.0f} s: training error {100 * hist['transverse_rms_ratio']:.2f}%, "
          f"held-out snapshots {100 * held:.2f}%")
    m = cfg["model"]
    card = generalized_card(model, name=cfg["name"], t=m["t"], J=m["J"], kT=m["kT"], mu=m["mu"],
                            wide_band=cfg.get("wide_band"), biases=list(cfg["snapshots"]["bias"]),
                            anisotropy=dict(cfg["anisotropy"], note="the system's classical easy-axis term: not "
                                            "learned, add AnisotropyProvider"),
                            training_data={"datasets": [os.path.basename(f) for f in train_files], "frames": len(S),
                                           "epochs": int(f["epochs"]), "train_seconds": round(train_s, 1),
                                           "train_rms_ratio": hist["transverse_rms_ratio"]},
                            held_out={"datasets": [os.path.basename(P["val"])], "transverse_rms_ratio": held})
    save_generalized(model_path, model, card)
    print(f"wrote {model_path}")
    if args.install:
        from nearsight.ml.cards import MODELS_DIR
        dest = os.path.join(MODELS_DIR, f"{cfg['name']}.pt")
        shutil.copyfile(model_path, dest)
        with open(os.path.join(MODELS_DIR, f"{cfg['name']}.card.json"), "w") as fh:       # the card, readable
            json.dump(card, fh, indent=1)
            fh.write("\n")
        print(f"installed {dest} and its card")


def ml_model(cfg, which="model"):
    P = paths(cfg)
    if not os.path.exists(P[which]):
        raise NearsightError(f"{P[which]} does not exist; run the train step first")
    return load_generalized(P[which])


def step_validate(cfg, args):
    for which in ("model", "model_vw"):
        if which == "model" or os.path.exists(paths(cfg)[which]):
            print(f"== {paths(cfg)[which]}")
            validate_one(cfg, ml_model(cfg, which))


def validate_one(cfg, model):
    P = paths(cfg)
    Sv, Hv, Vv = _load_labels(P["val"])
    Hp = predict(model, Sv, Vv)
    print(f"held-out snapshots ({len(Sv)}): transverse-field RMS error ratio {100 * rms_ratio(Hp, Hv, Sv):.2f}%")
    amp = torch.as_tensor(noise_amplitudes(cfg))
    for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 1.7)):
        sel = (Vv >= lo) & (Vv < hi)
        if sel.any():
            noisy = sel & (amp > 0.17)
            line = f"  bias in [{lo:g}, {hi:g}): {100 * rms_ratio(Hp[sel], Hv[sel], Sv[sel]):.2f}% ({int(sel.sum())})"
            if noisy.any():
                line += f"; noise > 0.17: {100 * rms_ratio(Hp[noisy], Hv[noisy], Sv[noisy]):.2f}% ({int(noisy.sum())})"
            print(line)
    print("frames of the NEGF-LLG runs (never trained on):")
    for bias in cfg["biases"]:
        for k in range(len(cfg["walls"])):
            path = ref_path(cfg, "negf", bias, k)
            if not os.path.exists(path):
                continue
            arrays, _ = read_trajectory(path)
            S = torch.as_tensor(arrays["spins"][:, 0])
            H = torch.as_tensor(arrays["fields"][:, 0])
            H = H - anisotropy(cfg, strip_of(cfg)).compute(S).fields
            Hp = predict(model, S, torch.full((len(S),), float(bias), dtype=torch.float64))
            print(f"  V={bias:g} wall {k}: {100 * rms_ratio(Hp, H, S):.2f}% over {len(S)} frames")


def step_compare(cfg, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    model = ml_model(cfg)
    ml = driven(cfg, model)
    ref = run_walls(cfg, driven(cfg), "negf")
    got = run_walls(cfg, ml, "ml", source=source_of(model))
    if os.path.exists(paths(cfg)["model_vw"]):          # the ablation: V and W only, no spin-transfer part
        vw = ml_model(cfg, "model_vw")
        print("ML without the spin-transfer part (V and W only):")
        run_walls(cfg, driven(cfg, vw), "ml-vw", source=source_of(vw), biases=[max(cfg["biases"])])
    print(f"\n{'V':>5s} {'wall':>4s} {'v NEGF':>18s} {'v ML':>18s} {'z':>6s}")
    rows = []
    for key in sorted(ref):
        vn, dn = wall_velocity(*ref[key][:2])
        vm, dm = wall_velocity(*got[key][:2])
        z = (vm - vn) / np.hypot(dn, dm)
        rows.append((key[0], key[1], vn, dn, vm, dm))
        print(f"{key[0]:5.2f} {key[1]:4d} {vn:10.5f} +- {dn:.5f} {vm:10.5f} +- {dm:.5f} {z:6.2f}")
    # time per step, NEGF vs ML on the same strip, and ML on a strip several times longer
    L, st = cfg["llg"], strip_of(cfg)
    s0 = initial_wall(cfg, cfg["walls"][0], st)
    timing = {}
    for name, prov in (("negf", driven(cfg)(1.0, st)), ("ml", ml(1.0, st))):
        t0 = time.perf_counter()
        run_llg(prov, s0, steps=5, dt=L["dt"], alpha=L["alpha"], progress=False)
        timing[name] = (time.perf_counter() - t0) / 5
    Llong = int(cfg["compare"]["long_Lx"])
    run_walls(cfg, ml, "ml", Lx=Llong, steps=int(cfg["compare"]["long_steps"]), biases=[1.0],
              source=source_of(model))
    stl = strip_of(cfg, Llong)
    t0 = time.perf_counter()
    run_llg(ml(1.0, stl), initial_wall(cfg, cfg["walls"][0], stl), steps=5, dt=L["dt"], alpha=L["alpha"],
            progress=False)
    timing["ml_long"] = (time.perf_counter() - t0) / 5
    t0 = time.perf_counter()
    negf(cfg, 1.0, stl).compute(torch.as_tensor(initial_wall(cfg, cfg["walls"][0], stl)))
    timing["negf_long_eval"] = time.perf_counter() - t0
    print(f"\ntime per LLG step (Heun, 2 field evaluations) on {st.Lx}x{st.Ly}: NEGF {timing['negf']:.3f} s, "
          f"ML {timing['ml']:.4f} s, ratio {timing['negf'] / timing['ml']:.0f}x")
    print(f"ML on {Llong}x{st.Ly} ({Llong // st.Lx}x longer): {timing['ml_long']:.4f} s per step; one NEGF "
          f"evaluation there: {timing['negf_long_eval']:.2f} s (a step is two)")
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.2))
    for i, key in enumerate(sorted(ref)):
        c = f"C{i}"
        ax[0].plot(ref[key][0], ref[key][1], "-", color=c, label=f"V={key[0]:g} wall {key[1]} NEGF")
        ax[0].plot(got[key][0], got[key][1], "--", color=c, label="ML" if i == 0 else None)
    ax[0].set_title(f"{st.Lx}x{st.Ly} strip: NEGF-LLG (solid) and ML-LLG (dashed)", fontsize=9)
    ax[0].set_xlabel("t (hbar/t)")
    ax[0].set_ylabel("wall position X")
    ax[0].legend(fontsize=6)
    rows = np.array(rows)
    for k, mk in ((0, "o"), (1, "s")):
        r = rows[rows[:, 1] == k]
        ax[1].errorbar(r[:, 0] - 0.01, r[:, 2], r[:, 3], fmt=mk, color="C0", label=f"NEGF wall {k}")
        ax[1].errorbar(r[:, 0] + 0.01, r[:, 4], r[:, 5], fmt=mk, mfc="none", color="C3", label=f"ML wall {k}")
    ax[1].axhline(0, color="0.7", lw=0.5)
    ax[1].set_xlabel("bias V")
    ax[1].set_ylabel("wall velocity dX/dt")
    ax[1].legend(fontsize=7)
    arrays, _ = read_trajectory(ref_path(cfg, "ml", 1.0, 0, Llong))
    from nearsight.analysis.walls import wall_profile
    mz = wall_profile(arrays["spins"][:, 0], Llong, st.Ly)                               # [frames, Lx]
    t = arrays["time"]
    im = ax[2].imshow(mz.T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1,
                      extent=[t[0], t[-1], -0.5, Llong - 0.5])
    ax[2].plot(t, wall_position(arrays["spins"][:, 0], Llong, st.Ly), "k-", lw=0.8, label="wall position X")
    ax[2].set_title(f"ML-LLG on {Llong}x{st.Ly} ({Llong // st.Lx}x longer), V = 1: column-averaged S_z", fontsize=9)
    ax[2].set_xlabel("t (hbar/t)")
    ax[2].set_ylabel("x")
    ax[2].legend(fontsize=7, loc="upper right")
    fig.colorbar(im, ax=ax[2], fraction=0.04)
    fig.tight_layout()
    out = os.path.join(cfg["out"], "domain_wall.png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def thermal_runs(cfg, solver: str, provider_for_bias, seed_offset: int, source="negf") -> dict:
    """Replicas of wall 0 with thermal noise at each thermal bias: {bias: (times, X [frames, replicas])}."""
    th, L = cfg["thermal"], cfg["llg"]
    st = strip_of(cfg)
    out = {}
    for bias in th["biases"]:
        path = os.path.join(cfg["out"], f"thermal_{solver}_V{bias:g}.h5")
        if not cached(path, source):
            s0 = np.repeat(initial_wall(cfg, cfg["walls"][0], st)[None], int(th["replicas"]), 0)
            run_llg(provider_for_bias(float(bias), st), s0, steps=int(L["steps"]), dt=L["dt"], alpha=L["alpha"],
                    kT=float(th["kT"]), seed=int(th["seed"]) + seed_offset, every=L["every"], out=path,
                    resume=os.path.exists(path + ".partial"), progress=True, save_fields=False,
                    attrs={"source": source})
        arrays, _ = read_trajectory(path)
        X = wall_position(np.moveaxis(arrays["spins"], 1, 0), st.Lx, st.Ly)          # [replicas, frames]
        out[float(bias)] = (arrays["time"], X.T)
    return out


def step_floor(cfg, args):
    """Nearsightedness floor of the NEGF labels (the library's locality profile on the strip): the RMS change of the
    transverse field on a site when every spin farther than R from it is replaced by another draw of the same kind
    (the same wall, new noise of amplitude ``--noise``, default 0.1; ``--draws`` draws, default 3; three sites per
    draw), over the RMS field there — the error a model seeing only radius R cannot beat."""
    st = strip_of(cfg)
    rng = np.random.default_rng(5)
    c0 = st.Lx // 2
    radii = (2, 3, 4, 5, 6)
    for V in (min(cfg["biases"]), max(cfg["biases"])):
        a, b = [], []
        for _ in range(args.draws):
            s0 = domain_wall(st, rng.uniform(c0 - 2, c0 + 1), rng.uniform(1.2, 2.5), phi=rng.uniform(0, 2 * np.pi))
            a.append(normalize(s0 + args.noise * rng.standard_normal(s0.shape)))
            b.append(normalize(s0 + args.noise * rng.standard_normal(s0.shape)))
        res = locality_profile(negf(cfg, V), np.stack(a), radii, others=np.stack(b), seed=5, progress=False)
        print(f"V = {V:g}, noise {args.noise:g}: label floor "
              + ", ".join(f"R={R}: {100 * r:.2f}%" for R, r in zip(radii, res.ratio)))
    heldout_floor(cfg)


def heldout_floor(cfg, radii=(2, 4, 6), count=48):
    """The label floor on the held-out snapshot distribution, per bias and noise bin: the first ``count`` held-out
    configurations are redrawn from their seed (wall and noise amplitude known), every spin farther than R from a
    random site gets new noise of the same amplitude, and the RMS change of that site's transverse field is taken
    over the RMS field (the library's locality profile, one site per configuration)."""
    sc, st = cfg["snapshots"], strip_of(cfg)
    per = int(sc.get("per_call", 8))
    pick = np.random.default_rng(17)
    rows = []                                      # (bias, noise amplitude, |h|^2 on the site, {R: |dh|^2})
    calls = draw_snapshots(sc, st, np.random.default_rng(int(sc["val_seed"])), count, per)
    for V, draws in tqdm(calls, total=(count + per - 1) // per, desc="held-out floor"):
        p = negf(cfg, V, st)
        for s0, amp, a in draws:                                          # a: the held-out configuration itself
            b = normalize(s0 + amp * pick.standard_normal(s0.shape))      # the same wall, independent noise
            res = locality_profile(p, a[None], radii, others=b[None], sites_per_draw=1,
                                   seed=int(pick.integers(2 ** 31)), progress=False)
            dh2 = (res.per_draw[0, 0] * res.rms_field) ** 2
            rows.append((V, amp, res.rms_field ** 2, dict(zip(radii, dh2))))
    for name, sel in (("all", lambda V, a: True), ("bias < 1", lambda V, a: V < 1), ("bias >= 1", lambda V, a: V >= 1),
                      ("bias >= 1, noise > 0.17", lambda V, a: V >= 1 and a > 0.17)):
        r = [row for row in rows if sel(row[0], row[1])]
        if r:
            den = sum(row[2] for row in r)
            print(f"held-out snapshots, {name} ({len(r)}): label floor " +
                  ", ".join(f"R={R}: {100 * np.sqrt(sum(row[3][R] for row in r) / den):.2f}%" for R in radii))


def step_thermal(cfg, args):
    """Wall velocity with thermal noise: NEGF-LLG and ML-LLG ensembles with independent noise, mean +- SE."""
    model = ml_model(cfg)
    ref = thermal_runs(cfg, "negf", driven(cfg), 0)
    got = thermal_runs(cfg, "ml", driven(cfg, model), 1000, source=source_of(model))
    print(f"bath kT = {cfg['thermal']['kT']:g}, {cfg['thermal']['replicas']} replicas each, independent noise")
    print(f"{'V':>5s} {'v NEGF (mean +- SE)':>24s} {'v ML (mean +- SE)':>24s} {'z':>6s}")
    for bias in ref:
        vs = []
        for t, X in (ref[bias], got[bias]):
            v = np.array([wall_velocity(t, X[:, r])[0] for r in range(X.shape[1])])
            vs.append((v.mean(), v.std(ddof=1) / np.sqrt(len(v))))
        (vn, sn), (vm, sm) = vs
        print(f"{bias:5.2f} {vn:14.5f} +- {sn:.5f} {vm:14.5f} +- {sm:.5f} {(vm - vn) / np.hypot(sn, sm):6.2f}")


STEPS = {"reference": step_reference, "snapshots": step_snapshots, "train": step_train,
         "validate": step_validate, "compare": step_compare, "thermal": step_thermal, "floor": step_floor}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("step", choices=[*STEPS, "all"])
    p.add_argument("config")
    p.add_argument("--install", action="store_true", help="train: copy the model into the package")
    p.add_argument("--only", choices=["model", "ablation"], default=None,
                   help="train: fit only the model, or only the ablation (V and W without the spin-transfer part)")
    p.add_argument("--noise", type=float, default=0.1, help="floor: noise amplitude of the configurations")
    p.add_argument("--draws", type=int, default=3, help="floor: number of configurations")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
        paths(cfg)
        for name in (list(STEPS) if args.step == "all" else [args.step]):
            STEPS[name](cfg, args)
    except NearsightError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
