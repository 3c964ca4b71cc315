"""Data-parallel training with :class:`torch.nn.parallel.DistributedDataParallel`: each rank takes its shard of
every batch, DDP averages the gradients, and the step equals the single-process step on the whole batch up to
the order of the floating-point reductions.

    ddp = wrap_models(models, env)                      # models: {Lattice: SiteEnergyModel} sharing one head
    for k, idx in batches(...):                          # the same batch order on every rank (seeded)
        mine = shard(idx, env)
        e, h = ddp(spins[mine], key=lattice_key(lat))    # fields by autograd, graph kept for the loss
        loss = loss_terms(h, h_ref[mine], e, e_ref[mine], spins[mine], lam)[0]
        (loss * shard_weight(len(mine), len(idx), env)).backward()   # DDP all-reduces (averages) the gradients
        opt.step()

Why the weight: the loss is a mean over the batch's frames (and sites); DDP averages the ranks' gradients, so a
shard's mean must count ``world * n_shard / n_batch`` for the average of the ranks' means to be the batch mean
when the batch does not divide evenly. A rank whose shard is empty still joins the all-reduce (with a zero loss
built from the graph, so DDP sees every parameter used).

The fields are made by :func:`nearsight.ml.network.energy_and_fields` with ``create_graph=True`` inside the
wrapped module's ``forward`` (as MACE/NequIP do with DDP): the gradient with respect to the spins does not touch
the parameters' gradient hooks, and ``loss.backward()`` then reduces the parameter gradients once.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..ml.network import energy_and_fields
from .env import DistEnv, all_sum, split_evenly


def lattice_key(lattice) -> str:
    return f"{lattice.kind}_{lattice.L1}x{lattice.L2}"


class EnergyAndFields(nn.Module):
    """The models of every training lattice (one shared head) behind one ``forward(spins, key) -> (E, h)``."""

    def __init__(self, models: dict):
        super().__init__()
        self.models = nn.ModuleDict({lattice_key(lat): m for lat, m in models.items()})

    def forward(self, spins: torch.Tensor, key: str):
        return energy_and_fields(self.models[key], spins, create_graph=True)


def wrap_models(models: dict, env: DistEnv):
    """``EnergyAndFields(models)``, wrapped in DDP when ``env`` is distributed (parameters broadcast from rank 0
    at construction, so every rank starts from rank 0's weights)."""
    module = EnergyAndFields(models)
    if not env.distributed:
        return module
    ids = [env.device.index] if env.device.type == "cuda" else None
    return DDP(module, device_ids=ids, broadcast_buffers=False)


def shard(indices, env: DistEnv) -> np.ndarray:
    """This rank's contiguous share of a batch's frame indices (the first ``n % world`` ranks take one more)."""
    idx = np.asarray(indices)
    sizes = split_evenly(len(idx), env.world)
    start = sum(sizes[:env.rank])
    return idx[start:start + sizes[env.rank]]


def shard_weight(n_shard: int, n_batch: int, env: DistEnv) -> float:
    """Factor on a shard's mean loss so that DDP's average over ranks is the mean over the whole batch."""
    return env.world * n_shard / n_batch if n_batch else 0.0


def ddp_step(module, opt: torch.optim.Optimizer, loss_fn, spins, h_ref, e_ref, key: str, idx, env: DistEnv
             ) -> float:
    """One optimizer step on the batch ``idx`` (frame indices into ``spins``, ``h_ref``, ``e_ref``), this rank
    doing its shard. ``loss_fn(h, h_ref, e, e_ref, spins) -> scalar`` is the mean loss of the frames given.
    Returns the batch's loss (the weighted shard losses summed over ranks: the single-process loss)."""
    mine = shard(idx, env)
    w = shard_weight(len(mine), len(idx), env)
    if len(mine):
        s = spins[mine]
        e, h = module(s, key)
        loss = loss_fn(h, h_ref[mine], e, e_ref[mine], s) * w
    else:  # an empty shard still takes part in DDP's all-reduce, with zero gradients
        s = spins[np.asarray(idx)[:1]]
        e, h = module(s, key)
        loss = 0.0 * (e.sum() + h.sum())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(all_sum(env, loss.detach().reshape(1).to(torch.float64)))
