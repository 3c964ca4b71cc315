"""The dataset stage: labelled configurations for training, and the configs that say how to make them.

* :mod:`.generate`  — datasets from LLG quenches (optionally driven by an ML model) and relabelling of a dataset's
  configurations by another provider (``nearsight generate``); the file format itself is :mod:`nearsight.io`
* :mod:`.snapshots` — the random domain-wall sampler of the driven (strip) model's labels
* :mod:`.systems`   — system files ``configs/systems/NAME.yaml``: physics once, named sampling specs
* :mod:`.plan`      — what ``nearsight train-shipped`` must make for a model, in order
"""
from .generate import generate_dataset, relabel_dataset
from .systems import System, load_system

__all__ = ["generate_dataset", "relabel_dataset", "System", "load_system"]
