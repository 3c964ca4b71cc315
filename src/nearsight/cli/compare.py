"""``nearsight compare --model NAME``: ML-LLG (or KPM-LLG, ``--test kpm``) against ED-LLG, the same thermal quench
from random spins: ensemble averages against time with z-scores (nearsight.analysis.compare)."""
from __future__ import annotations

from ..analysis.compare import SETTINGS
from ..errors import NearsightError


#: what each ensemble setting means (its default is shown by the formatter)
SETTING_HELP = {"size": "lattice side L (L x L sites)", "replicas": "replicas per ensemble", "steps": "LLG steps",
                "every": "record the observables every k steps", "dt": "time step (hbar/t)",
                "alpha": "Gilbert damping", "bath_kT": "bath temperature of the stochastic LLG",
                "seed": "seed of the initial spins and the noise"}

def add_parser(subparsers) -> None:
    p = subparsers.add_parser("compare", help="ensemble dynamics of an ML model (or KPM) against ED, with z-scores",
                              description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="model name or file (its card gives the physics)")
    p.add_argument("--test", choices=("ml", "kpm"), default="ml", help="the solver compared with ED")
    p.add_argument("--moments", type=int, default=None, help="KPM moments (default: the provider's)")
    p.add_argument("--probe-distance", dest="probe_distance", default=None, help="KPM probing distance")
    for k, v in SETTINGS.items():
        p.add_argument(f"--{k.replace('_', '-')}", dest=k, type=type(v), default=v, help=SETTING_HELP.get(k, k))
    ens = p.add_mutually_exclusive_group()
    ens.add_argument("--mu", type=float, default=None,
                     help="both ensembles grand canonical at this mu (default: the card's ensemble; a model with "
                          "a mu input takes any mu of its window)")
    ens.add_argument("--filling", type=float, default=None, help="both ensembles canonical at this filling")
    p.add_argument("--plot", default="out/compare_dynamics.png", help="figure file (default %(default)s)")
    p.add_argument("--paired", action="store_true",
                   help="same initial spins for both ensembles (independent noise); z from paired differences")
    p.add_argument("--ed-cache", dest="ed_cache", default=None,
                   help="npz file that stores the ED ensemble for reuse with the same settings")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from ..analysis.compare import check_settings, compare, plot, table
    from ..electrons import EDProvider
    from ..hamiltonian import SDModel
    from ..io import check_writable
    from ..lattice import Lattice
    from ..ml.cards import load_card
    s = {k: getattr(args, k) for k in SETTINGS}
    check_settings(s)
    card = load_card(args.model)
    if card.get("kind") == "generalized" or "lattice" not in card:
        raise NearsightError(f"{args.model!r} is a driven (strip) model; compare runs periodic-lattice models")
    os.makedirs(os.path.dirname(args.plot) or ".", exist_ok=True)
    check_writable(args.plot, "--plot")
    if args.ed_cache:
        os.makedirs(os.path.dirname(args.ed_cache) or ".", exist_ok=True)
        check_writable(args.ed_cache, "--ed-cache")
    lat = Lattice(card["lattice"], args.size)
    ensemble = ({"mu": args.mu, "filling": None} if args.mu is not None else
                {"mu": None, "filling": args.filling} if args.filling is not None else {})
    model = SDModel.from_dict({**card, **ensemble})
    X = args.test.upper()
    if args.test == "ml":
        from ..ml.provider import MLProvider
        tested = MLProvider(args.model, lat, **{k: v for k, v in ensemble.items() if v is not None})
    else:
        from ..electrons.kpm import KPMProvider
        kw = {k: v for k, v in (("moments", args.moments), ("probe_distance", args.probe_distance)) if v is not None}
        tested = KPMProvider(lat, model, **kw)
        print("KPM:", {k: v for k, v in tested.describe().items() if k in ("moments", "probe_distance", "kernel")})
    c = compare(tested, EDProvider(lat, model), model, lat, s, name=X, paired=args.paired, ed_cache=args.ed_cache)
    print(f"{args.model} on {args.size}x{args.size}, {args.replicas} replicas, dt={args.dt}, alpha={args.alpha}, "
          f"bath kT={args.bath_kT}, " + (f"mu={model.mu}" if model.mu is not None else f"filling={model.filling}")
          + (" — paired: same initial spins, independent noise; z from the paired differences" if args.paired else ""))
    print("\n".join(table(c)))
    plot(c, args.plot, f"{args.model}: {X}-LLG vs ED-LLG, {args.size}x{args.size}, {args.replicas} replicas")
    print("plot ->", args.plot)
    return 0

