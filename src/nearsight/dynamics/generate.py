"""Training datasets from LLG quench trajectories (design.md §1: label the configurations the model will meet).

For each bath temperature in ``kTs``, ``replicas`` quenches from random spins are integrated with the chosen
provider; every ``every`` steps after ``skip`` a frame is kept with its exact energy and fields (the provider's
own labels, float64). Each temperature block is saved under ``OUT.parts/`` as it completes, so an interrupted
generation resumes at the next block; the final dataset is written atomically.

With a ``driver`` (typically an :class:`~nearsight.ml.provider.MLProvider` trained on a first round of such
data) the quenches are integrated with the driver and only the kept frames are labelled by ``provider``: a frame
then costs one ED evaluation instead of the ``2 * every`` evaluations of the Heun steps between two frames, so
many more independent trajectories fit the same budget. The labels stay exact; only the sampling of
configurations comes from the driver (recorded in the dataset's ``driver`` attributes).

:func:`relabel_dataset` keeps a dataset's configurations and replaces its labels by another provider's (another
electronic temperature, ensemble or solver).
"""
from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
from tqdm import tqdm

from ..electrons.base import FieldProvider
from ..errors import NearsightError
from ..hamiltonian import SDModel
from ..io import check_writable, read_dataset, write_dataset
from ..states import make_state
from .run import run_llg


def generate_dataset(provider: FieldProvider, out: str, *, kTs, replicas: int, steps: int, every: int,
                     skip: int = 0, dt: float = 0.05, alpha: float = 0.5, scheme: str = "heun", seed: int = 0,
                     initial: str = "random", noise: float = 0.0, driver: FieldProvider | None = None,
                     label_batch: int = 16, progress: bool = True) -> str:
    """Write the dataset ``out`` (see the module docstring) and return its path. ``driver``: a provider that
    integrates the quenches in place of ``provider`` (same lattice), whose kept frames ``provider`` labels."""
    kTs = [float(k) for k in kTs]
    initial = str(initial)
    if not kTs or min(kTs) < 0:
        raise NearsightError("kTs (bath temperatures of the quenches) must be a non-empty list of numbers >= 0")
    if replicas < 1 or steps < 1 or every < 1 or skip < 0 or skip > steps:
        raise NearsightError("need replicas >= 1, steps >= 1, every >= 1 and 0 <= skip <= steps")
    if driver is not None and driver.lattice != provider.lattice:
        raise NearsightError(f"the driver runs on {driver.lattice!r} but the labels are for {provider.lattice!r}; "
                             f"build both for the same lattice")
    check_writable(out)
    parts = out + ".parts"
    os.makedirs(parts, exist_ok=True)
    lat = provider.lattice
    settings = {**provider.describe(), "replicas": replicas, "steps": steps, "every": every, "skip": skip,
                "dt": dt, "alpha": alpha, "scheme": scheme, "seed": seed, "initial": initial, "noise": noise}
    if driver is not None:
        settings.update({f"driver_{k}": v for k, v in driver.describe().items()
                         if v is not None and k not in ("lattice", "L1", "L2")})
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
                labels = () if driver is not None else (res.fields.detach().cpu().numpy(),
                                                        res.energy.detach().cpu().numpy())
                _f.append((t, spins.cpu().numpy(), *labels))

        run_llg(driver or provider, s0, steps=steps, dt=dt, alpha=alpha, kT=kT, scheme=scheme,
                seed=seed * 1000 + b, every=every, observers=[keep], progress=progress)
        t = np.array([f[0] for f in frames])
        sp = np.stack([f[1] for f in frames], 1)  # [B, F, N, 3]
        if driver is None:
            fi, en = (np.stack([f[k] for f in frames], 1) for k in (2, 3))
        else:
            fi, en = _label(provider, sp.reshape(-1, lat.N, 3), label_batch, progress)
            fi, en = fi.reshape(sp.shape), en.reshape(sp.shape[:2])
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


def relabel_dataset(provider: FieldProvider, source: str, out: str, *, label_batch: int = 16,
                    progress: bool = True) -> str:
    """Write ``out``: the configurations of the dataset ``source`` with ``provider``'s exact labels. The sampling
    record (trajectory ids, times, bath temperatures, generator settings) is kept; the physics attributes are
    the provider's, and ``source`` names where the configurations came from."""
    check_writable(out)
    arrays, attrs = read_dataset(source)
    lat = provider.lattice
    if (attrs.get("lattice"), attrs.get("L1"), attrs.get("L2")) != (lat.kind, lat.L1, lat.L2):
        raise NearsightError(f"{source!r} holds {attrs.get('lattice')} {attrs.get('L1')}x{attrs.get('L2')} "
                             f"configurations but the labels are asked for {lat!r}; give the source's lattice and size")
    fields, energy = _label(provider, arrays["spins"], label_batch, progress)
    physics = {"provider", "kind", *(f.name for f in dataclasses.fields(SDModel))}   # replaced by the new labels'
    kept = {k: v for k, v in attrs.items() if k not in physics}
    write_dataset(out, arrays["spins"], fields, energy, trajectory=arrays["trajectory"], time=arrays.get("time"),
                  kT_llg=arrays.get("kT_llg"), attrs={**kept, **provider.describe(), "source": source,
                                                      "source_provider": attrs.get("provider"),
                                                      "source_kT": attrs.get("kT")})
    return out


def _label(provider: FieldProvider, spins: np.ndarray, batch: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Exact fields and energies of ``spins [F, N, 3]``, ``batch`` frames per call."""
    fields, energy = [], []
    for i in tqdm(range(0, len(spins), batch), desc=f"labels ({provider.name})", unit="batch", disable=not progress,
                  leave=False):
        r = provider(spins[i:i + batch])
        fields.append(r.fields.detach().cpu().numpy())
        energy.append(r.energy.detach().cpu().numpy())
    return np.concatenate(fields).astype(np.float64), np.concatenate(energy).astype(np.float64)
