"""Learning curves: held-out error against the number of independent training trajectories, by model variant.

Every run trains the same protocol (:func:`nearsight.training.train`, one base config) on a nested subset of the
training trajectories (``train_fraction``; the 1/8 subset lies inside the 1/4 one, and the internal validation
trajectories, used for model selection, are the same for every fraction), for each model variant (config
overrides: BP widths, ``family: mpnn``, ...), and is evaluated on the same external held-out files
(``val_datasets`` of the base config: a lattice size and trajectories never trained on), split into disordered and
ordered frames (:mod:`.metrics`). Runs are independent processes: ``--only i/n`` runs every n-th run starting at
i, so n processes (e.g. one per GPU stream) share a plan; each run resumes from its own checkpoint, writes
``result.json`` in its directory, and ``--collect`` gathers them into ``curves.csv`` and ``curves.png`` (log-log, with
the fitted slope ``d log(error) / d log(n_trajectories)`` of each variant and kind).

    python benchmarks/learning_curves.py --config configs/train/triangular-120.yaml --out runs/curves-tri120 \\
        --fractions 0.125 0.25 0.5 1 --device cuda --only 0/4        # ... 1/4, 2/4, 3/4 in parallel
    python benchmarks/learning_curves.py --config configs/train/triangular-120.yaml --out runs/curves-tri120 \\
        --collect
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import yaml

from ..errors import NearsightError
from ..io import atomic_path

FRACTIONS = (0.125, 0.25, 0.5, 1.0)
#: default variants: BP at three widths and the message-passing network
VARIANTS = {"bp-64": {"family": "bp", "hidden": [64, 64]}, "bp-128": {"family": "bp", "hidden": [128, 128]},
            "bp-256": {"family": "bp", "hidden": [256, 256]}, "mpnn": {"family": "mpnn"}}
KIND_COLUMNS = ("all", "disordered", "ordered")
COLUMNS = (("variant", "fraction", "n_train_trajectories", "n_train_frames")
           + tuple(f"external_{k}" for k in KIND_COLUMNS) + tuple(f"internal_{k}" for k in KIND_COLUMNS)
           + ("best_epoch", "epochs_done", "seconds"))


def plan(base: dict, out: str, fractions=FRACTIONS, variants: dict | None = None, **over) -> list[dict]:
    """The runs: one config per (variant, fraction), in a fixed order (what ``--only i/n`` shards)."""
    if not base.get("val_datasets"):
        raise NearsightError("learning curves need external held-out files: give val_datasets in the base config "
                             "(a lattice size and trajectories never trained on)")
    fr = [float(f) for f in fractions]
    if not fr or any(not 0 < f <= 1 for f in fr):
        raise NearsightError(f"fractions must lie in (0, 1], got {list(fractions)}")
    runs = []
    for vname, vover in (variants or VARIANTS).items():
        for f in sorted(fr):
            name = f"{vname}_f{f:g}".replace(".", "p")
            cfg = {**base, **vover, **over, "train_fraction": f, "out": str(Path(out) / name), "name": name,
                   "progress": False, "external_every": 0}
            runs.append({"variant": vname, "fraction": f, "name": name, "config": cfg})
    return runs


def shard(runs: list, only: str | None) -> list:
    if not only:
        return runs
    try:
        i, n = (int(x) for x in only.split("/"))
    except ValueError:
        raise NearsightError(f"--only must be i/n with 0 <= i < n, got {only!r}") from None
    if not 0 <= i < n:
        raise NearsightError(f"--only must be i/n with 0 <= i < n, got {only!r}")
    return runs[i::n]


def run_one(run: dict) -> dict:
    """Train one run (resuming its checkpoint) and write its ``result.json``; returns the result row."""
    from .train import train
    t0 = time.perf_counter()
    path = train(run["config"])
    card = json.loads((Path(path).parent / f"{run['name']}.card.json").read_text())
    held, td, tr = card["held_out"], card["training_data"], card["training"]
    row = {"variant": run["variant"], "fraction": run["fraction"], "n_train_trajectories": td["n_train_trajectories"],
           "n_train_frames": td["n_train_frames"], "best_epoch": tr.get("best_epoch"),
           "epochs_done": tr.get("epochs_done"), "seconds": round(time.perf_counter() - t0, 1)}
    for which in ("external", "internal"):
        res = held.get(which) or {}
        row[f"{which}_all"] = res.get("transverse_rms_ratio")
        for k in ("disordered", "ordered"):
            row[f"{which}_{k}"] = (res.get(k) or {}).get("transverse_rms_ratio")
    with atomic_path(str(Path(run["config"]["out"]) / "result.json")) as tmp, open(tmp, "w") as f:
        json.dump(row, f, indent=2)
    return row


def slopes(rows: list, key: str = "external_all") -> dict:
    """``{variant: slope}`` of ``log(error)`` against ``log(n_train_trajectories)`` (least squares; None if < 2
    points)."""
    out = {}
    for v in sorted({r["variant"] for r in rows}):
        pts = [(r["n_train_trajectories"], r[key]) for r in rows if r["variant"] == v and r.get(key)]
        pts = [(n, e) for n, e in pts if n and e and e > 0]
        out[v] = (float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])
                  if len({p[0] for p in pts}) >= 2 else None)
    return out


def collect(runs: list, out: str) -> list:
    """Gather the ``result.json`` of finished runs into ``OUT/curves.csv`` and ``OUT/curves.png``."""
    rows = []
    for r in runs:
        p = Path(r["config"]["out"]) / "result.json"
        if p.exists():
            rows.append(json.loads(p.read_text()))
    Path(out).mkdir(parents=True, exist_ok=True)
    with atomic_path(str(Path(out) / "curves.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: row.get(k) for k in COLUMNS})
    fits = {k: slopes(rows, f"external_{k}") for k in KIND_COLUMNS}
    with atomic_path(str(Path(out) / "slopes.json")) as tmp, open(tmp, "w") as f:
        json.dump(fits, f, indent=2)
    plot(rows, fits, Path(out) / "curves.png")
    return rows


def plot(rows: list, fits: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, kind in zip(axes, KIND_COLUMNS):
        for v in sorted({r["variant"] for r in rows}):
            pts = sorted((r["n_train_trajectories"], r[f"external_{kind}"]) for r in rows
                         if r["variant"] == v and r.get(f"external_{kind}"))
            if pts:
                s = fits[kind].get(v)
                ax.loglog(*zip(*pts), "o-", label=f"{v} (slope {s:.2f})" if s is not None else v)
        ax.set(xlabel="training trajectories", title=f"external held out: {kind}")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("RMS(h⊥ error) / RMS(h⊥)")
    fig.tight_layout()
    with atomic_path(str(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="base training config (YAML); its val_datasets are the held-out files")
    ap.add_argument("--out", required=True, help="directory of the runs, curves.csv, slopes.json, curves.png")
    ap.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    ap.add_argument("--variants", default=None, help="YAML file {name: {config overrides}} (default: bp-64, bp-128, "
                                                     "bp-256, mpnn)")
    ap.add_argument("--only-variants", nargs="+", default=None, help="run only these variant names")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of this process")
    ap.add_argument("--epochs", type=int, default=None, help="override the base config's epochs (an upper bound "
                                                            "with patience)")
    ap.add_argument("--patience", type=int, default=None, help="override the base config's early-stopping patience")
    ap.add_argument("--only", default=None, help="i/n: run every n-th run from i (one process per shard)")
    ap.add_argument("--collect", action="store_true", help="only gather finished runs into the CSV and plot")
    ap.add_argument("--list", action="store_true", help="print the plan and exit")
    a = ap.parse_args(argv)
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    from .train import load_config
    base = load_config(a.config)
    variants = VARIANTS
    if a.variants:
        with open(a.variants) as f:
            variants = yaml.safe_load(f)
        if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
            raise NearsightError(f"--variants {a.variants!r} must map names to config overrides")
    if a.only_variants:
        missing = sorted(set(a.only_variants) - set(variants))
        if missing:
            raise NearsightError(f"unknown variant(s) {', '.join(missing)}; known: {', '.join(variants)}")
        variants = {k: v for k, v in variants.items() if k in a.only_variants}
    over = {"device": a.device}
    if a.epochs is not None:
        over["epochs"] = a.epochs
    if a.patience is not None:
        over["patience"] = a.patience
    runs = plan(base, a.out, a.fractions, variants, **over)
    if a.list:
        for i, r in enumerate(runs):
            print(i, r["name"])
        return 0
    if not a.collect:
        for r in shard(runs, a.only):
            row = run_one(r)
            print(json.dumps(row), flush=True)
    rows = collect(runs, a.out)
    print(f"{len(rows)}/{len(runs)} runs finished; wrote {Path(a.out) / 'curves.csv'} and curves.png")
    print(json.dumps({k: slopes(rows, f"external_{k}") for k in KIND_COLUMNS}))
    return 0
