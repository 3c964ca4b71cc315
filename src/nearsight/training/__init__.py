"""Training of Behler–Parrinello models on ED/KPM labels (``nearsight train CONFIG.yaml``).

* :mod:`.data`     — datasets, checks, split by trajectory (internal validation, external held-out, nested subsets)
* :mod:`.loss`     — per-frame normalized transverse-field loss, energy term and its ramp
* :mod:`.metrics`  — the disordered / ordered kinds of frames and held-out errors split by kind
* :mod:`.schedule` — optimizer, lr schedules, EMA of the weights, early stopping
* :mod:`.families` — model families (bp, mpnn) sharing one loop
* :mod:`.cache`    — BP descriptor (feature + spin-Jacobian) cache
* :mod:`.train`    — :func:`train` (config keys documented there), checkpoints, metrics.csv
* :mod:`.curves`   — learning curves: held-out error against the number of training trajectories
* :mod:`.driven`   — :func:`~.driven.fit_generalized`, the fitting loop of the driven models, nearsight.ml.driven
"""
from .data import FrameSet, TrainingData, load_training_data
from .train import DEFAULTS, check_config, load_config, train

__all__ = ["FrameSet", "TrainingData", "load_training_data", "DEFAULTS", "check_config", "load_config", "train"]
