"""``nearsight simulate`` under ``torchrun``: the command line's bridge to :mod:`nearsight.distributed`.

    torchrun --standalone --nproc_per_node 2 -m nearsight simulate --solver ml --model M ... --replicas 8
    torchrun --standalone --nproc_per_node 2 -m nearsight simulate --solver ml --model M ... --decompose

Without ``--decompose`` the replicas are spread over the ranks (:func:`~nearsight.distributed.runs.run_replicas`:
any solver, each rank a full-lattice provider on its own device; replica ``r``'s noise is seeded from
``(seed, r)``, so the ensemble does not depend on the number of ranks). With ``--decompose`` one lattice is cut
into strips of rows, one per rank, with a halo exchange (:func:`~nearsight.distributed.runs.run_decomposed`:
ML models with a site-energy cutoff only; ``--noise-streams global`` reproduces a single-process ``run_llg``,
``rows`` scales). Rank 0 checks the output, writes the one trajectory file and the plots; every other rank's
errors reach all ranks (:func:`~nearsight.distributed.env.agree`), so none is left waiting.
"""
from __future__ import annotations

from ..errors import NearsightError
from .domain import DomainDecomposedProvider
from .env import DistEnv, agree, init_from_env, launched_by_torchrun, shutdown
from .noise import NOISE_MODES
from .runs import run_decomposed, run_replicas


def torchrun_env(cfg: dict) -> DistEnv | None:
    """The process group's :class:`DistEnv` under torchrun (``cfg['device']`` set to this rank's device), else
    None — also when ``--decompose`` was asked for outside torchrun, which is an error."""
    if not launched_by_torchrun():
        if cfg.get("decompose"):
            raise NearsightError("--decompose splits one lattice over processes: launch with torchrun, e.g. "
                                 "'torchrun --standalone --nproc_per_node 2 -m nearsight simulate ... --decompose'")
        return None
    mode = cfg.get("noise_streams") or "global"
    if mode not in NOISE_MODES:
        raise NearsightError(f"noise_streams must be one of {', '.join(NOISE_MODES)}, got {mode!r}")
    env = init_from_env(cfg.get("device"))
    cfg["device"] = str(env.device)
    return env


def on_main(env: DistEnv | None, fn, *args, **kwargs):
    """Run ``fn`` on rank 0 only (all of it when not distributed); every rank raises if it failed."""
    if env is None:
        return fn(*args, **kwargs)
    err, out = None, None
    if env.is_main:
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:                      # noqa: BLE001 - re-raised on every rank by agree()
            err = exc
    agree(env, err)
    return out


def simulate(env: DistEnv, cfg: dict, provider, spins0, *, observers=(), attrs: dict | None = None):
    """The LLG run of ``nearsight simulate`` over the ranks of ``env`` (module docstring)."""
    kw = dict(steps=cfg["steps"], dt=cfg["dt"], alpha=cfg["alpha"], kT=cfg["bath_kT"], scheme=cfg["scheme"],
              seed=cfg["seed"], every=cfg["every"], out=cfg["out"], observers=observers,
              save_fields=bool(cfg["save_fields"]), resume=bool(cfg.get("resume")), attrs=attrs,
              overwrite=bool(cfg.get("overwrite")))
    try:
        if cfg.get("decompose"):
            model = getattr(provider, "model", None)
            if model is None or not hasattr(model, "cutoff") or not hasattr(model, "on_lattice"):
                raise NearsightError(f"--decompose needs an ML model with a site-energy cutoff (--solver ml); "
                                     f"solver {getattr(provider, 'name', provider)!r} has none: drop --decompose "
                                     f"to spread replicas over the ranks instead")
            dd = DomainDecomposedProvider(model, provider.lattice, env=env, device=cfg["device"])
            return run_decomposed(dd, spins0, noise=cfg.get("noise_streams") or "global", **kw)
        return run_replicas(provider, spins0, env=env, **kw)
    finally:
        shutdown()

