"""Held-out accuracy of a trained model on labelled frames it never saw, beside the floor of its labels
(``nearsight validate``).

For each dataset and for its disordered and ordered frames (the one definition of the kinds:
:mod:`nearsight.training.metrics`, split at ``split_time``) it gives the transverse-field error
``RMS(h_perp_ML - h_perp_ref) / RMS(h_perp_ref)`` (the zero-field baseline is 1 by construction) and the
nearsightedness floor of the labels on the same frames at the model's cutoff (the error any model that sees only
that radius must meet; :func:`nearsight.analysis.locality.locality_profile` with the dataset's physics solved by
ED). The pooled rows over every file — disordered, ordered, overall — are the numbers a model card records.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import NearsightError
from ..training.data import load_frames
from ..training.loss import Accumulator
from ..training.metrics import KINDS, SPLIT_TIME, disordered_mask

GROUPS = ("all",) + KINDS


@dataclass
class Row:
    """One line of the table: a file (or ``'all files'``) and a kind of frame (``all`` / disordered / ordered)."""
    file: str
    kind: str
    n_frames: int
    lattice: str
    error: float
    floor: float | None = None


@dataclass
class Validation:
    model: str
    card: dict
    split_time: float
    rows: list = field(default_factory=list)
    #: the pooled numbers over every file: {"disordered": ratio, "ordered": ratio, "overall": ratio} (None: no frame)
    pooled: dict = field(default_factory=dict)


def check_options(split_time: float, floor_draws: int) -> None:
    """One-line errors for options that cannot work (before any data is read)."""
    if not np.isfinite(split_time) or split_time < 0:
        raise NearsightError(f"--split-time must be a finite number >= 0, got {split_time!r}")
    if floor_draws == 1 or floor_draws < 0:
        raise NearsightError(f"--floor-draws {floor_draws}: the floor needs at least 2 frames (one supplies the far "
                             f"region of the other); pass 0 to skip it")


def validate(model: str, paths: list[str], *, split_time: float = SPLIT_TIME, floor_draws: int = 4,
             on_row=None) -> Validation:
    """The table of the module docstring for ``model`` (a shipped name or a model file) on the datasets ``paths``.
    Every file is read and checked before any model evaluation. ``on_row(row)`` is called as each row is ready."""
    from ..electrons import EDProvider
    from ..hamiltonian import SDModel
    from ..ml.cards import load_card
    from ..ml.provider import MLProvider
    from .locality import locality_profile
    check_options(split_time, floor_draws)
    if not paths:
        raise NearsightError("give at least one dataset (--data FILE.h5 ...)")
    card = load_card(model)
    loaded = [(p, *load_frames(p)[:2]) for p in paths]       # (path, FrameSet, physics): fails early on a bad file
    out = Validation(model, card, float(split_time))
    pooled = {g: Accumulator() for g in GROUPS}
    for path, fs, phys in loaded:
        lat = fs.lattice
        ml = MLProvider(model, lat)
        res = [ml(fs.spins[sl]) for sl in torch.split(torch.arange(len(fs)), 32)]
        pred = torch.cat([r.fields.detach().to(torch.float64).cpu() for r in res])
        e_pred = torch.cat([r.energy.detach().to(torch.float64).cpu() for r in res])
        dis = disordered_mask(fs, split_time)
        name = path.replace("\\", "/").split("/")[-1]
        for g, m in (("all", np.ones(len(fs), bool)), ("disordered", dis), ("ordered", ~dis)):
            if not m.any():
                continue
            acc = Accumulator()
            mt = torch.as_tensor(m)
            for a in (acc, pooled[g]):
                a.add(pred[mt], fs.fields[mt], e_pred[mt], fs.energy[mt], fs.spins[mt])
            floor = None
            if g != "all" and m.sum() >= 2 and floor_draws >= 2:
                idx = np.random.default_rng(0).choice(np.flatnonzero(m), size=min(floor_draws, int(m.sum())),
                                                      replace=False)
                ed = EDProvider(lat, SDModel.from_dict(phys))
                floor = float(locality_profile(ed, fs.spins[idx].numpy(), [card["cutoff"]], sites_per_draw=3,
                                               progress=False).ratio[0])
            row = Row(name, g, int(m.sum()), f"{lat.L1}x{lat.L2}", acc.result()["transverse_rms_ratio"], floor)
            out.rows.append(row)
            if on_row is not None:
                on_row(row)
    for g, key in (("disordered", "disordered"), ("ordered", "ordered"), ("all", "overall")):
        r = pooled[g].result()
        out.pooled[key] = r["transverse_rms_ratio"] if r["n_frames"] else None
        if len(loaded) > 1 and r["n_frames"]:
            row = Row("all files", g, r["n_frames"], "-", r["transverse_rms_ratio"])
            out.rows.append(row)
            if on_row is not None:
                on_row(row)
    return out


def kind_label(kind: str, split_time: float) -> str:
    return {"disordered": f"disordered (t<{split_time:g})", "ordered": "ordered"}.get(kind, kind)


def format_row(row: Row, split_time: float) -> str:
    floor = "" if row.floor is None else f"{100 * row.floor:9.2f}%"
    return (f"{row.file:34s} {kind_label(row.kind, split_time):>18s} {row.n_frames:6d} {row.lattice:>7s} "
            f"{100 * row.error:8.2f}% {floor:>10s}")


HEADER = f"{'file':34s} {'frames':>18s} {'count':>6s} {'lattice':>7s} {'ML error':>9s} {'floor(R_c)':>10s}"


def report_markdown(v: Validation, paths: list[str], floor_draws: int) -> str:
    """The table as markdown with the command that reproduces it (for a model's report)."""
    rows = [f"| {r.file} | {kind_label(r.kind, v.split_time)} ({r.n_frames} frames) | {r.lattice} | "
            f"{100 * r.error:.2f}% | {'-' if r.floor is None else f'{100 * r.floor:.2f}%'} |" for r in v.rows]
    return (f"Held-out transverse-field error of `{v.model}` (RMS(h_perp ML - ref) / RMS(h_perp ref)), beside the "
            f"nearsightedness floor of the labels at the model's cutoff R = {v.card['cutoff']:.3g}:\n\n"
            "| file | frames | lattice | ML error | label floor at R_c |\n|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n"
            f"Reproduce: `nearsight validate --model {v.model} --data {' '.join(paths)} --split-time "
            f"{v.split_time:g} --floor-draws {floor_draws}`\n")
