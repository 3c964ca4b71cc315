"""``nearsight fields``: energy and local fields of one spin configuration (the stable contract).

Reads spins ``[N, 3]`` from a ``.npy`` file and writes ``energy`` (float64 scalar) and ``fields`` ``[N, 3]`` to
an ``.npz``: ``nearsight fields --lattice triangular --size 12 --J 2 --filling 0.25 --kT 0.01 --solver ed
--spins s.npy --out f.npz``. A stack ``[B, N, 3]`` of configurations gives ``energy [B]`` and ``fields [B, N, 3]``
(row ``b`` is exactly what ``[N, 3]`` spins ``b`` give). The ``.npz`` also holds ``provenance``, a JSON string
(versions, command line, time, units), and ``mu`` / ``n_electrons`` where the solver gives them (ED; a
mu-conditioned ML model, whose ``--filling`` solves ``mu*`` and ``--mu`` fixes it). An existing ``--out`` is refused
unless ``--overwrite``.
``--solver negf --bias V`` (square lattice, grand canonical, ``kT > 0``) reads the ``L1 x L2`` lattice as a strip
open along x between two leads at ``mu +- V/2``; its fields are not a gradient and its energy is the sample band
energy (see :mod:`nearsight.electrons.negf`).
"""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import NearsightError
from ..io import atomic_path
from ..runtime import provenance
from ..states import load_spins
from .common import add_physics_args, add_solver_args, lattice_from, output_path, provider_from


def add_parser(sub):
    p = sub.add_parser("fields", help="energy and exchange fields of a spin configuration",
                       description=__doc__.splitlines()[0])
    add_physics_args(p)
    add_solver_args(p)
    p.add_argument("--spins", required=True, help="input .npy, shape [N,3] (or a stack [B,N,3]) of unit vectors")
    p.add_argument("--out", required=True, help="output .npz with 'energy' and 'fields'")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = vars(args)
    lattice = lattice_from(cfg)
    if os.path.isdir(args.out):
        raise NearsightError(f"--out {args.out!r} is a directory; give a file name, e.g. "
                             f"{os.path.join(args.out, 'fields.npz')!r}")
    out = args.out if args.out.endswith(".npz") else args.out + ".npz"
    output_path(out, args.overwrite)
    provider = provider_from(cfg)
    spins = load_spins(args.spins, lattice)
    res = provider.compute(spins)
    energy = res.energy.detach().cpu().numpy().astype(np.float64)
    fields = res.fields.detach().cpu().numpy().astype(np.float64)
    if spins.ndim == 2:
        energy, fields = np.float64(energy.reshape(())), fields.reshape(spins.shape)
    # the chemical potential and electron count of the evaluation, when the provider gives them (ED; a
    # mu-conditioned ML model in either ensemble: the solved mu* of --filling)
    extras = {k: res.extras[k].detach().cpu().numpy().astype(np.float64).reshape(energy.shape)
              for k in ("mu", "n_electrons") if k in res.extras}
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, energy=energy, fields=fields, provenance=np.str_(json.dumps(provenance())), **extras)
    if spins.ndim == 2:
        print(f"energy = {float(energy):.12g}  ->  {out}")
    else:
        print(f"{len(energy)} configurations, energies {', '.join(f'{e:.12g}' for e in energy[:4])}"
              f"{', ...' if len(energy) > 4 else ''}  ->  {out}")
    return 0
