"""The trained network as a field provider: spins in, ``E = sum_i eps_i`` and ``h = -dE/dS`` out.

Either model family: the Behler–Parrinello :class:`SiteEnergyModel` (large lattices evaluated a block of sites at a
time) or the message-passing :class:`~nearsight.ml.mpnn.MPNNModel` (evaluated a few configurations at a time).

The physics (``J``, ``t``, filling or ``mu``, the electronic ``kT`` of the labels, ...) is fixed by the model's
card; a caller may repeat parameters, but any that contradict the card are an error. Spins are validated in
float64 by :meth:`FieldProvider.compute`, evaluated in the model's dtype and returned as float64.

A **mu-conditioned** model (:mod:`nearsight.ml.canonical`, trained over a window of ``mu``) runs in either
ensemble: ``mu=`` (grand canonical: fields at that ``mu``, energy ``Omega(mu)``) or ``filling=`` (canonical:
``mu*`` solved per configuration at every evaluation, warm-started from the previous call's, to
``|N - N_e| <= mu_tol N_e``; fields at ``mu*``, energy ``F = Omega(mu*) + mu* N_e``); neither: the card's default.
Both return extras ``mu [B]`` and ``n_electrons [B]`` (``N = -dOmega/dmu``); canonical mode also ``dn_dmu [B]``, the
learned compressibility at ``mu*`` (the solve's slope). The canonical solve runs in float64
(a float32 model is evaluated with its weights cast to float64 in that mode: the count must resolve 1e-10 N_e).
A model without the mu input runs only in its card's ensemble (another ``mu`` / filling is refused).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ..errors import NearsightError
from ..fields import FieldProvider, FieldResult
from ..lattice import Lattice
from ..runtime import keep_freed_memory
from .canonical import COUNT_TOL, MuModel, evaluate_canonical, evaluate_grand
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

    def __init__(self, model: SiteEnergyModel | MPNNModel | MuModel | str, lattice: Lattice, *,
                 device: str | None = None, chunk: int = 64, site_chunk: int = 16384, keep_memory: bool = True,
                 globals=None, mu: float | None = None, filling: float | None = None, mu_tol: float = COUNT_TOL):
        if isinstance(model, str):
            model = load_model(model, lattice)
        self._device = torch.device(device or "cpu")
        self.lattice = lattice
        self.model = model.on_lattice(lattice).to(self._device)
        self.model.requires_grad_(False)
        self.card = self.model.card
        self.chunk = max(1, int(chunk))
        self.site_chunk = max(1, int(site_chunk))
        self.mu, self.filling, self.n_electrons, self._mu_prev, self._slope_prev = None, None, None, None, None
        self.mu_tol = float(mu_tol)
        if isinstance(self.model, MuModel):
            if globals is not None:
                raise NearsightError("a mu-conditioned model takes mu= or filling=, not globals=")
            self._globals = None
            self._set_ensemble(mu, filling)
        else:
            self._refuse_other_ensemble(mu, filling)
            self._globals = self._check_globals(globals)
        if keep_memory:
            keep_freed_memory()

    # ------------------------------------------------------------------------------------------- ensembles
    def _refuse_other_ensemble(self, mu, filling) -> None:
        if mu is not None or filling is not None:
            check_physics(self.card, {"mu": mu, "filling": filling}, source="the mu / filling given to MLProvider")

    def _set_ensemble(self, mu, filling) -> None:
        card, name = self.card, self.card.get("name", "the model")
        if mu is not None and filling is not None:
            raise NearsightError("give mu (grand canonical) or filling (canonical), not both")
        if mu is None and filling is None:
            mu, filling = card.get("mu"), card.get("filling")
            if mu is None and filling is None:
                raise NearsightError(f"{name} is mu-conditioned and its card names no default ensemble: give mu "
                                     f"(grand canonical) or filling (canonical)")
        lo, hi = self.model.window
        if not 0 < self.mu_tol < 1e-3:
            raise NearsightError(f"mu_tol must lie in (0, 1e-3) (relative tolerance of the count), got {self.mu_tol!r}")
        if mu is not None:
            mu = float(mu)
            if not (math.isfinite(mu) and lo <= mu <= hi):
                raise NearsightError(f"mu = {mu:g} lies outside the window the model {name} was trained on "
                                     f"[{lo:g}, {hi:g}]; choose mu inside it (or train over a wider mu_window)")
            self.mu = mu
            return
        filling = float(filling)
        ne = round(filling * 2 * self.lattice.N)
        if not (math.isfinite(filling) and 0 < ne < 2 * self.lattice.N):
            raise NearsightError(f"filling {filling!r} gives N_e = {ne} of {2 * self.lattice.N} states; choose a "
                                 f"filling with 0 < N_e < 2N on this lattice")
        self.filling, self.n_electrons = filling, int(ne)
        if self.model.dtype != torch.float64:     # the count must resolve mu_tol * N_e (module docstring)
            self.model = copy.deepcopy(self.model).to(torch.float64)

    @property
    def ensemble(self) -> str:
        if not isinstance(self.model, MuModel):
            return "canonical" if self.card.get("filling") is not None else "grand canonical"
        return "canonical" if self.filling is not None else "grand canonical"

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
    def cutoff(self) -> float:
        """Receptive radius of a site energy."""
        return self.model.cutoff

    @property
    def field_radius(self) -> float:
        """Receptive radius of a field: ``h_i`` depends on spins within ``2 * cutoff`` of site ``i``."""
        return 2.0 * self.model.cutoff

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        if isinstance(self.model, MuModel):
            return self._compute_mu(spins)
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

    def _compute_mu(self, spins: torch.Tensor) -> FieldResult:
        """Either ensemble of a mu-conditioned model (module docstring), a part of the batch at a time."""
        s = spins.to(self.model.dtype)
        B, N = s.shape[:2]
        per_call = max(1, min(self.chunk, self.site_chunk // N))
        canonical = self.n_electrons is not None
        if canonical:
            prev = self._mu_prev
            warm = prev is not None and prev.shape[0] == B and prev.device == s.device
            start = prev if warm else torch.full((B,), self.model.mu0, dtype=torch.float64, device=s.device)
            slopes = self._slope_prev if warm else None
        out = {k: [] for k in ("e", "h", "mu", "n", "dn")}
        for k0 in range(0, B, per_call):
            part = s[k0:k0 + per_call]
            if canonical:
                e, h, mu, n, dn, iters = evaluate_canonical(
                    self.model, part, self.n_electrons, start[k0:k0 + per_call], tol=self.mu_tol,
                    slope_start=None if slopes is None else slopes[k0:k0 + per_call])
                self.last_evaluations = iters
                out["dn"].append(dn)
            else:
                mu = torch.full((part.shape[0],), self.mu, dtype=torch.float64, device=s.device)
                e, h, n = evaluate_grand(self.model, part, mu)
            for key, v in (("e", e), ("h", h), ("mu", mu), ("n", n)):
                out[key].append(v)
        mu, n = torch.cat(out["mu"]).to(torch.float64), torch.cat(out["n"]).to(torch.float64)
        if canonical:
            self._mu_prev, self._slope_prev = mu.detach().clone(), torch.cat(out["dn"]).detach().clone()
        extras = {"mu": mu, "n_electrons": n}
        if canonical:        # the learned compressibility at mu* (the solve's slope: exact for BP, a secant for MPNN)
            extras["dn_dmu"] = self._slope_prev.clone()
        return FieldResult(torch.cat(out["e"]).to(torch.float64), torch.cat(out["h"]).to(torch.float64), extras)

    def warm_state(self) -> dict:
        """The canonical solve's start: the previous call's ``mu*`` and ``dN/dmu`` per configuration (none in the
        grand-canonical mode, or before the first canonical call)."""
        if self._mu_prev is None:
            return {}
        return {"mu": self._mu_prev.cpu().numpy().copy(), "slope": self._slope_prev.cpu().numpy().copy()}

    def set_warm_state(self, state: dict) -> None:
        if not state:
            self._mu_prev = self._slope_prev = None
            return
        if self.n_electrons is None or set(state) != {"mu", "slope"}:
            raise NearsightError(f"the checkpoint's provider state {sorted(state)} is not a canonical ML solve's "
                                 f"(mu, slope): resume the run with the provider and ensemble that made it")
        self._mu_prev, self._slope_prev = (torch.as_tensor(np.asarray(state[k], dtype=np.float64),
                                                           device=self._device).clone() for k in ("mu", "slope"))

    def describe(self) -> dict:
        phys = {k: v for k, v in physics_of(self.card).items() if v is not None}
        extra = {}
        if isinstance(self.model, MuModel):
            phys.pop("mu", None)
            phys.pop("filling", None)
            phys.update({"mu": self.mu} if self.mu is not None else {"filling": self.filling})
            extra = {"ensemble": self.ensemble, "mu_window": list(self.model.window), "mu_conditioned": True}
            if self.filling is not None:
                extra.update(n_electrons=self.n_electrons, mu_tol=self.mu_tol)
        return {**super().describe(), **phys, **extra, "model": self.card.get("name"),
                "model_path": self.card.get("path"), "model_family": getattr(self.model, "family", "bp"),
                "cutoff": self.cutoff, "model_dtype": self.card.get("dtype")}

