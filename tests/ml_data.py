"""Tiny labelled datasets for the ML tests: frames of ED-LLG quenches from random spins (design: labels on the
trajectories the model will meet, canonical mode at small electronic kT)."""
from __future__ import annotations

import numpy as np

from nearsight import Lattice, SDModel
from nearsight.dynamics import run_llg
from nearsight.electrons import EDProvider
from nearsight.io import write_dataset
from nearsight.states import random_spins

#: the physics of the test datasets: square lattice, J = 6, canonical n = 0.485, electronic kT = 0.01
PHYSICS = {"J": 6.0, "filling": 0.485, "kT": 0.01}


def quench_dataset(path: str, *, kind: str = "square", L: int = 6, n_traj: int = 4, steps: int = 40, every: int = 4,
                   dt: float = 0.05, alpha: float = 0.5, seed: int = 0, physics: dict | None = None,
                   first_id: int = 0) -> str:
    """Run ``n_traj`` replicas of a damped ED-LLG quench from random spins and write every ``every``-th frame
    (spins, exact energy and fields) as a dataset; each replica is one trajectory."""
    lat = Lattice(kind, L)
    model = SDModel(**(physics or PHYSICS))
    prov = EDProvider(lat, model)
    frames = []

    def grab(step, time, spins, result):
        frames.append((time, spins.numpy().copy(), result.fields.numpy().copy(), result.energy.numpy().copy()))

    s0 = random_spins(lat.N, np.random.default_rng(seed), batch=n_traj)
    run_llg(prov, s0, steps=steps, dt=dt, alpha=alpha, every=every, seed=seed, observers=[grab], progress=False)
    F = len(frames)
    spins = np.stack([f[1] for f in frames], 1).reshape(n_traj * F, lat.N, 3)   # [traj, frame] order
    fields = np.stack([f[2] for f in frames], 1).reshape(n_traj * F, lat.N, 3)
    energy = np.stack([f[3] for f in frames], 1).reshape(n_traj * F)
    traj = np.repeat(np.arange(n_traj) + first_id, F)
    time = np.tile([f[0] for f in frames], n_traj)
    write_dataset(path, spins, fields, energy, trajectory=traj, time=time, kT_llg=np.zeros(len(time)),
                  attrs={**prov.describe(), "generator": "tests/ml_data.py quench", "dt": dt, "alpha": alpha,
                         "seed": seed})
    return path
