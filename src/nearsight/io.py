"""HDF5 trajectories and datasets (h5py), written so that no half-written file is ever left behind.

Trajectory file (one LLG run, ``B`` replicas, frames appended as the run goes):
    /spins  [F, B, N, 3] f8     /fields [F, B, N, 3] f8 (optional)     /energy [F, B] f8
    /time   [F] f8              /step   [F] i8
    attrs: every parameter of the run (lattice, L1, L2, provider parameters, dt, alpha, kT, seed, ...)
    /checkpoint group: the integrator state at the last frame (spins, RNG state, step) for resume.

Dataset file (training labels, one row per snapshot):
    /spins [F, N, 3] f8   /fields [F, N, 3] f8   /energy [F] f8
    /trajectory [F] i8 (which quench a frame came from: split by it)   /time [F] f8   /kT_llg [F] f8
    attrs: lattice, L1, L2, provider and its parameters (J, t, t2, B, kT, filling or mu), generation settings.

Files are written under ``NAME.partial`` and renamed onto ``NAME`` only when complete (``os.replace`` is atomic);
a trajectory in progress lives in ``NAME.partial`` and is resumed from there.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager

import h5py
import numpy as np

from .errors import NearsightError

DATASET_KEYS = ("spins", "fields", "energy")


def _attr(v):
    if v is None:
        return "none"
    if isinstance(v, (dict, list, tuple)) and not (isinstance(v, (list, tuple)) and all(
            isinstance(x, (int, float)) for x in v)):
        return json.dumps(v)
    return v


def write_attrs(obj, attrs: dict) -> None:
    for k, v in attrs.items():
        obj.attrs[k] = _attr(v)


def read_attrs(obj) -> dict:
    out = {}
    for k, v in obj.attrs.items():
        if isinstance(v, bytes):
            v = v.decode()
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        if v == "none":
            v = None
        elif isinstance(v, str) and v[:1] in "[{":
            try:
                v = json.loads(v)
            except json.JSONDecodeError:
                pass
        out[k] = v
    return out


def check_writable(path: str) -> None:
    """Fail before any work if ``path`` cannot be written (missing or read-only directory)."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise NearsightError(f"output directory {d!r} does not exist; create it or choose another --out")
    if not os.access(d, os.W_OK):
        raise NearsightError(f"output directory {d!r} is not writable; choose another --out")


@contextmanager
def atomic_path(path: str):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on failure delete it."""
    check_writable(path)
    tmp = path + ".tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def open_h5(path: str, what: str = "file") -> h5py.File:
    """Open an HDF5 file for reading with a clear error if it is missing or corrupt."""
    if not os.path.exists(path):
        raise NearsightError(f"{what} {path!r} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError:
        raise NearsightError(f"{what} {path!r} is not a readable HDF5 file (corrupt or truncated); "
                             f"regenerate it") from None


# ------------------------------------------------------------------------------------------- datasets
def write_dataset(path: str, spins, fields, energy, *, trajectory=None, time=None, kT_llg=None,
                  attrs: dict | None = None, extra: dict | None = None) -> None:
    """Write a training dataset atomically (see the module docstring for the layout); ``extra`` adds per-frame
    arrays (first dimension ``F``, e.g. ``{"bias": [F]}`` for driven labels)."""
    spins, fields, energy = (np.asarray(a, dtype=np.float64) for a in (spins, fields, energy))
    F = len(spins)
    if spins.ndim != 3 or fields.shape != spins.shape or energy.shape != (F,):
        raise NearsightError(f"dataset arrays disagree: spins {spins.shape}, fields {fields.shape}, "
                             f"energy {energy.shape}; expected [F,N,3], [F,N,3], [F]")
    base = {"trajectory": np.zeros(F, np.int64) if trajectory is None else np.asarray(trajectory, np.int64),
            "time": np.zeros(F) if time is None else np.asarray(time, np.float64),
            "kT_llg": np.zeros(F) if kT_llg is None else np.asarray(kT_llg, np.float64)}
    extra_arr = {}
    for k, v in (extra or {}).items():
        v = np.asarray(v)
        if k in ("spins", "fields", "energy", *base) or v.shape[:1] != (F,):
            raise NearsightError(f"extra dataset array {k!r} must have a new name and first dimension {F}, "
                                 f"got shape {v.shape}")
        extra_arr[k] = v
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in (("spins", spins), ("fields", fields), ("energy", energy), *base.items(), *extra_arr.items()):
            f.create_dataset(k, data=v, compression="gzip" if v.ndim > 1 else None)
        write_attrs(f, {"kind": "nearsight-dataset", **(attrs or {})})


def read_dataset(path: str) -> tuple[dict, dict]:
    """Read a dataset: ``(arrays, attrs)``; a clear error if a required array is missing."""
    with open_h5(path, "dataset") as f:
        missing = [k for k in DATASET_KEYS if k not in f]
        if missing:
            raise NearsightError(f"dataset {path!r} lacks {', '.join(missing)}; regenerate it with "
                                 f"'nearsight generate'")
        arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        attrs = read_attrs(f)
    F = len(arrays["spins"])
    arrays.setdefault("trajectory", np.zeros(F, np.int64))
    return arrays, attrs


def merge_datasets(paths: list[str], out: str) -> None:
    """Concatenate datasets of the same lattice and model (trajectory ids kept distinct)."""
    parts = [read_dataset(p) for p in paths]
    ref = parts[0][1]
    for p, (_, a) in zip(paths, parts):
        for k in ("lattice", "L1", "L2", "J", "t", "kT", "filling", "mu"):
            if a.get(k) != ref.get(k):
                raise NearsightError(f"dataset {p!r} has {k}={a.get(k)!r}, but {paths[0]!r} has {ref.get(k)!r}")
    arrs, offset = {}, 0
    for arrays, _ in parts:
        a = dict(arrays)
        a["trajectory"] = a["trajectory"] + offset
        offset = int(a["trajectory"].max()) + 1
        for k, v in a.items():
            arrs.setdefault(k, []).append(v)
    cat = {k: np.concatenate(v) for k, v in arrs.items()}
    write_dataset(out, cat["spins"], cat["fields"], cat["energy"], trajectory=cat["trajectory"],
                  time=cat.get("time"), kT_llg=cat.get("kT_llg"), attrs=ref)


# ----------------------------------------------------------------------------------------- trajectories
class TrajectoryWriter:
    """Append LLG frames to ``path + '.partial'``; :meth:`finish` renames it onto ``path``.

    After every frame the integrator state (spins, step, time, RNG state) is written to ``/checkpoint`` and
    the file flushed, so a run killed at any point resumes from its last frame (:meth:`resume_state`) with
    nothing lost: frames written after the checkpoint, if any, are dropped on resume.
    """

    def __init__(self, path: str, *, n_replicas: int, n_sites: int, attrs: dict, save_fields: bool = True,
                 resume: bool = False):
        self.path, self.partial = path, path + ".partial"
        check_writable(path)
        if resume:
            if not os.path.exists(self.partial):
                raise NearsightError(f"nothing to resume: {self.partial!r} does not exist (a finished run is at "
                                     f"{path!r}; start a new run without --resume)")
            try:
                self.f = h5py.File(self.partial, "a")
            except OSError:
                raise NearsightError(f"cannot resume: {self.partial!r} is corrupt; delete it and start "
                                     f"again") from None
            if "checkpoint" not in self.f:
                raise NearsightError(f"cannot resume: {self.partial!r} has no checkpoint; delete it and restart")
            n = int(self.f["checkpoint"].attrs["n_frames"])
            for k in ("spins", "fields", "energy", "time", "step"):
                if k in self.f:
                    self.f[k].resize(n, axis=0)
            return
        if os.path.exists(self.partial):
            raise NearsightError(f"{self.partial!r} exists from an interrupted run: pass --resume to continue it, "
                                 f"or delete it to start over")
        self.f = h5py.File(self.partial, "w")
        B, N = n_replicas, n_sites
        self.f.create_dataset("spins", (0, B, N, 3), maxshape=(None, B, N, 3), chunks=(1, B, N, 3), dtype="f8")
        if save_fields:
            self.f.create_dataset("fields", (0, B, N, 3), maxshape=(None, B, N, 3), chunks=(1, B, N, 3), dtype="f8")
        self.f.create_dataset("energy", (0, B), maxshape=(None, B), dtype="f8")
        self.f.create_dataset("time", (0,), maxshape=(None,), dtype="f8")
        self.f.create_dataset("step", (0,), maxshape=(None,), dtype="i8")
        write_attrs(self.f, {"kind": "nearsight-trajectory", **attrs})

    @property
    def n_frames(self) -> int:
        return int(self.f["time"].shape[0])

    def resume_state(self) -> dict:
        c = self.f["checkpoint"]
        return {"spins": c["spins"][()], "rng_state": c["rng_state"][()], "step": int(c.attrs["step"]),
                "time": float(c.attrs["time"])}

    def append(self, step: int, time: float, spins, energy, fields=None) -> None:
        n = self.n_frames
        for k, v in (("spins", spins), ("energy", energy), ("fields", fields), ("time", time), ("step", step)):
            if k in self.f and (v is not None):
                d = self.f[k]
                d.resize(n + 1, axis=0)
                d[n] = v

    def checkpoint(self, spins, rng_state, step: int, time: float) -> None:
        if "checkpoint" in self.f:
            del self.f["checkpoint"]
        c = self.f.create_group("checkpoint")
        c.create_dataset("spins", data=np.asarray(spins))
        c.create_dataset("rng_state", data=np.asarray(rng_state, dtype=np.uint8))
        write_attrs(c, {"step": int(step), "time": float(time), "n_frames": self.n_frames})
        self.f.flush()

    def finish(self) -> str:
        self.f.attrs["complete"] = True
        self.f.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        """Close without finishing (the partial file stays, resumable)."""
        if self.f.id.valid:
            self.f.flush()
            self.f.close()


def read_trajectory(path: str) -> tuple[dict, dict]:
    """All arrays and attributes of a finished trajectory file."""
    with open_h5(path, "trajectory") as f:
        if f.attrs.get("kind") != "nearsight-trajectory":
            raise NearsightError(f"{path!r} is not a nearsight trajectory (kind={f.attrs.get('kind')!r})")
        arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        return arrays, read_attrs(f)
