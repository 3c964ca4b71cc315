"""Optimizer, learning-rate schedule, EMA of the weights and early stopping (config keys in :mod:`.train`).

* ``optimizer: adamw`` (decoupled weight decay; ``adam`` also accepted) with ``grad_clip`` (max global norm).
* ``lr_schedule``: ``cosine`` (linear warmup over ``warmup_epochs``, then cosine to ``lr * lr_min_factor`` at the
  last epoch), ``plateau`` (``ReduceLROnPlateau`` on the internal-validation transverse ratio: ``lr *=
  plateau_factor`` after ``plateau_patience`` epochs without improvement, never below ``lr * lr_min_factor``),
  ``exponential`` (``lr * lr_gamma^epoch``) or ``constant``. The epoch-indexed ones are pure functions of the epoch
  (a resumed run recomputes them); the plateau state is saved in the checkpoint.
* ``ema``: exponential moving average of the weights (``torch.optim.swa_utils.AveragedModel``), updated after every
  step with the decay ``min(ema, (1 + n) / (10 + n))`` at update ``n`` (the usual warm-up: early on the average
  follows the weights instead of remembering the random initialization); evaluation, model selection and the saved
  model use the averaged weights (``ema: null`` or ``0``: none).
* Early stopping: :class:`EarlyStopping` keeps the best internal-validation ratio, its epoch and weights, and stops
  after ``patience`` epochs without improvement (``patience: null``: never).
"""
from __future__ import annotations

import copy
import math

import torch
from torch.optim.swa_utils import AveragedModel

SCHEDULES = ("cosine", "plateau", "exponential", "constant")
OPTIMIZERS = ("adamw", "adam")


def make_optimizer(c: dict, params) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if c["optimizer"] == "adamw" else torch.optim.Adam
    return cls(params, lr=c["lr"], weight_decay=c["weight_decay"])


def lr_at(c: dict, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based) for the epoch-indexed schedules (the base ``lr`` for plateau)."""
    if c["lr_schedule"] in ("constant", "plateau"):
        return c["lr"]
    if c["lr_schedule"] == "exponential":
        return c["lr"] * c["lr_gamma"] ** epoch
    w = int(c.get("warmup_epochs") or 0)
    if epoch < w:
        return c["lr"] * (epoch + 1) / (w + 1)
    x = (epoch - w) / max(1, c["epochs"] - 1 - w)
    lo = c["lr"] * c["lr_min_factor"]
    return lo + 0.5 * (c["lr"] - lo) * (1 + math.cos(math.pi * min(1.0, x)))


def make_plateau(c: dict, opt) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    if c["lr_schedule"] != "plateau":
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=c["plateau_factor"],
                                                      patience=c["plateau_patience"],
                                                      min_lr=c["lr"] * c["lr_min_factor"])


def make_ema(c: dict, module: torch.nn.Module) -> AveragedModel | None:
    if not c["ema"]:
        return None
    decay = float(c["ema"])

    @torch.no_grad()
    def ema_update(averaged: list, current: list, num_averaged) -> None:
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        fl = [(a, b) for a, b in zip(averaged, current) if a.is_floating_point()]
        if fl:
            torch._foreach_lerp_([a for a, _ in fl], [b for _, b in fl], 1.0 - d)
        for a, b in zip(averaged, current):         # integer buffers (index tables) are copied
            if not a.is_floating_point():
                a.copy_(b)

    return AveragedModel(module, multi_avg_fn=ema_update, use_buffers=True)


def eval_module(module: torch.nn.Module, ema: AveragedModel | None) -> torch.nn.Module:
    """The weights that are evaluated and saved: the EMA's when there is one."""
    return module if ema is None else ema.module


class EarlyStopping:
    """Best internal-validation metric, its epoch and a copy of its (EMA) weights; ``stop`` after ``patience``."""

    def __init__(self, patience: int | None):
        self.patience = patience
        self.best, self.best_epoch, self.best_state = math.inf, 0, None

    def update(self, epoch: int, metric: float, module: torch.nn.Module) -> bool:
        """Record epoch ``epoch`` (1-based); True if it is the new best."""
        if math.isfinite(metric) and metric < self.best:
            self.best, self.best_epoch = float(metric), int(epoch)
            self.best_state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
            return True
        return False

    def stop(self, epoch: int) -> bool:
        return self.patience is not None and self.best_state is not None and epoch - self.best_epoch >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_state": copy.copy(self.best_state)}

    def load_state_dict(self, st: dict) -> None:
        self.best, self.best_epoch, self.best_state = float(st["best"]), int(st["best_epoch"]), st["best_state"]
