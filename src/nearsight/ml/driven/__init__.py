"""Driven (nonconservative) field models: the generalized potential ``h_perp = P(-dV/dS) + S x (-dW/dS)`` plus
spin-transfer terms, learned from NEGF labels on a biased strip.

* :mod:`.model`    — :class:`GeneralizedPotentialModel` (the network and its driven-geometry inputs)
* :mod:`.files`    — its model-file format (registered in :data:`nearsight.ml.cards.FORMATS`):
  :func:`save_generalized`, :func:`load_generalized`, :func:`generalized_card`
* :mod:`.provider` — :class:`GeneralizedMLProvider`, the model at a fixed bias as a field provider

Its fitting loop is :func:`nearsight.training.driven.fit_generalized`.
"""
from .files import generalized_card, load_generalized, save_generalized
from .model import TRANSFER_STENCILS, GeneralizedPotentialModel
from .provider import GeneralizedMLProvider

__all__ = ["GeneralizedPotentialModel", "TRANSFER_STENCILS", "GeneralizedMLProvider", "generalized_card",
           "load_generalized", "save_generalized"]
