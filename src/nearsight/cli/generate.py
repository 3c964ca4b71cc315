"""``nearsight generate [CONFIG.yaml] [flags]``: a training dataset from LLG quench trajectories.

``nearsight generate configs/systems/NAME.yaml --spec SPEC`` makes the dataset of one named spec of a system file
(nearsight.datasets.systems: the system's physics with that spec's sampling or relabelling); flags override it.

With ``source: DATASET.h5`` (``--source``) no dynamics runs: the source's configurations are labelled anew by this
config's solver and physics (e.g. another electronic temperature); lattice and size must be the source's.
``bath_kT`` (``--bath-kT``) lists the LLG bath temperatures of the quenches (the old name ``kTs`` / ``--kTs`` is a
deprecated alias). An existing ``out`` is refused unless ``--overwrite``."""
from __future__ import annotations

import argparse
import os

from ..datasets.generate import (dataset_mismatch, generate_dataset, quench_attrs, relabel_attrs, relabel_dataset,
                                 relabel_physics)
from ..datasets.systems import is_system_config, load_system
from ..dynamics.integrators import SCHEMES
from ..errors import NearsightError
from .common import (DeprecatedAlias, add_physics_args, add_solver_args, check_run_numbers, lattice_from,
                     load_config, merged, output_path, provider_from, schema, show_defaults)

ALIASES = {"kTs": "bath_kT"}
DEFAULTS = {"bath_kT": "0.005,0.02,0.05", "replicas": 4, "steps": 400, "every": 20, "skip": 0, "dt": 0.05,
            "alpha": 0.5, "scheme": "heun", "seed": 0, "initial": "random", "noise": 0.0, "out": "dataset.h5",
            "driver": None, "source": None, "mu_window": None, "source_mu": False}


def add_parser(sub):
    p = sub.add_parser("generate", help="write a training dataset sampled from LLG quenches",
                       description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=None, help="YAML config or system file (flags override it)")
    p.add_argument("--spec", default=None, help="the named spec of a system file (configs/systems/NAME.yaml)")
    add_physics_args(p, required=False)
    add_solver_args(p)
    g = p.add_argument_group("sampling")
    g.add_argument("--bath-kT", dest="bath_kT", default=None,
                   help="LLG bath temperatures of the quenches, comma separated")
    g.add_argument("--kTs", dest="bath_kT", action=DeprecatedAlias, new="--bath-kT", help=argparse.SUPPRESS)
    g.add_argument("--replicas", type=int, default=None, help="quenches per temperature")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--every", type=int, default=None, help="keep a frame every k steps")
    g.add_argument("--skip", type=int, default=None, help="discard frames before this step")
    g.add_argument("--dt", type=float, default=None)
    g.add_argument("--alpha", type=float, default=None)
    g.add_argument("--scheme", choices=tuple(SCHEMES), default=None)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--initial", default=None)
    g.add_argument("--noise", type=float, default=None)
    g.add_argument("--out", default=None, help="dataset .h5")
    g.add_argument("--driver", default=None,
                   help="ML model (name or .pt) that integrates the quenches; the solver labels only the kept frames")
    g.add_argument("--source", default=None,
                   help="relabel the configurations of this dataset instead of running quenches")
    g.add_argument("--mu-window", type=float, nargs=2, metavar=("LO", "HI"), default=None,
                   help="label each frame grand-canonically at its own mu drawn (seeded) from [LO, HI]")
    g.add_argument("--source-mu", dest="source_mu", action="store_true", default=None,
                   help="with --source: label each frame at the source's own per-frame mu (e.g. to add the "
                        "dn_dmu labels to an older window dataset)")
    g.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out")
    show_defaults(p, DEFAULTS)
    p.set_defaults(func=run, _types=schema(p, DEFAULTS))


def config_of(args) -> dict:
    """The config file's settings: a plain generation config, or the expanded ``--spec`` of a system file."""
    raw = load_config(args.config)
    if is_system_config(raw):
        system = load_system(args.config)
        if args.spec is None:
            raise NearsightError(f"{args.config!r} is a system file: choose a dataset with --spec NAME (one of "
                                 f"{', '.join(system.specs)})")
        return system.resolved(args.spec)
    if args.spec is not None:
        raise NearsightError("--spec names a dataset of a system file (configs/systems/NAME.yaml); "
                             f"{'no config was given' if args.config is None else repr(args.config) + ' is not one'}")
    return raw


def _job(args, *, check_out: bool = True):
    """The generation the arguments ask for, built and checked before any work: ``(cfg, provider, driver, kTs)``.
    ``check_out``: refuse an existing ``out`` (without ``--overwrite``); without it a driver model file that is
    gone is not loaded (``driver`` is then ``None``)."""
    base = config_of(args)
    cfg = merged(args, base, DEFAULTS, aliases=ALIASES)
    if check_out and args.spec is not None and cfg["out"] == base["out"]:
        os.makedirs(os.path.dirname(cfg["out"]) or ".", exist_ok=True)   # the system file's data_dir (fresh checkout)
    check_run_numbers(cfg, {"replicas": 1, "steps": 1, "every": 1, "skip": 0, "seed": 0, "size": 1, "threads": 1})
    lattice = lattice_from(cfg)
    if check_out:
        output_path(cfg["out"], bool(cfg.get("overwrite")))
    kTs = cfg["bath_kT"]
    try:
        kTs = [float(x) for x in str(kTs).split(",")] if isinstance(kTs, (str, int, float)) else list(kTs)
    except ValueError:
        raise NearsightError(f"--bath-kT must be numbers separated by commas, got {kTs!r}") from None
    if cfg["source_mu"] and cfg["source"] is None:
        raise NearsightError("--source-mu relabels a dataset at its own per-frame mu: give --source DATASET")
    provider = provider_from(cfg)
    driver = None
    if cfg["source"] is not None:
        if cfg["driver"] is not None:
            raise NearsightError("give either source (relabel a dataset) or driver (run quenches), not both")
    elif cfg["driver"] is not None and (check_out or not _gone(cfg["driver"])):
        from ..ml.provider import MLProvider
        driver = MLProvider(cfg["driver"], lattice, device=cfg.get("device"))
    return cfg, provider, driver, kTs


def _gone(driver: str) -> bool:
    """A driver model file (not a shipped name) that is not there."""
    return str(driver).endswith(".pt") and not os.path.exists(driver)


def _sampling(cfg: dict) -> dict:
    return {k: cfg[k] for k in ("replicas", "steps", "every", "skip", "dt", "alpha", "scheme", "seed", "initial",
                                "noise")}


def run(args) -> int:
    cfg, provider, driver, kTs = _job(args)
    if cfg["source"] is not None:
        out = relabel_dataset(provider, cfg["source"], cfg["out"], mu_window=cfg["mu_window"], seed=cfg["seed"],
                              source_mu=bool(cfg["source_mu"]))
    else:
        out = generate_dataset(provider, cfg["out"], kTs=kTs, driver=driver, mu_window=cfg["mu_window"],
                               **_sampling(cfg))
    print(f"dataset -> {out}")
    return 0


def spec_mismatch(system_file: str, spec: str, root: str, makers: dict | None = None) -> str | None:
    """How the existing dataset of ``spec`` (of the system file ``system_file``) differs from what the spec makes
    now (:func:`~nearsight.datasets.generate.dataset_mismatch`: the first differing setting), or ``None``. Run as
    ``nearsight generate SYSTEM_FILE --spec SPEC`` from ``root`` would run it; builds the providers, runs nothing.
    ``makers`` (absolute dataset path -> ``(system_file, spec)``, :attr:`~nearsight.datasets.plan.Checkout.makers`)
    lets a relabelling whose source file is gone be checked against what the source's spec makes now."""
    cwd = os.getcwd()
    os.chdir(root)
    try:
        cfg, attrs, partial = _spec_attrs(system_file, spec, makers or {})
        return dataset_mismatch(cfg["out"], attrs, only_given=partial)
    finally:
        os.chdir(cwd)


def _spec_attrs(system_file: str, spec: str, makers: dict) -> tuple[dict, dict, bool]:
    """``(cfg, attrs, partial)``: the attributes the dataset of ``spec`` gets when made now, computed without
    running anything; ``partial`` when a file they depend on is gone, so only the keys of ``attrs`` can be compared
    (the driver model file: all but its physics, and the driver by file name; a relabelling's source: what its own
    spec makes now, else the new labels' physics alone)."""
    from . import build_parser
    args = build_parser().parse_args(["generate", system_file, "--spec", spec])
    cfg, provider, driver, kTs = _job(args, check_out=False)
    if cfg["source"] is None:
        attrs = quench_attrs(provider, kTs=kTs, driver=driver, mu_window=cfg["mu_window"], **_sampling(cfg))
        if cfg["driver"] is None or driver is not None:
            return cfg, attrs, False
        attrs = {k: v for k, v in attrs.items() if k not in ("dynamics_mu", "dynamics_filling")}
        return cfg, {**attrs, "driver_model_path": os.path.basename(cfg["driver"])}, True
    kw = dict(mu_window=cfg["mu_window"], seed=cfg["seed"], source_mu=bool(cfg["source_mu"]))
    if os.path.exists(cfg["source"]):
        return cfg, relabel_attrs(provider, cfg["source"], **kw), False
    maker = makers.get(os.path.abspath(cfg["source"]))
    if maker is None:
        return cfg, relabel_physics(provider, **kw), True
    _, source_attrs, partial = _spec_attrs(*maker, makers)
    return cfg, relabel_attrs(provider, cfg["source"], source_attrs=source_attrs, **kw), partial

