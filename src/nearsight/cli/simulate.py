"""``nearsight simulate [CONFIG.yaml] [flags]``: an LLG run with any field provider, written to HDF5.

Config keys are the long flag names (``bath_kT`` is the LLG bath temperature, ``kT`` the electronic one; the old
key ``kT_llg`` is a deprecated alias). Flags given on the command line override the config file; relative paths
in a config are read against its directory. An existing output is refused unless ``--overwrite``; an
interrupted run (``OUT.partial``) continues with ``--resume``, which refuses any parameter that differs from the
file's. The output is locked while the run lasts. Ctrl-C stops at the next step with a checkpoint (exit 130).
"""
from __future__ import annotations

import os

import numpy as np

from ..analysis.observables import mean_chirality, nn_correlation
from ..distributed.launch import on_main, simulate as simulate_distributed, torchrun_env
from ..distributed.noise import NOISE_MODES
from ..dynamics.integrators import SCHEMES
from ..dynamics.run import run_llg
from ..errors import NearsightError
from ..io import check_writable
from ..trajectory import lock_output, unlock_output
from ..states import STATES, load_spins, make_state
from .common import (add_physics_args, add_solver_args, check_run_numbers, lattice_from, load_config, merged,
                     provider_from, schema, show_defaults)

DEFAULTS = {"initial": "random", "noise": 0.0, "replicas": 1, "steps": 1000, "dt": 0.05, "alpha": 0.5,
            "bath_kT": 0.0, "scheme": "heun", "seed": 0, "every": 10, "out": "trajectory.h5", "plots": None,
            "save_fields": True, "decompose": False, "noise_streams": "global"}
ALIASES = {"kT_llg": "bath_kT"}


def add_parser(sub):
    p = sub.add_parser("simulate", help="run stochastic LLG with a field provider",
                       description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", default=None, help="YAML config (flags override it)")
    add_physics_args(p, required=False)
    add_solver_args(p)
    g = p.add_argument_group("dynamics")
    g.add_argument("--initial", default=None, help=f"initial state: {', '.join(STATES)} or a .npy file")
    g.add_argument("--noise", type=float, default=None, help="Gaussian noise added to an ordered initial state")
    g.add_argument("--replicas", type=int, default=None, help="independent replicas run as one batch")
    g.add_argument("--steps", type=int, default=None)
    g.add_argument("--dt", type=float, default=None, help="time step (hbar/t)")
    g.add_argument("--alpha", type=float, default=None, help="Gilbert damping")
    g.add_argument("--bath-kT", dest="bath_kT", type=float, default=None, help="LLG bath temperature")
    g.add_argument("--scheme", choices=tuple(SCHEMES), default=None)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--every", type=int, default=None, help="write a frame every k steps")
    g.add_argument("--out", default=None, help="trajectory .h5")
    g.add_argument("--plots", default=None, help="directory for PNG plots of the run")
    g.add_argument("--resume", action="store_true", default=None,
                   help="continue the interrupted run in OUT.partial (same parameters)")
    g.add_argument("--overwrite", action="store_true", default=None, help="replace an existing OUT")
    d = p.add_argument_group("under torchrun (docs/distributed.md)")
    d.add_argument("--decompose", action="store_true", default=None,
                   help="cut one lattice into strips over the ranks (ML models); default: spread the replicas")
    d.add_argument("--noise-streams", dest="noise_streams", choices=NOISE_MODES, default=None,
                   help="with --decompose: 'global' reproduces a single-process run, 'rows' scales")
    show_defaults(p, DEFAULTS)
    p.set_defaults(func=run, _types=schema(p, DEFAULTS))


def initial_spins(cfg: dict, lattice) -> np.ndarray:
    init = str(cfg["initial"])
    if init.endswith(".npy"):
        s = load_spins(init, lattice)
        if s.ndim == 3:
            if "replicas" in cfg.get("_given", ()) and cfg["replicas"] != s.shape[0]:
                raise NearsightError(f"the initial spins {init!r} hold {s.shape[0]} replicas but replicas = "
                                     f"{cfg['replicas']}; drop replicas (the file sets it) or give a [N, 3] file")
            return s
        return np.broadcast_to(s, (cfg["replicas"],) + s.shape).copy()
    return make_state(init, lattice, seed=cfg["seed"], noise=cfg["noise"], batch=cfg["replicas"])


def _make_dir(path: str, flag: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise NearsightError(f"cannot create the directory {path!r} for {flag} ({exc.strerror}); choose a "
                             f"writable location") from None


def check_target(out: str, resume: bool, overwrite: bool) -> None:
    """The output policy, before any work (the writer checks again under the lock): refuse a path in use by
    another process, an existing file without ``--overwrite``, a ``--resume`` with nothing to resume."""
    if resume and overwrite:
        raise NearsightError("give --resume (continue OUT.partial) or --overwrite (start over), not both")
    fd = lock_output(out)                     # names the process holding it, if any
    unlock_output(out, fd)
    partial = out + ".partial"
    if resume:
        if not os.path.exists(partial):
            what = f"{out!r} is a finished run" if os.path.exists(out) else f"neither {out!r} nor {partial!r} exists"
            raise NearsightError(f"nothing to resume: {what}; start a new run without --resume (with --overwrite "
                                 f"to replace a finished one)")
    elif not overwrite:
        if os.path.exists(partial):
            raise NearsightError(f"{partial!r} holds an interrupted run: continue it with --resume, or start over "
                                 f"with --overwrite")
        if os.path.exists(out):
            raise NearsightError(f"{out!r} exists (a finished run); choose another --out, or pass --overwrite to "
                                 f"replace it")


def run(args) -> int:
    cfg = merged(args, load_config(args.config), DEFAULTS, aliases=ALIASES)
    check_run_numbers(cfg, {"replicas": 1, "steps": 0, "every": 1, "seed": 0, "size": 1, "threads": 1})
    lattice = lattice_from(cfg)
    env = torchrun_env(cfg)                           # None unless launched by torchrun
    on_main(env, _check_outputs, cfg)
    provider = provider_from(cfg)   # model name, card and lattice checked before anything is written
    spins0 = initial_spins(cfg, lattice)
    out = cfg["out"]

    def status(step, t, spins, res):
        s = spins.detach().cpu().numpy()
        return {"E/N": float(res.energy.mean()) / lattice.N, "nn": float(nn_correlation(s, lattice).mean()),
                "chi": float(mean_chirality(s, lattice).mean())}

    attrs = {"initial": str(cfg["initial"]), "noise": cfg["noise"]}
    if env is not None:
        res = simulate_distributed(env, cfg, provider, spins0, observers=[status], attrs=attrs)
        if not env.is_main:
            return 0
    else:
        res = run_llg(provider, spins0, steps=cfg["steps"], dt=cfg["dt"], alpha=cfg["alpha"], kT=cfg["bath_kT"],
                      scheme=cfg["scheme"], seed=cfg["seed"], every=cfg["every"], out=out, observers=[status],
                      save_fields=bool(cfg["save_fields"]), resume=bool(cfg.get("resume")), progress=True,
                      overwrite=bool(cfg.get("overwrite")), attrs=attrs)
    last = res.observations[-1] if res.observations else {}
    where = f" on {env.world} ranks" if env is not None else ""
    print(f"{res.steps_done} steps in {res.wall_time:.1f} s ({1e3 * res.wall_time / max(res.steps_done, 1):.2f} "
          f"ms/step, {spins0.shape[0]} replica(s) of {lattice.N} sites{where}); final " +
          ", ".join(f"{k} = {v:.4f}" for k, v in last.items()) + f"  ->  {out}")
    if cfg.get("plots"):
        from ..analysis.plots import plot_trajectory
        for p in plot_trajectory(out, cfg["plots"]):
            print(f"plot -> {p}")
    return 0


def _check_outputs(cfg: dict) -> None:
    """Output paths, before any work (on rank 0 only under torchrun)."""
    out = cfg["out"]
    if cfg.get("plots"):
        o, pl = os.path.abspath(out), os.path.abspath(cfg["plots"])
        if pl == o or pl.startswith(o + os.sep):
            raise NearsightError(f"the plots directory {cfg['plots']!r} would lie at or inside the trajectory file "
                                 f"{out!r}; give --out a file name such as {os.path.join(out, 'trajectory.h5')!r} "
                                 f"or another --plots")
    _make_dir(os.path.dirname(os.path.abspath(out)), "--out")
    check_writable(out)
    check_target(out, bool(cfg.get("resume")), bool(cfg.get("overwrite")))
    if cfg.get("plots"):
        _make_dir(cfg["plots"], "--plots")
        check_writable(os.path.join(cfg["plots"], "x.png"), "--plots")
