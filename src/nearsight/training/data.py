"""Training data: datasets from ``nearsight generate`` (io.write_dataset layout), checked, and split by trajectory.

Frames of one quench are strongly correlated, so held-out frames must come from trajectories never trained on:
the split assigns whole trajectories (``/trajectory`` ids, made unique across files) to the training or the
internal validation set (``val_fraction``; model selection and early stopping use it). Files given as
``val_datasets`` form the *external* held-out set: reported, never used for any decision (else they would not be
held out). ``train_fraction`` keeps a nested subset of the training trajectories (a fixed permutation drawn with
``subset_seed``, so the 1/8 subset lies inside the 1/4 one, and the internal validation set is the same for all
fractions): the learning curves of :mod:`.curves`. Files may have different lattice sizes (a model is size-independent); each size is kept as its own
:class:`FrameSet` so frames batch as dense ``[B, N, 3]`` tensors.

**Datasets labelled over a window of mu** (attribute ``mu_window``, docs/canonical.md) carry per frame the
chemical potential of the labels ``mu [F]``, the count ``n_electrons [F]`` and, from ED, the local densities
``site_density [F, N]`` and compressibility ``dn_dmu [F]``; they are read into the FrameSet and train a mu-conditioned
model. The files of one run
are either all such datasets or none; ``physics["mu_window"]`` is the hull of the windows of ``datasets`` (the
range the model is trained on; ``val_datasets`` do not widen it).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import NearsightError
from ..io import read_dataset
from ..lattice import LATTICES, Lattice
from .checkpoint import arrays_digest
from .metrics import ordered_start

#: physics attributes that must agree across every file of a training run (None = absent)
PHYSICS = ("lattice", "J", "t", "t2", "B", "kT", "mu", "filling")
#: per-frame arrays of datasets labelled over a mu window (site_density optional)
MU_ARRAYS = ("mu", "n_electrons", "site_density", "dn_dmu")
_DEFAULTS = {"t": 1.0, "t2": 0.0, "B": [0.0, 0.0, 0.0]}


@dataclass
class FrameSet:
    """Frames of one lattice: spins and fields ``[F, N, 3]``, energy ``[F]``, trajectory ids and times ``[F]``."""

    lattice: Lattice
    spins: torch.Tensor
    fields: torch.Tensor
    energy: torch.Tensor
    trajectory: np.ndarray
    time: np.ndarray
    source: str = ""
    #: per frame: the trajectory started from an ordered state (file attribute ``initial`` not 'random')
    ordered_start: np.ndarray | None = None
    #: mu-window datasets: per frame chemical potential [F], count [F], site densities [F, N] (else None)
    mu: torch.Tensor | None = None
    n_electrons: torch.Tensor | None = None
    site_density: torch.Tensor | None = None
    #: the labels' compressibility dN/dmu [F] at their mu (ED at kT > 0; None in datasets made before it)
    dn_dmu: torch.Tensor | None = None

    def __post_init__(self):
        if self.ordered_start is None:
            self.ordered_start = np.zeros(len(self.time), bool)

    def __len__(self) -> int:
        return int(self.spins.shape[0])

    def subset(self, mask: np.ndarray) -> "FrameSet":
        m = torch.as_tensor(np.asarray(mask, bool))
        opt = {k: (None if getattr(self, k) is None else getattr(self, k)[m]) for k in MU_ARRAYS}
        return FrameSet(self.lattice, self.spins[m], self.fields[m], self.energy[m], self.trajectory[mask],
                        self.time[mask], self.source, self.ordered_start[mask], **opt)


@dataclass
class TrainingData:
    physics: dict
    provider: str
    train: list = field(default_factory=list)
    val: list = field(default_factory=list)          # internal validation (held-out trajectories): selection
    external: list = field(default_factory=list)     # val_datasets: reported only
    digests: dict = field(default_factory=dict)      # {path: SHA-256 of its arrays}, for the resume check

    def summary(self) -> dict:
        every = self.train + self.val + self.external
        sizes = lambda sets: [list(s) for s in sorted({(fs.lattice.L1, fs.lattice.L2) for fs in sets})]  # noqa: E731
        n_traj = lambda sets: len({int(t) for fs in sets for t in fs.trajectory})  # noqa: E731
        files = lambda sets: sorted({os.path.basename(p) for fs in sets for p in fs.source.split(",") if p})  # noqa: E731
        held = self.external or self.val
        return {"provider": self.provider, "lattice_sizes": sizes(self.train), "val_lattice_sizes": sizes(held),
                "n_frames": sum(len(fs) for fs in every), "n_train_frames": sum(len(fs) for fs in self.train),
                "n_val_frames": sum(len(fs) for fs in self.val), "n_trajectories": n_traj(every),
                "n_train_trajectories": n_traj(self.train), "n_val_trajectories": n_traj(self.val),
                "n_external_frames": sum(len(fs) for fs in self.external),
                "n_external_trajectories": n_traj(self.external),
                "datasets": files(self.train + self.val), "val_datasets": files(held)}


def _physics(attrs: dict, path: str) -> dict:
    kind = attrs.get("lattice")
    if kind not in LATTICES:
        raise NearsightError(f"dataset {path!r} names no lattice kind (attribute 'lattice' = {kind!r}); "
                             f"regenerate it with 'nearsight generate'")
    missing = [k for k in ("J", "kT") if attrs.get(k) is None]
    window = attrs.get("mu_window")
    if window is not None:
        try:
            lo, hi = (float(x) for x in window)
        except (TypeError, ValueError):
            raise NearsightError(f"dataset {path!r}: attribute mu_window = {window!r} is not [lo, hi]") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise NearsightError(f"dataset {path!r}: mu_window = {window!r} must be finite with lo < hi")
        window = [lo, hi]
        if attrs.get("mu") is not None or attrs.get("filling") is not None:
            missing.append("a single ensemble (a mu_window dataset has mu = filling = None)")
    elif (attrs.get("mu") is None) == (attrs.get("filling") is None):
        missing.append("exactly one of filling / mu")
    if missing:
        raise NearsightError(f"dataset {path!r} does not record {', '.join(missing)} of its labels; a model "
                             f"needs them on its card — regenerate it with 'nearsight generate'")
    out = {k: attrs.get(k, _DEFAULTS.get(k)) for k in PHYSICS}
    for k, v in _DEFAULTS.items():
        if out[k] is None:
            out[k] = v
    out["B"] = [float(b) for b in out["B"]]
    out["mu_window"] = window
    return out


def _agree(a: dict, b: dict) -> list[str]:
    bad = []
    for k in PHYSICS:
        x, y = a[k], b[k]
        if k == "lattice" or x is None or y is None:
            if x != y:
                bad.append(k)
        elif k == "B":
            if not all(math.isclose(p, q, rel_tol=1e-9, abs_tol=1e-12) for p, q in zip(x, y)):
                bad.append(k)
        elif not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-12):
            bad.append(k)
    if (a.get("mu_window") is None) != (b.get("mu_window") is None):
        bad.append("mu_window (labels over a window of mu and labels at one ensemble cannot train one model)")
    return bad


def _hull(a, b):
    return None if a is None or b is None else [min(a[0], b[0]), max(a[1], b[1])]


def load_frames(path: str, digests: dict | None = None) -> tuple[FrameSet, dict, str]:
    """One dataset file as a :class:`FrameSet`, its physics and its provider name (clear errors on bad files);
    ``digests[path]`` gets the SHA-256 of its arrays when a dict is given."""
    arrays, attrs = read_dataset(path)
    if digests is not None:
        digests[str(path)] = arrays_digest(arrays)
    phys = _physics(attrs, path)
    try:
        lattice = Lattice(phys["lattice"], int(attrs["L1"]), int(attrs.get("L2") or attrs["L1"]))
    except (KeyError, TypeError, ValueError):
        raise NearsightError(f"dataset {path!r} does not record its lattice size (L1, L2)") from None
    s, h, e = arrays["spins"], arrays["fields"], arrays["energy"]
    F = len(s)
    if F == 0:
        raise NearsightError(f"dataset {path!r} holds no frames")
    if s.shape != (F, lattice.N, 3) or h.shape != s.shape or e.shape != (F,):
        raise NearsightError(f"dataset {path!r}: arrays spins {s.shape}, fields {h.shape}, energy {e.shape} do "
                             f"not fit its {lattice.L1}x{lattice.L2} lattice ([F, {lattice.N}, 3] and [F])")
    for name, a in (("spins", s), ("fields", h), ("energy", e)):
        if not np.isfinite(a).all():
            raise NearsightError(f"dataset {path!r}: {name} contain NaN or inf (missing labels?); regenerate it")
    dev = float(np.abs(np.linalg.norm(s, axis=-1) - 1).max())
    if dev > 1e-6:
        raise NearsightError(f"dataset {path!r}: spins are not unit vectors (max | |S|-1 | = {dev:.2g})")
    traj = np.asarray(arrays.get("trajectory", np.zeros(F)), np.int64).reshape(F)
    time = np.asarray(arrays.get("time", np.zeros(F)), np.float64).reshape(F)
    ordered = np.full(F, ordered_start(attrs))
    opt = _mu_arrays(arrays, path, F, lattice.N) if phys["mu_window"] is not None else {}
    fs = FrameSet(lattice, torch.from_numpy(s.astype(np.float64)), torch.from_numpy(h.astype(np.float64)),
                  torch.from_numpy(e.astype(np.float64)), traj, time, path, ordered, **opt)
    return fs, phys, str(attrs.get("provider") or "unknown")


def _mu_arrays(arrays: dict, path: str, F: int, N: int) -> dict:
    """The per-frame mu, count and (optional) site densities of a mu-window dataset, checked."""
    out = {}
    for k, shape in (("mu", (F,)), ("n_electrons", (F,)), ("site_density", (F, N)), ("dn_dmu", (F,))):
        a = arrays.get(k)
        if a is None:
            if k in ("site_density", "dn_dmu"):
                out[k] = None
                continue
            raise NearsightError(f"dataset {path!r} records a mu_window but no per-frame {k!r}; regenerate it with "
                                 f"'nearsight generate --mu-window' (solver ed)")
        a = np.asarray(a, np.float64)
        if a.shape != shape or not np.isfinite(a).all():
            raise NearsightError(f"dataset {path!r}: {k} has shape {a.shape} (want {shape}) or non-finite values")
        out[k] = torch.from_numpy(a)
    return out


def _load_all(paths: list[str], offset: int = 0, digests: dict | None = None):
    sets, phys, providers = [], None, set()
    for p in paths:
        fs, ph, prov = load_frames(p, digests)
        if phys is None:
            phys, first = ph, p
        else:
            bad = _agree(phys, ph)
            if bad:
                detail = "; ".join(f"{k}: {ph.get(k.split()[0])!r} vs {phys.get(k.split()[0])!r}" for k in bad)
                raise NearsightError(f"dataset {p!r} was labelled with different physics than {first!r} "
                                     f"({detail}); one model is trained on one set of parameters")
            phys["mu_window"] = _hull(phys["mu_window"], ph["mu_window"])
        # make trajectory ids unique across files
        uniq, inv = np.unique(fs.trajectory, return_inverse=True)
        fs.trajectory = inv.astype(np.int64) + offset
        offset += len(uniq)
        sets.append(fs)
        providers.add(prov)
    return sets, phys, providers, offset


def load_training_data(datasets: list[str], *, val_datasets: list[str] | None = None, val_fraction: float = 0.2,
                       seed: int = 0, train_fraction: float = 1.0, subset_seed: int = 0) -> TrainingData:
    """Read the datasets, hold out ``val_fraction`` of their trajectories (internal validation), keep
    ``train_fraction`` of the rest (nested subsets), and read ``val_datasets`` as the external held-out set."""
    if not datasets:
        raise NearsightError("the config lists no datasets: give 'datasets: [file.h5, ...]' made by "
                             "'nearsight generate'")
    if not 0.0 < float(val_fraction) < 1.0:
        raise NearsightError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    if not 0.0 < float(train_fraction) <= 1.0:
        raise NearsightError(f"train_fraction must lie in (0, 1], got {train_fraction!r}")
    digests = {}
    train, phys, providers, offset = _load_all(list(datasets), digests=digests)
    external = []
    if val_datasets:
        external, vphys, vprov, _ = _load_all(list(val_datasets), offset, digests)
        bad = _agree(phys, vphys)
        if bad:
            raise NearsightError(f"val_datasets were labelled with different physics than datasets ({', '.join(bad)})")
        providers |= vprov
    ids = np.unique(np.concatenate([fs.trajectory for fs in train]))
    if len(ids) < 2:
        raise NearsightError("the datasets hold a single trajectory, so no trajectory can be held out for "
                             "validation: generate several trajectories")
    n_val = min(len(ids) - 1, max(1, int(round(val_fraction * len(ids)))))
    held = np.random.default_rng(seed).permutation(ids)[:n_val]
    val = [fs.subset(np.isin(fs.trajectory, held)) for fs in train]
    train = [fs.subset(~np.isin(fs.trajectory, held)) for fs in train]
    if train_fraction < 1.0:
        rest = np.random.default_rng([subset_seed, 7919]).permutation(np.setdiff1d(ids, held))
        keep = rest[:max(1, int(math.ceil(train_fraction * len(rest) - 1e-9)))]
        train = [fs.subset(np.isin(fs.trajectory, keep)) for fs in train]
    train, val = [fs for fs in train if len(fs)], [fs for fs in val if len(fs)]
    prov = "+".join(sorted(providers))
    return TrainingData(physics=phys, provider=prov, train=_merge_sizes(train), val=_merge_sizes(val),
                        external=_merge_sizes(external), digests=digests)


def _merge_sizes(sets: list[FrameSet]) -> list[FrameSet]:
    """One FrameSet per lattice size (files of the same size are concatenated)."""
    by = {}
    for fs in sets:
        by.setdefault(fs.lattice, []).append(fs)
    out = []
    for lat, group in by.items():
        opt = {k: (torch.cat([getattr(g, k) for g in group]) if all(getattr(g, k) is not None for g in group)
                   else None) for k in MU_ARRAYS}
        out.append(FrameSet(lat, torch.cat([g.spins for g in group]), torch.cat([g.fields for g in group]),
                            torch.cat([g.energy for g in group]), np.concatenate([g.trajectory for g in group]),
                            np.concatenate([g.time for g in group]), ",".join(g.source for g in group),
                            np.concatenate([g.ordered_start for g in group]), **opt))
    return out


def batches(sets: list[FrameSet], batch_size: int, rng: np.random.Generator | None):
    """``(set_index, frame_indices)`` batches over all sets; shuffled within and across sets when ``rng``."""
    out = []
    for k, fs in enumerate(sets):
        idx = rng.permutation(len(fs)) if rng is not None else np.arange(len(fs))
        out += [(k, idx[i:i + batch_size]) for i in range(0, len(fs), batch_size)]
    if rng is not None:
        out = [out[i] for i in rng.permutation(len(out))]
    return out
