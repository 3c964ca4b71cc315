"""The trained network as a field provider: spins in, ``E = sum_i eps_i`` and ``h = -dE/dS`` out.

Either model family: the Behler–Parrinello :class:`SiteEnergyModel` (large lattices evaluated a block of sites at a
time) or the message-passing :class:`~nearsight.ml.mpnn.MPNNModel` (evaluated a few configurations at a time).

The physics (``J``, ``t``, filling or ``mu``, the electronic ``kT`` of the labels, ...) is fixed by the model's
card; a caller may repeat parameters, but any that contradict the card are an error. Spins are validated in
float64 by :meth:`FieldProvider.compute`, evaluated in the model's dtype and returned as float64.
"""
from __future__ import annotations

import torch

from ..electrons.base import FieldProvider, FieldResult
from ..errors import NearsightError
from ..lattice import Lattice
from ..runtime import keep_freed_memory
from .cards import check_physics, load_model, physics_of
from .mpnn import MPNNModel
from .network import SiteEnergyModel, energy_and_fields, energy_and_fields_by_sites


class MLProvider(FieldProvider):
    """Field provider backed by a :class:`SiteEnergyModel` or an :class:`MPNNModel` (rebuilt on ``lattice`` if
    needed).

    ``chunk`` bounds how many configurations are differentiated at once and ``site_chunk`` how many sites have
    their features alive at once (configurations are grouped up to that many sites; for the BP family a larger
    lattice is evaluated in site chunks, for the message-passing family one configuration at a time): memory, and
    cache traffic on large lattices. Results do not depend on either (up to rounding). ``globals`` (a vector of
    ``n_globals`` numbers) is passed to a message-passing model that takes global inputs. On Linux the provider asks the allocator to keep freed memory for reuse
    (:func:`nearsight.runtime.keep_freed_memory`; ``keep_memory=False`` leaves the process as it is).
    """

    name = "ml"

    def __init__(self, model: SiteEnergyModel | MPNNModel | str, lattice: Lattice, *, device: str | None = None,
                 chunk: int = 64, site_chunk: int = 16384, keep_memory: bool = True, globals=None):
        if isinstance(model, str):
            model = load_model(model, lattice)
        self._device = torch.device(device or "cpu")
        self.lattice = lattice
        self.model = model.on_lattice(lattice).to(self._device)
        self.model.requires_grad_(False)
        self.card = self.model.card
        self.chunk = max(1, int(chunk))
        self.site_chunk = max(1, int(site_chunk))
        self._globals = self._check_globals(globals)
        if keep_memory:
            keep_freed_memory()

    def _check_globals(self, globals_) -> torch.Tensor | None:
        G = int(getattr(self.model, "n_globals", 0))
        if globals_ is None:
            if G:
                raise NearsightError(f"model {self.card.get('name', '')!r} needs {G} global input(s) (n_globals); "
                                     f"pass globals=[...] to MLProvider")
            return None
        g = torch.as_tensor(globals_, dtype=self.model.dtype, device=self._device).reshape(-1)
        if G == 0 or g.numel() != G:
            raise NearsightError(f"globals must hold {G} number(s) for this model, got {g.numel()}")
        return g

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def cutoff(self) -> float:
        """Receptive radius of a site energy."""
        return self.model.cutoff

    @property
    def field_radius(self) -> float:
        """Receptive radius of a field: ``h_i`` depends on spins within ``2 * cutoff`` of site ``i``."""
        return 2.0 * self.model.cutoff

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        s = spins.to(self.model.dtype)
        es, hs = [], []
        N = s.shape[1]
        big = N > self.site_chunk
        by_sites = big and isinstance(self.model, SiteEnergyModel)
        per_call = 1 if big else max(1, min(self.chunk, self.site_chunk // N))   # about site_chunk sites a call
        model, g = self.model, self._globals
        if g is not None:
            def model(x):
                return self.model(x, globals=g.expand(len(x), -1))
        for part in torch.split(s, per_call):
            e, h = (energy_and_fields_by_sites(self.model, part, self.site_chunk) if by_sites
                    else energy_and_fields(model, part))
            es.append(e)
            hs.append(h)
        return FieldResult(torch.cat(es).to(torch.float64), torch.cat(hs).to(torch.float64))

    def describe(self) -> dict:
        phys = {k: v for k, v in physics_of(self.card).items() if v is not None}
        return {**super().describe(), **phys, "model": self.card.get("name"), "model_path": self.card.get("path"),
                "model_family": getattr(self.model, "family", "bp"), "cutoff": self.cutoff,
                "model_dtype": self.card.get("dtype")}


def provider_from_cli(cfg: dict, lattice: Lattice, model=None) -> MLProvider:
    """The ML provider from CLI/config keys: ``model`` (name or path), ``device``, and physics keys
    (``J, t, t2, kT, mu, filling, B``) that, where not None, must match the card. ``model`` (an SDModel built
    from the same keys with defaults filled in) is not used: only parameters the user actually gave are checked.
    """
    name = cfg.get("model")
    if not name:
        raise NearsightError("--solver ml needs --model NAME_OR_PATH (a shipped model listed by "
                             "'nearsight models', or a .pt file made by 'nearsight train')")
    net = load_model(name, lattice)
    check_physics(net.card, cfg)
    return MLProvider(net, lattice, device=cfg.get("device"))
