"""Training of Behler–Parrinello models on ED/KPM labels (``nearsight train CONFIG.yaml``).

* :mod:`.data`  — datasets, checks, split by trajectory
* :mod:`.loss`  — transverse-field loss, energy term and its ramp, metrics
* :mod:`.train` — :func:`train` (config keys documented there), checkpoints, metrics.csv, plots
"""
from .data import FrameSet, TrainingData, load_training_data
from .train import DEFAULTS, check_config, load_config, train

__all__ = ["FrameSet", "TrainingData", "load_training_data", "DEFAULTS", "check_config", "load_config", "train"]
