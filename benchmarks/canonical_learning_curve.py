"""Learning curve of mu-conditioned models in canonical mode: held-out field error against training frames.

Reads what ``benchmarks/canonical_ml_check.py`` printed (one JSON object per held-out dataset: the ``--model`` side
at the top level, the ``--reference`` side under ``"reference"``) and plots, per held-out dataset, the transverse
field error against the number of training frames on log-log axes, one line per family with its fitted slope
``d log(error) / d log(frames)``, beside the issue-22 bar for ordered frames (2%). Nothing is recomputed here: every
point is a measured check output, named on the command line as ``LABEL:FRAMES:FILE:SIDE`` (``SIDE`` = ``model`` or
``reference``).

    python benchmarks/canonical_learning_curve.py --out docs/figures/learning_curve_canonical \\
        --point mpnn:1313:runs/check_quarter.json:model --point bp:1313:runs/check_quarter.json:reference \\
        --point mpnn:5263:runs/check_v3.json:model --point bp:5263:runs/check_v3.json:reference ...

writes ``OUT.csv`` (label, frames, dataset, field error, mu* error max where the side has it) and ``OUT.png``.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from nearsight.io import atomic_path

BAR_ORDERED = 0.02


def read_checks(path: str) -> list[dict]:
    """The JSON objects printed by canonical_ml_check.py, in order (other text between them is skipped)."""
    text, dec, out, i = Path(path).read_text(), json.JSONDecoder(), [], 0
    while (i := text.find("{", i)) >= 0:
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        if isinstance(obj, dict) and "dataset" in obj:
            out.append(obj)
    if not out:
        raise SystemExit(f"{path}: no canonical_ml_check.py output in it; run that benchmark and save what it prints")
    return out


def parse_point(spec: str) -> tuple[str, int, str, str]:
    parts = spec.split(":")
    if len(parts) != 4 or parts[3] not in ("model", "reference") or not parts[1].isdigit():
        raise SystemExit(f"--point {spec!r}: write LABEL:FRAMES:FILE:SIDE with SIDE model or reference, "
                         f"e.g. mpnn:5263:runs/check.json:model")
    return parts[0], int(parts[1]), parts[2], parts[3]


def rows_of(points: list[str]) -> list[dict]:
    rows = []
    for spec in points:
        label, frames, path, side = parse_point(spec)
        for obj in read_checks(path):
            src = obj if side == "model" else obj.get("reference")
            if not src or "field_ratio" not in src:
                raise SystemExit(f"{path}: dataset {obj['dataset']} has no {side} side; was --reference given?")
            rows.append({"label": label, "frames": frames, "dataset": Path(obj["dataset"]).stem,
                         "field_error": float(src["field_ratio"]),
                         "mu_err_max": float(src["mu_err_max"]) if "mu_err_max" in src else ""})
    return rows


def slope(pts: list[tuple[int, float]]) -> float | None:
    if len({f for f, _ in pts}) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def plot(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.3 * len(datasets), 3.8), sharey=True, squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for label in dict.fromkeys(r["label"] for r in rows):
            pts = sorted((r["frames"], r["field_error"]) for r in rows if r["label"] == label and r["dataset"] == ds)
            s = slope(pts)
            ax.loglog(*zip(*pts), "o-", label=f"{label}" + (f" (slope {s:.2f})" if s is not None else ""))
        ax.axhline(BAR_ORDERED, color="k", ls=":", lw=1, label="2% (issue 22, ordered)")
        ax.set(xlabel="training frames (12x12)", title=f"held out: {ds}")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("RMS(h_perp error) / RMS(h_perp), canonical mode")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--point", action="append", required=True, help="LABEL:FRAMES:FILE:SIDE (repeat)")
    p.add_argument("--out", required=True, help="path without extension: OUT.csv and OUT.png are written")
    a = p.parse_args(argv)
    rows = rows_of(a.point)
    with atomic_path(a.out + ".csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(rows, a.out + ".png")
    for r in rows:
        print(f"{r['label']:>8} {r['frames']:>6} {r['dataset']:<18} {100 * r['field_error']:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
