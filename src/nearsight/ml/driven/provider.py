"""A driven (generalized-potential) model at a fixed bias on the field-provider interface."""
from __future__ import annotations

import math

import torch

from ...errors import NearsightError
from ...fields import FieldProvider, FieldResult
from .files import load_generalized
from .model import GeneralizedPotentialModel


class GeneralizedMLProvider(FieldProvider):
    """A :class:`GeneralizedPotentialModel` at a fixed ``bias`` on the field-provider interface.

    ``fields`` = ``P(-dV/dS) + S x (-dW/dS)`` (transverse only); ``energy`` = ``V``, the conservative potential
    (up to an arbitrary constant; it is *not* a potential of the returned fields — hence ``conservative = False``);
    extras: ``nonconservative_potential`` ``W`` and the two field parts ``conservative_fields``,
    ``nonconservative_fields``. ``geometry`` (default: the model's) is a Strip or a periodic square Lattice.
    """

    name = "ml-generalized"
    conservative = False

    def __init__(self, model: GeneralizedPotentialModel | str, geometry=None, *, bias=None, device: str | None = None,
                 chunk: int = 64):
        if isinstance(model, str):
            model = load_generalized(model, geometry)
        if not isinstance(model, GeneralizedPotentialModel):
            raise NearsightError(f"model must be a GeneralizedPotentialModel or a model file, got "
                                 f"{type(model).__name__}")
        if bias is None:
            raise NearsightError("GeneralizedMLProvider needs bias=V (a number; 0 for equilibrium): the driven "
                                 "fields depend on it")
        try:
            self.bias = float(bias)
        except (TypeError, ValueError):
            raise NearsightError(f"bias must be a number, got {bias!r}") from None
        if not math.isfinite(self.bias):
            raise NearsightError(f"bias must be finite, got {bias!r}")
        self._device = torch.device(device or "cpu")
        self.model = model.on_geometry(geometry if geometry is not None else model.geometry).to(self._device)
        self.model.requires_grad_(False)
        self.lattice = self.model.geometry
        self.card = self.model.card
        self.chunk = max(1, int(chunk))

    @property
    def field_radius(self) -> float:
        return 2.0 * self.model.cutoff

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        outs = [self.model.evaluate(part, self.bias) for part in torch.split(spins, self.chunk)]
        cat = {k: torch.cat([o[k] for o in outs]).to(torch.float64) for k in outs[0]}
        return FieldResult(cat["V"], cat["h_conservative"] + cat["h_nonconservative"],
                           {"nonconservative_potential": cat["W"], "conservative_fields": cat["h_conservative"],
                            "nonconservative_fields": cat["h_nonconservative"]})

    def describe(self) -> dict:
        g = self.model.geometry_info
        d = {"provider": self.name, "lattice": g["type"], "L1": g["Lx"], "L2": g["Ly"], "bias": self.bias,
             "model": self.card.get("name"), "model_path": self.card.get("path"), "cutoff": self.model.cutoff}
        d.update({k: self.card[k] for k in ("t", "J", "kT", "mu", "filling") if self.card.get(k) is not None})
        return d
