"""Trajectory files: the crash-safe :class:`TrajectoryWriter`, the output lock, and :func:`read_trajectory`.

Layout (one LLG run, ``B`` replicas, ``F`` frames, allocated at full size when the file is created):
    /spins  [F, B, N, 3] f8     /fields [F, B, N, 3] f8 (optional)     /energy [F, B] f8
    /time   [F] f8              /step   [F] i8
    /NAME   [F, B] f8 for every per-replica number a provider returns among its extras (``mu`` and ``n_electrons``
            of ED and of canonical or mu-conditioned ML models: the chemical potential and the electron count of
            each frame); created with the first frame and listed in the attribute ``frame_extras``
    attrs: every parameter of the run, provenance, ``format``, ``n_frames_total``; ``complete`` True only once
    finished. A run in progress is ``NAME.partial`` with its checkpoint ``NAME.partial.ckpt``; ``NAME.lock`` is
    the lock taken while a process writes it.
"""
from __future__ import annotations

import errno
import hashlib
import os

import h5py
import numpy as np

from .errors import NearsightError, WriteFailed, warn
from .io import _portable, check_writable, open_h5, read_attrs, write_attrs
from .runtime import PROVENANCE_KEYS, provenance


CORE = ("spins", "fields", "energy", "time", "step")    # datasets every trajectory has (fields optional)
#: checkpoint entries that hold the field provider's warm state (``provider.NAME``)
PROVIDER_KEY = "provider."


# ---------------------------------------------------------------------------------------------- locking
def lock_output(path: str) -> int:
    """Take an exclusive lock on ``path`` for this process's life (``fcntl.flock`` on ``path + '.lock'``, which
    works where HDF5's own locking is switched off, e.g. ``HDF5_USE_FILE_LOCKING=FALSE``). Returns the lock's file
    descriptor for :func:`unlock_output`; a second writer gets one line naming the path and the holder's PID."""
    import fcntl
    lock = path + ".lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise NearsightError(f"cannot create the lock file {lock!r} ({exc.strerror}); choose a writable "
                                 f"--out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise NearsightError(f"{path!r} is in use by another nearsight process (PID {pid}) writing it; wait for "
                                 f"that run to end or choose another --out") from None
        try:                              # the holder may have finished and unlinked the file we opened: retry
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def unlock_output(path: str, fd: int | None) -> None:
    if fd is None:
        return
    try:
        os.unlink(path + ".lock")
    except OSError:
        pass
    os.close(fd)


# ----------------------------------------------------------------------------------------- trajectories
def n_frames_of(steps: int, every: int) -> int:
    """Frames of a run: steps 0, every, 2 every, ... and the last step."""
    return int(steps) // int(every) + 1 + (1 if int(steps) % int(every) else 0)


def frame_steps(steps: int, every: int) -> list[int]:
    return sorted(set(range(0, int(steps) + 1, int(every))) | {int(steps)})


def _digest(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()


# run parameters that may differ on resume: provenance (who, when, how many threads)
_NOT_COMPARED = {*PROVENANCE_KEYS, "kind", "complete", "n_frames_total", "format", "frame_extras"}


def settings_mismatch(old: dict, attrs: dict) -> str | None:
    """How the run settings ``attrs`` (provider, integrator, seeds, ...; as :func:`~nearsight.dynamics.run_llg`
    writes them) differ from a trajectory file's attributes ``old`` — ``"KEY is NEW now but OLD in the file"`` for
    the first differing key — or ``None`` if they match. Provenance (versions, dates) is not compared; a model file
    is compared by its name and SHA-256."""
    new = roundtrip_attrs(_portable(attrs))
    for k in sorted(set(old) | set(new)):
        if k not in _NOT_COMPARED and old.get(k) != new.get(k):
            return f"{k} is {_show(new.get(k))} now but {_show(old.get(k))} in the file"
    return None


class TrajectoryWriter:
    """Write a trajectory to ``path + '.partial'``, crash-safe; :meth:`finish` renames it onto ``path``.

    * The datasets are allocated at full size when the file is created (``n_frames`` from the ``steps`` and
      ``every`` attributes) and the disk space is reserved then (``posix_fallocate``), so a full disk is reported
      before any work. After creation the file's HDF5 structure never changes until :meth:`finish`: a frame is
      raw data written into its own slot, so a kill at any moment cannot tear what earlier frames or the
      structure hold.
    * :meth:`checkpoint` flushes the frames, then writes the integrator state (spins, RNG state, step, time, the
      number of frames and a SHA-256 of the last one) to ``path + '.partial.ckpt'`` through a temporary file and
      ``os.replace``: the checkpoint is the commit marker, old or new, never half. On resume it is checked
      against the last frame it covers; frames written after it are overwritten.
    * The output is locked (:func:`lock_output`) from opening to :meth:`finish` / :meth:`close`.
    * A write that fails (full disk, quota, I/O error) raises :class:`~nearsight.errors.WriteFailed`; the file
      stays ``.partial`` with its last checkpoint, never marked complete.
    * ``resume=True`` checks every run parameter in ``attrs`` against the file's (provenance aside) and names the
      first that differs.
    """

    def __init__(self, path: str, *, n_replicas: int, n_sites: int, attrs: dict, save_fields: bool = True,
                 resume: bool = False, overwrite: bool = False, n_frames: int | None = None):
        self.path, self.partial, self.ckpt = path, path + ".partial", path + ".partial.ckpt"
        self.f, self._lock = None, None
        if n_frames is None:
            if attrs.get("steps") is None or attrs.get("every") is None:
                raise NearsightError("TrajectoryWriter needs n_frames, or 'steps' and 'every' in attrs")
            n_frames = n_frames_of(attrs["steps"], attrs["every"])
        self.n_total = int(n_frames)
        check_writable(path)
        if n_replicas < 1:
            raise NearsightError(f"need at least one replica, got {n_replicas}; give --replicas >= 1")
        self._lock = lock_output(path)
        self._created = False
        try:
            self._open(attrs, n_replicas, n_sites, save_fields, resume, overwrite)
        except BaseException:
            self._close_file()
            if self._created:
                _remove(self.partial)          # a file that failed while being created holds nothing
            self._release()
            raise

    # ------------------------------------------------------------------------------------------ opening
    def _open(self, attrs, B, N, save_fields, resume, overwrite):
        has_partial, has_ckpt = os.path.exists(self.partial), os.path.exists(self.ckpt)
        if overwrite:
            for p in (self.path, self.partial, self.ckpt):
                if os.path.exists(p):
                    os.remove(p)
            has_partial = has_ckpt = False
        elif has_partial and not has_ckpt and self._fresh_debris():
            os.remove(self.partial)        # created, then stopped before its first checkpoint: nothing to keep
            if resume:                     # nothing was committed, so nothing is lost by starting at step 0
                warn(f"{self.partial!r} was stopped before its first checkpoint: starting it again from step 0")
                self._create(attrs, B, N, save_fields)
                return
            has_partial = False
        if resume:
            if not has_partial:
                if has_ckpt:
                    os.remove(self.ckpt)    # stale: the run finished between its rename and this cleanup
                what = (f"{self.path!r} is a finished run" if os.path.exists(self.path)
                        else f"neither {self.path!r} nor {self.partial!r} exists")
                raise NearsightError(f"nothing to resume: {what}; start a new run without --resume (with "
                                     f"--overwrite to replace a finished one)")
            self._resume(attrs)
            return
        if has_partial:
            raise NearsightError(f"{self.partial!r} holds an interrupted run: continue it with --resume, or start "
                                 f"over with --overwrite")
        if os.path.exists(self.path):
            raise NearsightError(f"{self.path!r} exists (a finished run); choose another --out, or pass --overwrite "
                                 f"to replace it")
        self._create(attrs, B, N, save_fields)

    def _slots(self, name: str, shape, dtype) -> None:
        """A dataset allocated now, contiguous and never filled: frames are raw writes into fixed slots."""
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        self.f.create_dataset(name, shape, dtype=dtype, dcpl=dcpl)

    def _fresh_debris(self) -> bool:
        try:
            with h5py.File(self.partial, "r") as f:
                return f.attrs.get("format") == FORMAT
        except OSError:
            return True                   # killed while HDF5 created it: not even a valid file

    def _create(self, attrs, B, N, save_fields):
        F = self.n_total
        self._created = True
        try:
            self.f = h5py.File(self.partial, "w")
            for k, shape, dt in (("spins", (F, B, N, 3), "f8"), ("fields", (F, B, N, 3), "f8"),
                                 ("energy", (F, B), "f8"), ("time", (F,), "f8"), ("step", (F,), "i8")):
                if k == "fields" and not save_fields:
                    continue
                self._slots(k, shape, dt)
            kept = {k: v for k, v in attrs.items() if k not in PROVENANCE_KEYS}
            write_attrs(self.f, {"kind": "nearsight-trajectory", **provenance(), **_portable(kept),
                                 "format": FORMAT, "n_frames_total": F})
            self.f.attrs.create("complete", False)                 # flipped in place by finish()
            self.f.flush()
            size = os.path.getsize(self.partial)
        except H5_ERRORS as exc:
            raise WriteFailed(f"cannot create {self.partial!r}: {_why(exc)}; free space or choose another "
                              f"--out" if _errno(exc) not in _FULL else f"not enough disk space for "
                              f"{self.partial!r} ({_why(exc)}); free space or choose another --out") from None
        _reserve(self.partial, size)
        self._n, self._ck, self.fresh = 0, None, True
        self._created = False

    def _resume(self, attrs):
        self.fresh = False
        try:
            self.f = h5py.File(self.partial, "r+")
        except OSError:
            raise NearsightError(f"cannot resume: {self.partial!r} is not a readable HDF5 file; start over with "
                                 f"--overwrite") from None
        if self.f.attrs.get("format") != FORMAT:
            raise NearsightError(f"cannot resume {self.partial!r}: written by another version of nearsight (no "
                                 f"crash-safe checkpoint); start over with --overwrite")
        old = read_attrs(self.f)
        diff = settings_mismatch(old, attrs)
        if diff:
            raise NearsightError(f"cannot resume {self.partial!r}: {diff}; resume with the run's own parameters, or "
                                 f"start a new run with another --out")
        if int(old.get("n_frames_total", -1)) != self.n_total:
            raise NearsightError(f"cannot resume {self.partial!r}: it holds {old.get('n_frames_total')} frames, "
                                 f"this run {self.n_total}")
        if old.get("complete"):          # killed between marking complete and the rename: only the rename is left
            self._n = self.n_total
            self._ck = None
            return
        if not os.path.exists(self.ckpt):
            raise NearsightError(f"cannot resume {self.partial!r}: its checkpoint {self.ckpt!r} is missing; start "
                                 f"over with --overwrite")
        try:
            with np.load(self.ckpt, allow_pickle=False) as z:
                ck = {k: z[k] for k in z.files}
        except Exception:    # noqa: BLE001 - numpy raises many types for a damaged file
            raise NearsightError(f"cannot resume: the checkpoint {self.ckpt!r} is unreadable; start over with "
                                 f"--overwrite") from None
        n = int(ck["n_frames"])
        ok = 0 <= n <= self.n_total
        if ok and n > 0:
            ok = (int(self.f["step"][n - 1]) == int(ck["last_step"])
                  and _digest(self.f["spins"][n - 1]) == str(ck["last_digest"]))
        if not ok:
            raise NearsightError(f"cannot resume {self.partial!r}: its checkpoint (step {int(ck['step'])}, "
                                 f"{n} frames) does not match the frames in the file (changed or damaged); start "
                                 f"over with --overwrite")
        self._n, self._ck = n, ck

    # --------------------------------------------------------------------------------------- interface
    @property
    def n_frames(self) -> int:
        """Frames written so far (committed by a checkpoint, or pending the next one)."""
        return self._n

    @property
    def complete(self) -> bool:
        return self._ck is None and self._n == self.n_total and bool(self.f.attrs.get("complete"))

    def resume_state(self) -> dict:
        """The checkpoint: spins, rng_state, step, time, n_frames, provider_state."""
        ck = self._ck
        if ck is None:
            raise NearsightError(f"{self.partial!r} is complete; nothing to resume")
        return {"spins": ck["spins"], "rng_state": ck["rng_state"], "step": int(ck["step"]),
                "time": float(ck["time"]), "n_frames": int(ck["n_frames"]),
                "provider_state": {k[len(PROVIDER_KEY):]: v for k, v in ck.items() if k.startswith(PROVIDER_KEY)}}

    def append(self, step: int, time: float, spins, energy, fields=None, extras: dict | None = None) -> None:
        """Write frame ``n`` into its slot. ``extras`` (name -> ``[B]`` numbers) are kept per frame: the names of
        the first frame of a new file define ``/NAME`` datasets (``frame_extras``); later frames write those."""
        n = self._n
        if n >= self.n_total:
            raise NearsightError(f"{self.partial!r} holds {self.n_total} frames; frame {n + 1} (step {step}) does "
                                 f"not fit (steps or every changed?)")
        try:
            if n == 0 and self.fresh and extras:
                self._create_extras(extras, np.shape(energy))
            names = self.frame_extras
            for k, v in (("spins", spins), ("energy", energy), ("fields", fields), ("time", time), ("step", step),
                         *((k, (extras or {}).get(k)) for k in names)):
                if k in self.f and v is not None:
                    self.f[k][n] = v
        except H5_ERRORS as exc:
            raise WriteFailed(self._failed(step, exc)) from None
        self._n = n + 1
        self._last = (int(step), _digest(spins))

    @property
    def frame_extras(self) -> tuple[str, ...]:
        """Names of the per-frame, per-replica extras this file keeps."""
        return tuple(self.f.attrs.get("frame_extras", ())) if self.f is not None else ()

    def _create_extras(self, extras: dict, shape) -> None:
        names = tuple(k for k in sorted(extras) if k not in CORE and np.shape(extras[k]) == tuple(shape))
        for k in names:
            self._slots(k, (self.n_total, *shape), "f8")
        self.f.attrs["frame_extras"] = np.array(names, dtype=h5py.string_dtype())

    def checkpoint(self, spins, rng_state, step: int, time: float, provider_state: dict | None = None) -> None:
        """Flush the frames, then commit the state at ``step`` (after the frames so far) atomically, with the field
        provider's warm state (:meth:`~nearsight.fields.FieldProvider.warm_state`) that step's evaluation starts
        from."""
        n = self._n
        last_step, last_digest = (self._last if n and getattr(self, "_last", None) else
                                  (int(self.f["step"][n - 1]), _digest(self.f["spins"][n - 1])) if n else (-1, ""))
        tmp = self.ckpt + ".tmp"
        try:
            self.f.flush()
            with open(tmp, "wb") as fh:
                np.savez(fh, spins=np.asarray(spins, dtype=np.float64), rng_state=np.asarray(rng_state, np.uint8),
                         step=np.int64(step), time=np.float64(time), n_frames=np.int64(n),
                         last_step=np.int64(last_step), last_digest=np.str_(last_digest),
                         **{PROVIDER_KEY + k: np.asarray(v, dtype=np.float64)
                            for k, v in (provider_state or {}).items()})
            os.replace(tmp, self.ckpt)
        except H5_ERRORS as exc:
            _remove(tmp)
            raise WriteFailed(self._failed(step, exc)) from None

    def finish(self) -> str:
        """Mark the file complete, rename it onto ``path``, drop the checkpoint and the lock."""
        if self._n != self.n_total:
            raise NearsightError(f"{self.partial!r} has {self._n} of {self.n_total} frames; it cannot be finished")
        try:
            self.f.attrs.modify("complete", True)
            self.f.flush()
            self.f.close()
            os.replace(self.partial, self.path)
        except H5_ERRORS as exc:
            raise WriteFailed(f"finishing {self.path!r} failed: {_why(exc)}; the run is complete in "
                              f"{self.partial!r}: free space and rerun with --resume to finish it") from None
        finally:
            self._close_file()
        _remove(self.ckpt)
        self._release()
        return self.path

    def close(self) -> None:
        """Close without finishing: the partial file and its last checkpoint stay, resumable."""
        self._close_file()
        if not os.path.exists(self.ckpt) and self._fresh_debris():
            _remove(self.partial)        # nothing was committed: nothing to resume
        self._release()

    def _close_file(self):
        if self.f is not None and self.f.id.valid:
            try:
                self.f.close()
            except H5_ERRORS:                 # the disk that failed a write may fail the close too
                pass

    def _release(self):
        unlock_output(self.path, self._lock)
        self._lock = None

    def _failed(self, step, exc) -> str:
        return (f"writing {self.partial!r} failed at step {step}: {_why(exc)}; the run stopped and the file "
                f"stays resumable from its last checkpoint (free space, then rerun with --resume)")

    def __del__(self):
        try:
            self._close_file()
            self._release()
        except Exception:    # noqa: BLE001 - interpreter shutdown
            pass


FORMAT = "nearsight-trajectory-2"


H5_ERRORS = (OSError, RuntimeError)      # h5py raises RuntimeError when HDF5 fails to flush
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _errno(exc: Exception) -> int | None:
    """The errno of an OSError, or the one HDF5 reports inside an h5py error message."""
    import re
    if isinstance(exc, OSError) and exc.errno:
        return exc.errno
    m = re.search(r"errno = (\d+)", str(exc))
    return int(m.group(1)) if m else None


def _why(exc: Exception) -> str:
    e = _errno(exc)
    if e:
        return f"{os.strerror(e)} (errno {e})"
    return " ".join(str(exc).split())[:200] if str(exc) else type(exc).__name__


def _show(v) -> str:
    return "absent" if v is None else repr(v)


def _remove(p: str) -> None:
    try:
        os.remove(p)
    except OSError:
        pass


def _reserve(path: str, size: int) -> None:
    """Reserve the disk blocks of ``path`` up to ``size`` bytes, so a full disk fails now, not mid-run."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in _FULL:
            raise WriteFailed(f"not enough disk space for {path!r}: it needs {size / 2**20:.1f} MiB "
                              f"({_why(exc)}); free space or choose another --out") from None
        # the filesystem cannot reserve (EOPNOTSUPP, EINVAL): write errors are still caught as they happen
    finally:
        os.close(fd)


def roundtrip_attrs(attrs: dict) -> dict:
    """``attrs`` as they read back from a file (written and read through an in-memory HDF5 file)."""
    with h5py.File(f"mem-{id(attrs)}.h5", "w", driver="core", backing_store=False) as f:
        write_attrs(f, attrs)
        return read_attrs(f)


def read_trajectory(path: str) -> tuple[dict, dict]:
    """All arrays and attributes of a finished trajectory file."""
    with open_h5(path, "trajectory") as f:
        if f.attrs.get("kind") != "nearsight-trajectory":
            raise NearsightError(f"{path!r} is not a nearsight trajectory (kind={f.attrs.get('kind')!r})")
        arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        return arrays, read_attrs(f)
