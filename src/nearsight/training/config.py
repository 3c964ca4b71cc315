"""The training config: its keys, defaults and checks (``check_config``), for :func:`nearsight.training.train.train`.

Config keys (YAML for ``nearsight train CONFIG.yaml``; paths relative to the working directory):

    datasets:        [a.h5, b.h5]   # required: files from 'nearsight generate' (same physics; sizes may differ)
    val_fraction:    0.2            # internal validation: this fraction of their trajectories (>= 1), by seed;
                                    #   model selection and early stopping use it
    val_datasets:    []             # external held-out files (e.g. a lattice size never trained on): reported
                                    #   per epoch and on the card, never used for any decision
    external_every:  1              # evaluate them every this many epochs (0: only at the end)
    train_fraction:  1.0            # keep this fraction of the training trajectories (nested subsets drawn with
    subset_seed:     0              #   subset_seed: the learning curves of nearsight.training.curves)
    family:          bp             # bp (descriptor + MLP) | mpnn (nearsight.ml.mpnn, settings under 'mpnn:')
    descriptor:      {cutoff: 4.0}  # bp: options of nearsight.descriptors.Descriptor ({}: its defaults)
    hidden:          [32, 32]       # bp: MLP hidden sizes
    activation:      silu           # bp: silu | tanh (smooth: continuous fields)
    mpnn:            {}             # mpnn: the config of build_mpnn
    dtype:           float32        # float32 | float64 (float32: fields within ~5e-7 relative of float64, the same
                                    #   held-out error, 1.45-1.5x faster on CPU)
    epochs:          50             # at most this many epochs ...
    patience:        null           # ... stopping after this many without a better internal-validation ratio
    batch_size:      8              # frames per step
    optimizer:       adamw          # adamw | adam
    lr:              0.003
    lr_schedule:     cosine         # cosine (after warmup_epochs, to lr * lr_min_factor) | plateau | exponential
    warmup_epochs:   0              #   | constant  (nearsight.training.schedule)
    lr_min_factor:   0.05
    lr_gamma:        0.95           # exponential
    plateau_factor:  0.5            # plateau: ReduceLROnPlateau on the internal-validation ratio
    plateau_patience: 5
    weight_decay:    0.0
    grad_clip:       1.0            # max global gradient norm (null: no clipping); the mean norm is logged
    ema:             0.999          # EMA decay of the weights used for evaluation, selection and saving (0: none)
    loss_floor:      0.01           # per-frame loss denominator floor, relative to the mean |h_perp|^2 (loss.py)
    weight_disordered: 1.0          # weight of disordered frames in the loss (kinds: nearsight.training.metrics)
    split_time:      10.0           # quench frames with t < split_time are 'disordered'
    energy_scale:    null           # per-site energy scale of the energy term (null: std of training energies)
    lambda_start:    0.0            # weight of the energy term, ramped linearly ...
    lambda_end:      0.1            # ... to lambda_end ...
    lambda_ramp_epochs: null        # ... over this many epochs (null: half of epochs)
    lambda_count:    1.0            # mu-window data: weight of the count term N = -dOmega/dmu (loss.py)
    count_loss:      count          # count: the count error per site | mu: the count error as a mu error,
                                    #   dN / (dN/dmu) with the labels' dn_dmu (frames of small compressibility,
                                    #   where a count error moves mu* most, weigh more; loss.py)
    count_weight_max: 25.0          # count_loss mu: the largest frame weight (c0/c_b)^2 (frames with dN/dmu down
                                    #   to a fifth of the median count fully)
    lambda_density:  0.0            # mu-window data, bp: weight of the site counts n_i = -d eps_i/dmu
    count_scale:     null           # per-site scale of the count term (null: std of the training counts per site)
    density_scale:   null           # scale of the site-count term (null: std of the training site densities)
    filling:         null           # mu-window data: the default ensemble written on the card (at most one of
    mu:              null           #   filling / mu; the model runs at any mu or filling in its window)
    cache_descriptors: auto         # bp: cache features and spin Jacobians (nearsight.training.cache) auto|true|false
    cache_memory_gb: null           # auto's budget (null: half of the free GPU memory; auto never caches on CPU)
    seed:            0
    out:             runs/model     # checkpoint.pt, metrics.csv, learning_curve.png, parity.png, NAME.pt, NAME.card.json
    name:            null           # model name (default: the out directory's name)
    resume:          true           # continue from out/checkpoint.pt if present (same settings and dataset
                                    #   arrays, checked by a digest; other epochs
                                    #   only with a schedule that does not depend on them: not cosine, and
                                    #   lambda_ramp_epochs given or lambda_start = lambda_end)
    init:            null           # fine-tuning: start from this model file's weights and normalization (same
                                    #   family and network sizes; a fresh run only, the card records it)
    progress:        true
    device:          cpu            # cpu | cuda | cuda:N
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import NearsightError
from ..io import read_yaml
from ..ml.network import dtype_from_name
from .families import FAMILIES
from .metrics import SPLIT_TIME
from .schedule import OPTIMIZERS, SCHEDULES

DEFAULTS = {
    "datasets": None, "val_datasets": [], "val_fraction": 0.2, "external_every": 1, "train_fraction": 1.0,
    "subset_seed": 0, "family": "bp", "descriptor": {"cutoff": 4.0}, "hidden": [32, 32], "activation": "silu",
    "mpnn": {}, "dtype": "float32", "epochs": 50, "patience": None, "batch_size": 8, "optimizer": "adamw",
    "lr": 3e-3, "lr_schedule": "cosine", "warmup_epochs": 0, "lr_min_factor": 0.05, "lr_gamma": 0.95,
    "plateau_factor": 0.5, "plateau_patience": 5, "weight_decay": 0.0, "grad_clip": 1.0, "ema": 0.999,
    "loss_floor": 0.01, "weight_disordered": 1.0, "split_time": SPLIT_TIME, "energy_scale": None,
    "lambda_start": 0.0, "lambda_end": 0.1, "lambda_ramp_epochs": None, "cache_descriptors": "auto",
    "cache_memory_gb": None, "seed": 0, "out": "runs/model", "name": None, "resume": True, "progress": True,
    "device": "cpu", "lambda_count": 1.0, "count_loss": "count", "count_weight_max": 25.0,
    "lambda_density": 0.0, "count_scale": None,
    "density_scale": None,
    "filling": None, "mu": None, "init": None,
}
#: keys whose None is meaningful (not "use the default")
NULLABLE = ("name", "lambda_ramp_epochs", "patience", "grad_clip", "energy_scale", "cache_memory_gb", "ema",
            "count_scale", "density_scale", "filling", "mu", "init")
#: keys that may change when a run is resumed (they do not change the optimization up to rounding); ``epochs`` only
#: where no schedule is a function of it (:func:`resumable`)
RESUMABLE = ("epochs", "patience", "resume", "progress", "device", "out", "cache_descriptors", "cache_memory_gb",
             "external_every")


def epochs_schedule(c: dict) -> str | None:
    """Why the per-epoch schedule of the run ``c`` depends on ``epochs`` (``None`` if it does not): the cosine
    learning rate decays to its floor at the last epoch, and the energy weight ramps over half the epochs unless
    ``lambda_ramp_epochs`` is given (or ``lambda_start`` equals ``lambda_end``)."""
    why = []
    if c.get("lr_schedule") == "cosine":
        why.append("the cosine learning rate decays to its floor at the last epoch")
    if c.get("lambda_ramp_epochs") is None and c.get("lambda_start") != c.get("lambda_end"):
        why.append("the energy weight ramps over half the epochs (lambda_ramp_epochs: null)")
    return " and ".join(why) or None


def resumable(c: dict) -> tuple:
    """The keys of :data:`RESUMABLE` that a resume of the run ``c`` may change: ``epochs`` is not one of them where
    the schedule is a function of it (:func:`epochs_schedule`: a run resumed with other epochs would not follow it)."""
    return tuple(k for k in RESUMABLE if k != "epochs" or epochs_schedule(c) is None)


#: forms of the count term (loss.py): the count error per site, or the count error as a mu error
COUNT_LOSSES = ("count", "mu")

def load_config(path: str) -> dict:
    """Read a YAML training config (a clear error for a missing or malformed file)."""
    return read_yaml(path, keys_hint="keys (datasets, epochs, ...)")


def _int(c, k, lo, nullable=False):
    v = c[k]
    if nullable and v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < lo:
        raise NearsightError(f"{k} must be an integer >= {lo}{' or null' if nullable else ''}, got {v!r}")


def _float(c, k, lo=0.0, hi=math.inf, nullable=False, open_lo=False):
    if nullable and c[k] is None:
        return
    try:
        c[k] = float(c[k])
    except (TypeError, ValueError):
        raise NearsightError(f"{k} must be a number, got {c[k]!r}") from None
    if not math.isfinite(c[k]) or c[k] < lo or c[k] > hi or (open_lo and c[k] == lo):
        raise NearsightError(f"{k} must be finite and in {'(' if open_lo else '['}{lo:g}, {hi:g}], got {c[k]!r}")


def check_config(config: dict) -> dict:
    """Defaults filled in and every value checked; unknown keys are an error (they are usually typos)."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise NearsightError(f"unknown training config key(s) {', '.join(unknown)}; known keys: "
                             f"{', '.join(DEFAULTS)}")
    c = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None or k in NULLABLE}}
    for k in ("datasets", "val_datasets"):
        v = c[k]
        if isinstance(v, str):
            v = [v]
        if v is None or not isinstance(v, (list, tuple)) or not all(isinstance(p, str) for p in v):
            raise NearsightError(f"{k} must be a list of dataset files, got {config.get(k)!r}")
        c[k] = [str(p) for p in v]
    if not c["datasets"]:
        raise NearsightError("the config lists no datasets: give 'datasets: [file.h5, ...]'")
    for k in ("descriptor", "mpnn"):
        if not isinstance(c[k], dict):
            raise NearsightError(f"{k} must be a mapping of options, got {c[k]!r}")
    for k, lo in (("epochs", 0), ("batch_size", 1), ("seed", 0), ("subset_seed", 0), ("warmup_epochs", 0),
                  ("plateau_patience", 0), ("external_every", 0)):
        _int(c, k, lo)
    _int(c, "patience", 1, nullable=True)
    for k in ("lr_min_factor", "lr_gamma", "weight_decay", "lambda_start", "lambda_end", "loss_floor",
              "weight_disordered", "split_time", "lambda_count", "lambda_density"):
        _float(c, k)
    _float(c, "count_weight_max", 1.0)
    for k in ("count_scale", "density_scale"):
        _float(c, k, nullable=True, open_lo=True)
    _float(c, "filling", 0.0, 1.0, nullable=True, open_lo=True)
    _float(c, "mu", -math.inf, nullable=True)
    if c["filling"] is not None and c["mu"] is not None:
        raise NearsightError("give at most one of filling / mu (the default ensemble of a mu-conditioned model)")
    _float(c, "lr", open_lo=True)
    _float(c, "val_fraction", 0.0, 1.0, open_lo=True)
    _float(c, "train_fraction", 0.0, 1.0, open_lo=True)
    _float(c, "plateau_factor", 0.0, 1.0, open_lo=True)
    _float(c, "ema", 0.0, 1.0, nullable=True)
    if c["ema"] == 1.0:
        raise NearsightError("ema must be < 1 (a decay of 1 never moves the averaged weights); use e.g. 0.999")
    for k in ("grad_clip", "energy_scale", "cache_memory_gb"):
        _float(c, k, nullable=True, open_lo=True)
    if c["count_loss"] not in COUNT_LOSSES:
        raise NearsightError(f"count_loss must be one of {', '.join(COUNT_LOSSES)}, got {c['count_loss']!r}")
    if c["lr_schedule"] not in SCHEDULES:
        raise NearsightError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {c['lr_schedule']!r}")
    if c["optimizer"] not in OPTIMIZERS:
        raise NearsightError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {c['optimizer']!r}")
    if c["family"] not in FAMILIES:
        raise NearsightError(f"family must be one of {', '.join(FAMILIES)}, got {c['family']!r}")
    if c["cache_descriptors"] not in ("auto", True, False, "true", "false"):
        raise NearsightError(f"cache_descriptors must be auto, true or false, got {c['cache_descriptors']!r}")
    dtype_from_name(c["dtype"])
    if c["init"] is not None and not isinstance(c["init"], str):
        raise NearsightError(f"init must be the path of a model file (fine-tuning), got {c['init']!r}")
    if c["name"] is None:
        c["name"] = Path(c["out"]).name or "model"
    if not str(c["name"]).replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise NearsightError(f"name must be letters, digits, '-', '_' or '.', got {c['name']!r}")
    return c
