"""The one seam of the architecture: a field provider maps spins to an energy and local fields.

Every provider (exact diagonalization, KPM, NEGF, the classical terms, the trained networks) implements
:meth:`FieldProvider._compute` on a validated float64 batch ``[B, N, 3]`` and returns a :class:`FieldResult`. The
integrators, the data generator, training, the locality analysis and the benchmarks only ever call
:meth:`FieldProvider.compute`, and import this module, never a particular solver. The field-error measure of the
package (:func:`transverse_rms_ratio`, :func:`transverse_sq_error`) lives here beside it.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
import torch

from .errors import NearsightError, as_spins
from .lattice import Lattice


@dataclass
class FieldResult:
    """Energy ``[B]`` (or scalar) and fields ``h_i = -dE/dS_i`` ``[B, N, 3]`` (or ``[N, 3]``), plus extras."""

    energy: torch.Tensor
    fields: torch.Tensor
    extras: dict = field(default_factory=dict)

    def unbatch(self) -> "FieldResult":
        ex = {k: (v[0] if isinstance(v, torch.Tensor) and v.dim() > 0 else v) for k, v in self.extras.items()}
        return FieldResult(self.energy[0], self.fields[0], ex)


class FieldProvider(abc.ABC):
    """Spins in; energy and fields out. Subclasses implement ``_compute`` on a ``[B, N, 3]`` float64 batch."""

    lattice: Lattice
    #: short name used in files and on the command line ("ed", "kpm", "ml", ...)
    name: str = "provider"
    #: True when fields are exactly -dE/dS (conservative); False for driven (NEGF) providers
    conservative: bool = True
    #: where the provider computes; a subclass that takes ``device=`` sets ``self._device``
    _device: torch.device = torch.device("cpu")

    def compute(self, spins) -> FieldResult:
        """Energy and fields for spins of shape ``[N, 3]`` or ``[B, N, 3]`` (validated: finite unit vectors)."""
        s, batched = self.spins_batch(spins)
        res = self._compute(s)
        return res if batched else res.unbatch()

    __call__ = compute

    def spins_batch(self, spins) -> tuple[torch.Tensor, bool]:
        """``spins`` (``[N, 3]`` or ``[B, N, 3]``, any array) validated for this provider's sites as a float64
        ``[B, N, 3]`` tensor on its device, and whether they came batched: the one check of every entry point."""
        return as_spins(spins, self.lattice.N, device=self.device)

    @property
    def device(self) -> torch.device:
        return self._device

    @abc.abstractmethod
    def _compute(self, spins: torch.Tensor) -> FieldResult:
        ...

    def warm_state(self) -> dict[str, np.ndarray]:
        """What the next evaluation starts from besides the spins (e.g. the canonical ML solve's previous ``mu*``):
        float64 arrays by name, saved in a trajectory's checkpoint so that a resumed run is bit for bit the
        uninterrupted one. Stateless providers (the default) have none."""
        return {}

    def set_warm_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`warm_state` (resume); an empty ``state`` is a cold start."""
        if state:
            raise NearsightError(f"the {self.name} provider keeps no warm state, but the checkpoint holds "
                                 f"{sorted(state)}: the run was made with another provider; resume it with that one")

    def describe(self) -> dict:
        """Parameters written to trajectories and datasets as attributes."""
        return {"provider": self.name, "lattice": self.lattice.kind, "L1": self.lattice.L1, "L2": self.lattice.L2}


def transverse(fields: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
    """Part of ``h_i`` perpendicular to ``S_i`` (the part that moves the spin)."""
    return fields - (fields * spins).sum(-1, keepdim=True) * spins


def transverse_sq_error(h_pred: torch.Tensor, h_ref: torch.Tensor, spins: torch.Tensor) -> torch.Tensor:
    """``|h_perp_pred - h_perp_ref|^2`` per site ``[B, N]`` (transverse is linear in the field)."""
    return transverse(h_pred - h_ref, spins).pow(2).sum(-1)


def transverse_rms_ratio(fields, reference, spins) -> float:
    """The package's field-error measure: RMS of the transverse part of ``fields - reference`` over the RMS of the
    transverse part of ``reference``, over all sites and configurations (``[..., N, 3]`` tensors or arrays;
    computed in float64)."""
    f, r, s = (torch.as_tensor(x).to(torch.float64) for x in (fields, reference, spins))
    return float((transverse(f - r, s).pow(2).sum() / transverse(r, s).pow(2).sum()).sqrt())


class SumProvider(FieldProvider):
    """The sum of providers on the same sites: energies and fields add (e.g. NEGF electrons plus a classical
    anisotropy, ``SumProvider(NEGFProvider(strip, ...), AnisotropyProvider(strip, K=0.1))``).

    ``conservative`` only if every part is; extras are merged (a name given by two parts raises). The first
    part's lattice and device are the sum's.
    """

    def __init__(self, *providers: FieldProvider):
        if len(providers) < 1 or not all(isinstance(p, FieldProvider) for p in providers):
            raise NearsightError(f"SumProvider needs one or more field providers, got "
                                 f"{[type(p).__name__ for p in providers]}")
        self.parts = providers
        self.lattice = providers[0].lattice
        for p in providers[1:]:
            if p.lattice.N != self.lattice.N:
                raise NearsightError(f"SumProvider parts must act on the same sites: {providers[0].name} has "
                                     f"N={self.lattice.N}, {p.name} has N={p.lattice.N}; build both on one lattice")
        self.conservative = all(p.conservative for p in providers)
        self.name = "+".join(p.name for p in providers)

    @property
    def device(self) -> torch.device:
        return self.parts[0].device

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        energy, fields, extras = 0.0, 0.0, {}
        for p in self.parts:
            r = p._compute(spins)
            clash = set(extras) & set(r.extras)
            if clash:
                raise NearsightError(f"SumProvider: extras {sorted(clash)} are given by two parts")
            energy, fields = energy + r.energy.to(torch.float64), fields + r.fields.to(torch.float64)
            extras.update(r.extras)
        return FieldResult(energy, fields, extras)

    def warm_state(self) -> dict:
        return {f"{k}.{name}": v for k, p in enumerate(self.parts) for name, v in p.warm_state().items()}

    def set_warm_state(self, state: dict) -> None:
        parts = [{} for _ in self.parts]
        for key, v in state.items():
            k, _, name = key.partition(".")
            if not (k.isdigit() and int(k) < len(self.parts) and name):
                raise NearsightError(f"the checkpoint's provider state {key!r} does not belong to this sum of "
                                     f"{len(self.parts)} providers: resume with the providers that made the run")
            parts[int(k)][name] = v
        for p, st in zip(self.parts, parts):
            p.set_warm_state(st)

    def describe(self) -> dict:
        d = {}
        for p in reversed(self.parts):
            d.update(p.describe())
        d["provider"] = self.name
        d["parts"] = ",".join(p.name for p in self.parts)
        return d
