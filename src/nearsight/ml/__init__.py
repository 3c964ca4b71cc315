"""ML site-energy models, ``E = sum_i eps_i``, fields by autograd, in two families.

* :mod:`.network` — Behler–Parrinello: descriptor -> per-site MLP; :class:`SiteEnergyModel`, :class:`SiteMLP`,
  :func:`energy_and_fields`
* :mod:`.mpnn`    — spin-equivariant message passing on the lattice: :class:`MPNNModel`, :func:`build_mpnn`
* :mod:`.cards`   — model files (weights + descriptor or network config + card) of either family,
  :func:`load_model`, shipped models, and the registry of model-file formats (:data:`.cards.FORMATS`)
* :mod:`.provider` — :class:`MLProvider`, either family on the common field-provider interface
* :mod:`.driven` — :class:`GeneralizedPotentialModel` for driven (nonconservative) fields,
  ``h_perp = P(-dV/dS) + S x (-dW/dS)``, its file format (registered with the cards) and
  :class:`GeneralizedMLProvider`; fitted by :func:`nearsight.training.driven.fit_generalized`
"""
from .cards import load_card, load_model, save_model, shipped_models
from .driven import GeneralizedMLProvider, GeneralizedPotentialModel, load_generalized, save_generalized
from .mpnn import MPNNModel, build_mpnn
from .network import SiteEnergyModel, SiteMLP, energy_and_fields
from .provider import MLProvider

__all__ = ["SiteEnergyModel", "SiteMLP", "MPNNModel", "build_mpnn", "energy_and_fields", "load_model", "load_card",
           "save_model", "shipped_models", "MLProvider", "GeneralizedPotentialModel", "GeneralizedMLProvider",
           "save_generalized", "load_generalized"]
