"""Training datasets from LLG quench trajectories (design.md §1: label the configurations the model will meet).

For each bath temperature in ``kTs``, ``replicas`` quenches from random spins are integrated with the chosen
provider; every ``every`` steps after ``skip`` a frame is kept with its exact energy and fields (the provider's
own labels, float64). Each temperature block is saved under ``OUT.parts/`` as it completes, so an interrupted
generation resumes at the next block; the final dataset is written atomically.
"""
from __future__ import annotations

import os
import shutil

import numpy as np

from ..electrons.base import FieldProvider
from ..errors import NearsightError
from ..io import check_writable, read_dataset, write_dataset
from ..states import make_state
from .run import run_llg


def generate_dataset(provider: FieldProvider, out: str, *, kTs, replicas: int, steps: int, every: int,
                     skip: int = 0, dt: float = 0.05, alpha: float = 0.5, scheme: str = "heun", seed: int = 0,
                     initial: str = "random", noise: float = 0.0, progress: bool = True) -> str:
    kTs = [float(k) for k in kTs]
    initial = str(initial)
    if not kTs or min(kTs) < 0:
        raise NearsightError("kTs (bath temperatures of the quenches) must be a non-empty list of numbers >= 0")
    if replicas < 1 or steps < 1 or every < 1 or skip < 0 or skip > steps:
        raise NearsightError("need replicas >= 1, steps >= 1, every >= 1 and 0 <= skip <= steps")
    check_writable(out)
    parts = out + ".parts"
    os.makedirs(parts, exist_ok=True)
    lat = provider.lattice
    settings = {**provider.describe(), "replicas": replicas, "steps": steps, "every": every, "skip": skip,
                "dt": dt, "alpha": alpha, "scheme": scheme, "seed": seed, "initial": initial, "noise": noise}
    for b, kT in enumerate(kTs):
        part = os.path.join(parts, f"block{b:03d}.h5")
        if os.path.exists(part):  # finished before an interruption: reuse only if made with these settings
            old = read_dataset(part)[1]
            if any(old.get(k) != (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()) \
                    or old.get("kT_block") != kT:
                raise NearsightError(f"{part!r} was made with other settings; delete {parts!r} to start over")
            continue
        s0 = make_state(initial, lat, seed=seed * 1000 + b, noise=noise, batch=replicas)
        frames = []

        def keep(step, t, spins, res, _f=frames):
            if step >= skip:
                _f.append((t, spins.cpu().numpy(), res.fields.detach().cpu().numpy(),
                           res.energy.detach().cpu().numpy()))

        run_llg(provider, s0, steps=steps, dt=dt, alpha=alpha, kT=kT, scheme=scheme, seed=seed * 1000 + b,
                every=every, observers=[keep], progress=progress)
        t = np.array([f[0] for f in frames])
        sp, fi, en = (np.stack([f[k] for f in frames], 1) for k in (1, 2, 3))  # [B, F, ...]
        traj = np.repeat(np.arange(replicas) + b * replicas, len(frames))
        write_dataset(part, sp.reshape(-1, lat.N, 3), fi.reshape(-1, lat.N, 3), en.reshape(-1), trajectory=traj,
                      time=np.tile(t, replicas), kT_llg=np.full(traj.shape, kT), attrs={**settings, "kT_block": kT})
    arrays = [read_dataset(os.path.join(parts, f"block{b:03d}.h5"))[0] for b in range(len(kTs))]
    cat = {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]}
    attrs = {**settings, "generator": "llg-quench", "kTs": kTs}
    write_dataset(out, cat["spins"], cat["fields"], cat["energy"], trajectory=cat["trajectory"], time=cat["time"],
                  kT_llg=cat["kT_llg"], attrs=attrs)
    shutil.rmtree(parts)
    return out
