"""Behler–Parrinello models: descriptor -> per-site MLP -> ``E = sum_i eps_i``; fields by autograd.

* :mod:`.network` — :class:`SiteEnergyModel`, :class:`SiteMLP`, :func:`energy_and_fields`
* :mod:`.cards`   — model files (weights + descriptor + card), :func:`load_model`, shipped models
* :mod:`.provider` — :class:`MLProvider`, the network on the common field-provider interface
* :mod:`.generalized` — :class:`GeneralizedPotentialModel` for driven (nonconservative) fields,
  ``h_perp = P(-dV/dS) + S x (-dW/dS)``, and :class:`GeneralizedMLProvider`
"""
from .cards import load_card, load_model, save_model, shipped_models
from .generalized import (GeneralizedMLProvider, GeneralizedPotentialModel, fit_generalized, load_generalized,
                          save_generalized)
from .network import SiteEnergyModel, SiteMLP, energy_and_fields
from .provider import MLProvider, provider_from_cli

__all__ = ["SiteEnergyModel", "SiteMLP", "energy_and_fields", "load_model", "load_card", "save_model",
           "shipped_models", "MLProvider", "provider_from_cli", "GeneralizedPotentialModel", "GeneralizedMLProvider",
           "fit_generalized", "save_generalized", "load_generalized"]
