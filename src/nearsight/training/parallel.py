"""``nearsight train`` under ``torchrun``: data-parallel training with DistributedDataParallel (issue 24).

    torchrun --standalone --nproc_per_node 2 -m nearsight train configs/train/NAME.yaml

Every rank loads the datasets and draws the same batch sequence (seeded by ``(seed, epoch)``); each batch is cut
into contiguous shards, one per rank (:func:`~nearsight.distributed.training.shard`); the shard's mean loss is
weighted by ``world * n_shard / n_batch`` so that DDP's gradient average is the gradient of the whole batch's mean
loss. Every rank therefore takes the single-process step, up to the order of the floating-point reductions, and
holds the same weights, EMA and early-stopping state. Rank 0 alone writes the checkpoint, the metrics and the model;
the training metrics of an epoch are summed over the ranks. Not available (refused before any work): the
descriptor/Jacobian cache and mu-conditioned models (their count and site-density terms are not sharded here).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from ..distributed.env import DistEnv, agree, init_from_env, launched_by_torchrun
from ..distributed.training import lattice_key, shard, shard_weight, wrap_models
from ..errors import NearsightError


class DataParallel:
    """The pieces of a training loop that change under torchrun (single process: ``env`` is None, all no-ops)."""

    def __init__(self, env: DistEnv | None):
        self.env = env
        self.module = None

    @classmethod
    def from_config(cls, c: dict) -> "DataParallel":
        if not launched_by_torchrun():
            return cls(None)
        env = init_from_env(c["device"])
        c["device"] = str(env.device)
        return cls(env if env.distributed else None)

    @property
    def active(self) -> bool:
        return self.env is not None

    @property
    def is_main(self) -> bool:
        return self.env is None or self.env.is_main

    def check(self, c: dict, mu_model: bool) -> None:
        """Refuse, on every rank and before any work, what data-parallel training does not do."""
        if not self.active:
            return
        err = None
        if mu_model:
            err = NearsightError("data-parallel training (torchrun) of a mu-conditioned model is not available; "
                                 "train it in one process")
        elif c["cache_descriptors"] in (True, "true"):
            err = NearsightError("data-parallel training (torchrun) does not use the descriptor cache; set "
                                 "cache_descriptors: false or auto")
        agree(self.env, err)

    def wrap(self, models: dict) -> None:
        if self.active:
            self.module = wrap_models(models, self.env)

    def local(self, idx) -> tuple[np.ndarray, float]:
        """This rank's frames of the batch ``idx`` and the weight of their mean loss (1 in one process)."""
        if not self.active:
            return np.asarray(idx), 1.0
        mine = shard(idx, self.env)
        if not len(mine):            # an empty shard still joins DDP's all-reduce: one frame with weight 0
            return np.asarray(idx)[:1], 0.0
        return mine, shard_weight(len(mine), len(idx), self.env)

    def energy_and_fields(self, lattice, spins: torch.Tensor):
        return self.module(spins, lattice_key(lattice))

    def reduce(self, acc, sums: np.ndarray) -> None:
        """Sum the epoch's training metrics (an Accumulator's sums and the per-batch loss sums) over the ranks."""
        if not self.active:
            return
        v = torch.tensor([acc.err, acc.ref, acc.esq, acc.sites, acc.frames, *sums], dtype=torch.float64)
        dist.all_reduce(v)
        acc.err, acc.ref, acc.esq = (float(x) for x in v[:3])
        acc.sites, acc.frames = int(v[3]), int(v[4])
        sums[:] = v[5:].numpy()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()
