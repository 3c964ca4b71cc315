"""HDF5 trajectories and datasets (h5py), written so that no half-written file is ever left behind.

Trajectory file: see :mod:`nearsight.trajectory` (``TrajectoryWriter`` and ``read_trajectory`` live
there).

Dataset file (training labels, one row per snapshot):
    /spins [F, N, 3] f8   /fields [F, N, 3] f8   /energy [F] f8
    /trajectory [F] i8 (which quench a frame came from: split by it)   /time [F] f8   /kT_llg [F] f8
    attrs: lattice, L1, L2, provider and its parameters (J, t, t2, B, kT, filling or mu), generation settings.

Files are written under a temporary name and renamed onto ``NAME`` only when complete (``os.replace`` is
atomic); a trajectory in progress lives in ``NAME.partial`` with its checkpoint in ``NAME.partial.ckpt`` and is
resumed from there (:class:`TrajectoryWriter` says how that survives kills and full disks). Every file carries
:func:`nearsight.runtime.provenance` attributes (versions, git revision, command line, time, units).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager

import h5py
import numpy as np

from .errors import NearsightError
from .runtime import PROVENANCE_KEYS, file_sha256, provenance


def read_yaml(path: str, what: str = "config file", keys_hint: str = "keys to values") -> dict:
    """A YAML file that must hold a mapping: the one config reader (CLI, training, studies); a one-line
    NearsightError naming ``what`` and the path if it is missing, malformed or not a mapping."""
    import yaml
    if not os.path.isfile(path):
        raise NearsightError(f"{what} {path!r} does not exist")
    try:
        with open(path) as fh:
            cfg = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise NearsightError(f"{what} {path!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    cfg = {} if cfg is None else cfg
    if not isinstance(cfg, dict):
        raise NearsightError(f"{what} {path!r} must be a mapping of {keys_hint}")
    return cfg

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


def check_writable(path: str, flag: str = "--out") -> None:
    """Fail before any work if ``path`` cannot be written: a directory, a missing directory, or one where a file
    cannot be created (read-only, ``/proc``, no permission: tried, not guessed from the mode bits)."""
    import tempfile
    if os.path.isdir(path):
        raise NearsightError(f"{flag} {path!r} is a directory; give a file name, e.g. "
                             f"{os.path.join(path, 'out.h5')!r}")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise NearsightError(f"output directory {d!r} does not exist; create it or choose another {flag}")
    try:
        with tempfile.NamedTemporaryFile(dir=d, prefix=".nearsight-probe-"):
            pass
    except OSError as exc:
        raise NearsightError(f"cannot write in {d!r} ({exc.strerror or type(exc).__name__}); choose another "
                             f"{flag}") from None


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
        kept = {k: v for k, v in (attrs or {}).items() if k not in PROVENANCE_KEYS}
        write_attrs(f, {**_portable(kept), **provenance(), "kind": "nearsight-dataset"})


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


def _portable(attrs: dict) -> dict:
    """Attributes with a model file's absolute path replaced by its name and SHA-256 (``*model_path`` keys)."""
    out = {}
    for k, v in attrs.items():
        if k.endswith("model_path") and isinstance(v, str) and os.path.isfile(v):
            out[k] = os.path.basename(v)
            out[k[: -len("path")] + "sha256"] = file_sha256(v)
        else:
            out[k] = v
    return out
