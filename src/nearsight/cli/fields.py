"""``nearsight fields``: energy and local fields of one spin configuration (the stable contract).

Reads spins ``[N, 3]`` from a ``.npy`` file and writes ``energy`` (float64 scalar) and ``fields`` ``[N, 3]`` to
an ``.npz``: ``nearsight fields --lattice triangular --size 12 --J 2 --filling 0.25 --kT 0.01 --solver ed
--spins s.npy --out f.npz``. ``--solver negf --bias V`` (square lattice, grand canonical, ``kT > 0``) reads the
``L1 x L2`` lattice as a strip open along x between two leads at ``mu +- V/2``; its fields are not a gradient and
its energy is the sample band energy (see :mod:`nearsight.electrons.negf`).
"""
from __future__ import annotations

import numpy as np

from ..io import atomic_path, check_writable
from ..states import load_spins
from .common import add_physics_args, add_solver_args, build_provider, physics_from


def add_parser(sub):
    p = sub.add_parser("fields", help="energy and exchange fields of a spin configuration")
    add_physics_args(p)
    add_solver_args(p)
    p.add_argument("--spins", required=True, help="input .npy, shape [N,3] unit vectors")
    p.add_argument("--out", required=True, help="output .npz with 'energy' and 'fields'")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = vars(args)
    lattice, model = physics_from(cfg)
    out = args.out if args.out.endswith(".npz") else args.out + ".npz"
    check_writable(out)
    provider = build_provider(cfg, lattice, model)
    spins = load_spins(args.spins, lattice)
    res = provider.compute(spins)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, energy=np.float64(res.energy.detach().cpu().numpy()),
                     fields=res.fields.detach().cpu().numpy().astype(np.float64))
    print(f"energy = {float(res.energy):.12g}  ->  {out}")
    return 0
