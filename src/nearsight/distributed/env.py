"""The process group: ``torchrun`` environment or a single process, and the few collectives the package uses.

    env = init_from_env(device="cuda")     # under torchrun: rank, world size, NCCL on GPU / gloo on CPU
    env = init_from_env()                  # plain ``python``: rank 0 of 1, no process group, nothing to init

``torchrun`` (``torch.distributed.run``) sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; the same command runs on a laptop (``--nproc_per_node 2``), a workstation and a SLURM cluster
(``--nnodes N --rdzv_backend c10d --rdzv_endpoint HOST:PORT``). Everything in :mod:`nearsight.distributed` also
runs without a process group (world size 1), which is how the single-process references are made.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import NearsightError

BACKENDS = ("gloo", "nccl")


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world`` (``local_rank`` on its node), the compute ``device``
    and the ``backend`` of the process group (None for a single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def comm_device(self) -> torch.device:
        """Where tensors must live to be communicated (NCCL: the GPU; gloo: the CPU)."""
        return self.device if self.backend == "nccl" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    """True when the torchrun environment variables are set (even for ``--nproc_per_node 1``)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def _int_env(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise NearsightError(f"environment variable {name}={os.environ[name]!r} is not an integer; launch with "
                             f"torchrun, which sets it") from None


def init_from_env(device: str | None = None, backend: str | None = None, timeout_s: float = 600.0) -> DistEnv:
    """The :class:`DistEnv` of this process, initializing the default process group under ``torchrun``.

    ``device``: ``'cpu'``, ``'cuda'`` (each rank takes GPU ``LOCAL_RANK``) or ``'cuda:K'`` (single process).
    ``backend``: ``'nccl'`` for CUDA, ``'gloo'`` for CPU by default. Idempotent: an existing default group is
    reused. Without the torchrun variables (or with ``WORLD_SIZE=1``) no group is made and rank 0 of 1 returned.
    """
    dev = torch.device(device or "cpu")
    if dev.type not in ("cpu", "cuda"):
        raise NearsightError(f"device must be 'cpu' or 'cuda' (or 'cuda:K'), got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NearsightError("device 'cuda' was asked for but torch sees no GPU; use --device cpu")
    if backend is not None and backend not in BACKENDS:
        raise NearsightError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "nccl" and dev.type != "cuda":
        raise NearsightError("the nccl backend needs device 'cuda'; use backend 'gloo' on CPU")
    if not launched_by_torchrun() or _int_env("WORLD_SIZE") == 1:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return env_of_group(dev)
        return DistEnv(device=dev)
    rank, world, local = _int_env("RANK"), _int_env("WORLD_SIZE"), _int_env("LOCAL_RANK")
    if dev.type == "cuda" and dev.index is None:
        if local >= torch.cuda.device_count():
            raise NearsightError(f"LOCAL_RANK {local} but this node has {torch.cuda.device_count()} GPU(s); give "
                                 f"torchrun --nproc_per_node <= the number of GPUs")
        dev = torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if not dist.is_initialized():
        from datetime import timedelta
        kw = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s), **kw)
    return DistEnv(rank=rank, world=world, local_rank=local, device=dev, backend=dist.get_backend())


def env_of_group(device=None) -> DistEnv:
    """The :class:`DistEnv` of an already initialized default group (e.g. one made by a test or a launcher)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistEnv(device=torch.device(device or "cpu"))
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistEnv(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local,
                   device=torch.device(device or "cpu"), backend=dist.get_backend())


def shutdown() -> None:
    """Destroy the default process group if there is one (call at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ collectives
def agree(env: DistEnv, error: BaseException | None) -> None:
    """Every rank raises if any rank failed (the first failing rank's message): a check done on one rank (the
    writer on rank 0, say) must not leave the others waiting in a collective forever."""
    if not env.distributed:
        if error is not None:
            raise error
        return
    msgs = [None] * env.world
    dist.all_gather_object(msgs, None if error is None else f"{type(error).__name__}: {error}")
    bad = [(r, m) for r, m in enumerate(msgs) if m is not None]
    if error is not None:
        raise error
    if bad:
        r, m = bad[0]
        raise NearsightError(f"rank {r} failed: {m}")


def broadcast_object(env: DistEnv, obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (small Python objects: settings, checkpoints' metadata)."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_tensor(env: DistEnv, t: torch.Tensor | None, src: int = 0) -> torch.Tensor:
    """Rank ``src``'s tensor on every rank (shape and dtype sent first), on ``env.device``."""
    if not env.distributed:
        return t.to(env.device)
    meta = broadcast_object(env, (tuple(t.shape), t.dtype) if env.rank == src else None, src)
    buf = t.to(env.comm_device).contiguous() if env.rank == src else torch.empty(meta[0], dtype=meta[1],
                                                                                   device=env.comm_device)
    dist.broadcast(buf, src=src)
    return buf.to(env.device)


def gather_blocks(env: DistEnv, local: torch.Tensor, sizes: list[int], dim: int, dst: int = 0
                  ) -> torch.Tensor | None:
    """Concatenate every rank's ``local`` along ``dim`` on rank ``dst`` (None elsewhere); rank ``r`` holds
    ``sizes[r]`` entries along ``dim`` (uneven blocks are padded for the collective and cut back)."""
    if not env.distributed:
        return local
    big = max(sizes)
    pad = list(local.shape)
    pad[dim] = big - local.shape[dim]
    x = torch.cat([local, local.new_zeros(pad)], dim) if pad[dim] else local
    x = x.to(env.comm_device).contiguous()
    parts = [torch.empty_like(x) for _ in range(env.world)] if env.rank == dst else None
    dist.gather(x, parts, dst=dst)
    if env.rank != dst:
        return None
    return torch.cat([p.narrow(dim, 0, n) for p, n in zip(parts, sizes)], dim).to(local.device)


def all_sum(env: DistEnv, t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (in place on a communication copy; returned on ``t``'s device)."""
    if not env.distributed:
        return t
    x = t.to(env.comm_device).contiguous().clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x.to(t.device)


def all_max(env: DistEnv, value: float) -> float:
    if not env.distributed:
        return float(value)
    x = torch.tensor([float(value)], dtype=torch.float64, device=env.comm_device)
    dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return float(x)


def split_evenly(n: int, world: int) -> list[int]:
    """``n`` items over ``world`` ranks: the first ``n % world`` ranks take one more."""
    return [n // world + (1 if r < n % world else 0) for r in range(world)]
