"""A second model family: a spin-equivariant message-passing network on the lattice (issue 21).

* :mod:`.geometry` — message offsets, their point-group orbits, lattice harmonics and couplings
* :mod:`.layers`   — :class:`InteractionLayer`: aggregation, pair and triple products, gated residual update
* :mod:`.model`    — :class:`MPNNModel` (the site-energy contract of the BP model) and :func:`build_mpnn`
"""
from .geometry import LABEL_NAMES, N_LABELS, message_geometry
from .layers import InteractionLayer
from .model import DEFAULTS, MPNNCore, MPNNModel, build_mpnn

__all__ = ["MPNNModel", "MPNNCore", "build_mpnn", "DEFAULTS", "InteractionLayer", "message_geometry", "N_LABELS",
           "LABEL_NAMES"]
