"""``nearsight locality``: the nearsightedness profile eta(R) of a provider's transverse field."""
from __future__ import annotations

import numpy as np

from ..analysis.locality import locality_profile
from ..errors import NearsightError
from ..io import check_writable
from ..states import load_spins, make_state
from .common import add_physics_args, add_solver_args, lattice_from, provider_from


def add_parser(sub):
    p = sub.add_parser("locality", help="how far the field on a site feels other spins")
    add_physics_args(p)
    add_solver_args(p)
    p.add_argument("--state", default="random", help="kind of configuration: random, neel, 120, tetrahedral, ...")
    p.add_argument("--noise", type=float, default=0.0, help="noise added to an ordered --state")
    p.add_argument("--far-state", default=None, help="kind of the far region (default: same as --state)")
    p.add_argument("--spins", default=None, help="a .npy stack [C,N,3] of configurations instead of --state")
    p.add_argument("--radii", default="2,3,4,6", help="comma-separated radii R")
    p.add_argument("--draws", type=int, default=3, help="independent configurations (draws)")
    p.add_argument("--sites", type=int, default=3, help="sites per draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, help="PNG of eta(R)")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = vars(args)
    lattice = lattice_from(cfg)
    if args.plot:
        check_writable(args.plot)
    try:
        radii = [float(r) for r in args.radii.split(",")]
    except ValueError:
        raise NearsightError(f"--radii must be comma-separated numbers, got {args.radii!r}") from None
    provider = provider_from(cfg)
    if args.spins:
        configs = load_spins(args.spins, lattice)
        if configs.ndim != 3:
            raise NearsightError("--spins for locality must hold a stack [C, N, 3] of configurations (C >= 2)")
        others = None
    else:
        seeds = range(args.seed * 100, args.seed * 100 + args.draws)
        configs = np.stack([make_state(args.state, lattice, seed=s, noise=args.noise) for s in seeds])
        far = args.far_state or args.state
        others = np.stack([make_state(far, lattice, seed=s + 50, noise=args.noise) for s in seeds])
    res = locality_profile(provider, configs, radii, others=others, sites_per_draw=args.sites, seed=args.seed)
    print(f"{provider.describe()}\nconfigurations: {args.spins or f'{args.state} + noise {args.noise}'}; "
          f"far region: {args.spins and 'next configuration' or (args.far_state or args.state)}")
    print(res.table())
    if args.plot:
        from ..analysis.plots import plot_locality
        print(f"plot -> {plot_locality({args.state: res}, args.plot)}")
    return 0
