"""Scale-out with ``torch.distributed`` (``torchrun``; gloo on CPU, NCCL on GPU): ensembles of replicas over
ranks, one lattice decomposed into strips over ranks, and data-parallel training. See docs/distributed.md."""
from .domain import DomainDecomposedProvider, OwnedRows, StripPartition, halo_rows
from .env import DistEnv, init_from_env, launched_by_torchrun, shutdown
from .loop import DistributedRunResult
from .noise import GlobalNoise, ReplicaNoise, RowNoise, stream_seed
from .runs import replica_blocks, run_decomposed, run_replicas

__all__ = ["DistEnv", "init_from_env", "launched_by_torchrun", "shutdown", "DomainDecomposedProvider", "OwnedRows",
           "StripPartition", "halo_rows", "DistributedRunResult", "GlobalNoise", "ReplicaNoise", "RowNoise",
           "stream_seed", "replica_blocks", "run_decomposed", "run_replicas"]
