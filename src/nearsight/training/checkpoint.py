"""The training checkpoint: one atomic file holding everything a resumed run needs (weights, EMA, optimizer,
plateau scheduler, early stopping, history), refused with a one-line error when unusable or made otherwise."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import NearsightError
from ..io import atomic_path

NEEDED = {"epoch", "learn", "ema", "optimizer", "plateau", "early_stopping", "config", "history", "val_ids"}


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(str(path)) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, c: dict, resumable=(), defaults: dict | None = None,
                    why: dict | None = None) -> dict | None:
    """The checkpoint at ``path`` if ``c['resume']`` and it exists; its config must equal ``c`` except for the
    keys in ``resumable`` (epochs, output, device, ...). A key the checkpoint's config lacks (added to the
    program after the run started) counts as its value in ``defaults``, the behaviour the run was made with. A
    refusal names every differing key with both values (and ``why[key]`` where given)."""
    if not path.exists() or not c["resume"]:
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the checkpoint is unusable
        raise NearsightError(f"checkpoint {str(path)!r} is corrupt ({type(exc).__name__}); delete it to start "
                             f"over, or set resume: false") from None
    if not isinstance(ck, dict) or not NEEDED <= set(ck):
        raise NearsightError(f"checkpoint {str(path)!r} is incomplete or from another program or version; delete "
                             f"it or set resume: false")
    old = {**{k: v for k, v in (defaults or {}).items() if k not in ck["config"]}, **ck["config"]}
    old = {k: v for k, v in old.items() if k not in resumable}
    new = {k: v for k, v in c.items() if k not in resumable}
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        said = "; ".join(f"{k} is {new.get(k)!r} now but {old.get(k)!r} in the checkpoint"
                         + (f": {why[k]}" if why and k in why else "") for k in diff)
        raise NearsightError(f"checkpoint {str(path)!r} was made with different settings ({said}); "
                             f"use another out directory, restore the settings, or set resume: false")
    return ck


def arrays_digest(arrays: dict) -> str:
    """SHA-256 of a dataset's arrays (names, dtypes, shapes, values; not its provenance attributes), so a dataset
    made again with the same content keeps its digest and any other content changes it. Computed on the arrays
    the training has already read (``training.data.load_frames``): no second read of the files."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
        h.update(memoryview(a).cast("B"))       # the bytes, without a copy
    return h.hexdigest()


def check_data(ck: dict, digest: dict, path: Path) -> bool:
    """Whether the checkpoint ``ck`` records the digests of its datasets (a checkpoint written before they were
    recorded does not, and cannot be checked); a dataset whose arrays changed since it was written is an error."""
    old = ck.get("data_sha256")
    if old is None:
        return False
    changed = [p for p in digest if old.get(p) != digest[p]]
    if changed:
        raise NearsightError(f"dataset(s) {', '.join(repr(p) for p in changed)} changed since the checkpoint "
                             f"{str(path)!r} was written (their arrays differ): restore them, use another out "
                             f"directory, or set resume: false")
    return True
