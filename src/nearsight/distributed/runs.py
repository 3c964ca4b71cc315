"""Distributed LLG runs: an ensemble of replicas over ranks, or one lattice decomposed into strips over ranks.

    env = init_from_env(device)                                   # torchrun, or a single process
    run_replicas(MLProvider(model, lattice, device=env.device), spins0, steps=..., seed=7, out="ens.h5", env=env)
    run_decomposed(DomainDecomposedProvider(model, lattice, env=env), spins0, steps=..., out="big.h5")

Both write one trajectory file (rank 0, :class:`~nearsight.trajectory.TrajectoryWriter`'s layout: frames of all ``B``
replicas and all ``N`` sites), checkpoint after every frame and resume with ``resume=True`` (on the same or on
another number of ranks). Every rank passes the same ``spins0`` (rank 0's is used and broadcast).

Reproducibility. :func:`run_replicas` gives replica ``r`` its own noise stream seeded from ``(seed, r)``
(:class:`~nearsight.distributed.noise.ReplicaNoise`), so an ensemble on ``K`` ranks is the same, bit for bit on
CPU, as on one process; it is not ``run_llg``'s stream (one generator for the whole ``[B, N, 3]`` batch, which
ties a replica's noise to the batch). :func:`run_decomposed` with ``noise='global'`` reproduces ``run_llg`` with
the undecomposed provider (same generator, full draw sliced); ``noise='rows'`` draws per-row streams, which
scale and are equally independent of the number of ranks.
"""
from __future__ import annotations

from ..fields import FieldProvider
from ..errors import NearsightError
from .domain import DomainDecomposedProvider
from .env import DistEnv, env_of_group, gather_blocks, split_evenly
from .loop import DistributedRunResult, Layout, run_distributed
from .noise import NOISE_MODES, GlobalNoise, ReplicaNoise, RowNoise


def replica_blocks(B: int, world: int) -> list[tuple[int, int]]:
    """``(r0, r1)`` replica ranges of every rank: contiguous blocks, the first ``B % world`` one larger."""
    sizes = split_evenly(B, world)
    starts = [sum(sizes[:r]) for r in range(world)]
    return [(s, s + n) for s, n in zip(starts, sizes)]


def run_replicas(provider: FieldProvider, spins0, *, steps: int, dt: float, alpha: float, kT: float = 0.0,
                 scheme: str = "heun", seed: int = 0, every: int = 10, out: str | None = None, observers=(),
                 save_fields: bool = True, resume: bool = False, attrs: dict | None = None,
                 stop_after: int | None = None, env: DistEnv | None = None, overwrite: bool = False
                 ) -> DistributedRunResult:
    """Integrate the ``B`` replicas of ``spins0 [B, N, 3]`` spread over the ranks of ``env``, each rank's block
    as one batch through its own ``provider`` (any provider on the full lattice). Observers run on rank 0 with
    the gathered ``[B, N, 3]`` state."""
    env = env or env_of_group(provider.device)
    B, N = _shape(spins0, provider.lattice.N)
    if B < env.world:
        raise NearsightError(f"{B} replica(s) cannot be spread over {env.world} ranks; give --replicas >= "
                             f"{env.world} or launch fewer processes")
    blocks = replica_blocks(B, env.world)
    r0, r1 = blocks[env.rank]
    sizes = [b - a for a, b in blocks]
    layout = Layout(env, B, N, local=lambda full: full[r0:r1],
                    gather=lambda t: gather_blocks(env, t, sizes, dim=0),
                    gather_energy=lambda e: gather_blocks(env, e, sizes, dim=0), noise_sizes=sizes,
                    describe={"noise_streams": "replica", "parallel": "replicas"})
    noise = ReplicaNoise(seed, B, r0, r1, provider.device)
    return run_distributed(provider, layout, spins0, noise, steps=steps, dt=dt, alpha=alpha, kT=kT, scheme=scheme,
                           seed=seed, every=every, out=out, observers=observers, save_fields=save_fields,
                           resume=resume, attrs=attrs, stop_after=stop_after,
                           overwrite=overwrite)


def run_decomposed(provider: DomainDecomposedProvider, spins0, *, steps: int, dt: float, alpha: float,
                   kT: float = 0.0, scheme: str = "heun", seed: int = 0, every: int = 10, out: str | None = None,
                   observers=(), save_fields: bool = True, resume: bool = False, attrs: dict | None = None,
                   stop_after: int | None = None, noise: str = "global", overwrite: bool = False
                   ) -> DistributedRunResult:
    """Integrate full-lattice spins ``spins0 [N, 3]`` or ``[B, N, 3]`` with a :class:`DomainDecomposedProvider`
    (each rank integrates its strip; see the module docstring for ``noise``)."""
    if not isinstance(provider, DomainDecomposedProvider):
        raise NearsightError("run_decomposed needs a DomainDecomposedProvider; for an ensemble of replicas on "
                             "full-lattice providers use run_replicas")
    if noise not in NOISE_MODES:
        raise NearsightError(f"noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    env, lat, own = provider.env, provider.global_lattice, provider.lattice
    B, N = _shape(spins0, lat.N)
    if noise == "global":
        src, sizes = GlobalNoise(seed, lat.N, own.sites, provider.device), None
    else:
        src, sizes = RowNoise(seed, lat.L1, lat.L2, own.y0, own.y1, provider.device), provider.partition.rows
    layout = Layout(env, B, N, local=lambda full: full[:, own.sites], gather=provider.gather,
                    gather_energy=lambda e: e if env.is_main else None, noise_sizes=sizes,
                    describe={"noise_streams": noise, "parallel": "strips"})
    s0 = spins0 if len(getattr(spins0, "shape", ())) == 3 else spins0[None]
    return run_distributed(provider, layout, s0, src, steps=steps, dt=dt, alpha=alpha, kT=kT, scheme=scheme,
                           seed=seed, every=every, out=out, observers=observers, save_fields=save_fields,
                           resume=resume, attrs=attrs, stop_after=stop_after,
                           overwrite=overwrite)


def _shape(spins0, N: int) -> tuple[int, int]:
    shape = tuple(getattr(spins0, "shape", ()))
    if len(shape) == 2 and shape == (N, 3):
        return 1, N
    if len(shape) == 3 and shape[1:] == (N, 3):
        return shape[0], N
    raise NearsightError(f"initial spins have shape {shape}; expected [{N}, 3] or [B, {N}, 3]")
