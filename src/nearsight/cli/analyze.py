"""``nearsight analyze TRAJ... [--out DIR]``: coarsening analysis of one trajectory or an ensemble of files.

Writes ``series.csv`` (domain lengths with bootstrap errors, chirality, walls), ``fits.json`` (growth exponents
with confidence intervals), cluster tables, pictures (L(t), local slopes, S(q) with the Brillouin zone, domain
snapshots, a movie, wall orientation) and OVF/VTK exports of the last frame.
"""
from __future__ import annotations

from ..errors import NearsightError


def add_parser(sub):
    p = sub.add_parser("analyze", help="domain lengths, growth exponents, clusters, walls and pictures of "
                                       "trajectories")
    p.add_argument("trajectories", nargs="+", help="trajectory .h5 files (same lattice and frame times)")
    p.add_argument("--out", default="analysis", help="output directory (default ./analysis)")
    p.add_argument("--order", default="auto", choices=("auto", "tetrahedral", "120", "fm-afm"),
                   help="domain variable (default: from the model name, else from the spin structure factor)")
    p.add_argument("--window", default=None, help="fit window T0,T1 (default: automatic, see --max-fraction)")
    p.add_argument("--max-fraction", type=float, default=0.25,
                   help="automatic window ends where L reaches this fraction of the system size")
    p.add_argument("--t-min", type=float, default=0.0, help="automatic window starts no earlier than this")
    p.add_argument("--threshold", type=float, default=None,
                   help="FM clusters: every nn bond S_i.S_j above this (default 0.5; clusters on for fm-afm)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the replicas")
    p.add_argument("--no-movie", action="store_true", help="skip the movie")
    p.add_argument("--no-export", action="store_true", help="skip the OVF/VTK export of the last frame")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..analysis.pipeline import analyze
    window = None
    if args.window:
        try:
            window = tuple(float(x) for x in args.window.split(","))
            assert len(window) == 2 and window[0] < window[1]
        except (ValueError, AssertionError):
            raise NearsightError(f"--window must be T0,T1 with T0 < T1, got {args.window!r}") from None
    if args.bootstrap < 0:
        raise NearsightError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    res = analyze(args.trajectories, args.out, order=args.order, window=window, threshold=args.threshold,
                  n_boot=args.bootstrap, make_movie=not args.no_movie, export=not args.no_export,
                  max_fraction=args.max_fraction, t_min=args.t_min)
    print(f"{res['lattice']}, {res['n_replicas']} replica(s), {res['n_frames']} frames, order {res['order']}")
    for k, f in res["fits"].items():
        print(f"  {k:14s} " + (f"a = {f['exponent']:.3f} [{f['ci_low']:.3f}, {f['ci_high']:.3f}]  window "
                               f"{f['window'][0]:.4g}..{f['window'][1]:.4g}" if "exponent" in f else f["error"]))
    print(f"  {res['hole_density']}")
    print(f"-> {args.out}")
    return 0
