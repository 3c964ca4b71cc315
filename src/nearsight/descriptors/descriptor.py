"""The descriptor: :class:`Descriptor` (spins ``[B,N,3]`` -> invariant features ``[B,N,F]`` of every site's
neighbourhood), :func:`build_descriptor` (from a model file's config) and the per-lattice ``DEFAULTS``.

Completeness. With ``local_cutoff = cutoff`` the features determine the neighbourhood up to the symmetries
(the Jacobian of one site's features has rank ``2n - 3`` for ``n`` spins in the disk, a test checks it). With
a smaller ``local_cutoff`` the spins between the two radii enter through their pair correlations with the
centre ``S_i . S_j`` (the leading, RKKY-like dependence) and through the block averages only.

Defaults (``DEFAULTS``) and why. The labels' nearsightedness (docs/nearsightedness.md §1) improves sharply
between R = 4 and R = 6 on both lattices (fixed-mu square, kT = 0.01: 8% -> 2% on random spins, 4-9% -> 0.3% on quench
frames; tetrahedral triangular J = 2: 3.5% -> 0.8%), so the pair correlations with the centre reach
``cutoff = 6``. Multi-spin structure (environment bonds and chiralities) is strongest near the centre and its
variable count grows as R^2 with 2-3 variables per site, so it is kept within ``local_cutoff = 3``. That
gives F = 392 (square) and 452 (triangular) features at about 4-5 us per site forward and 8-12 us forward +
backward in float32 on one CPU thread (benchmarks/bench_descriptors.py, 96x96); ``local_cutoff = cutoff = 6`` would
be locally complete but give about 1120-1160 features. ``eps = 0.02`` is the scale below which a reference block
average counts as directionless: random spins give reference amplitudes of 0.015-0.15, ordered states with
noise 0.3 give 0.001-0.05; a smaller floor makes the phases sharper and the fields stiffer. Every default
can be overridden.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import NearsightError
from ..lattice import Lattice
from .groups import PointGroup
from .invariants import IrrepLayout, compute_features
from .variables import LocalVariables, block_vectors, gather_variables, lattice_fields, take_rows

CONFIG_VERSION = 2
DEFAULTS = {
    "square": {"cutoff": 6.0, "local_cutoff": 3.0, "bond_shells": (1,), "eps": 0.02},
    "triangular": {"cutoff": 6.0, "local_cutoff": 3.0, "bond_shells": (1,), "eps": 0.02},
}
_OPTIONS = ("local_cutoff", "bond_shells", "eps")


class Descriptor(nn.Module):
    """Symmetry-invariant features of every site's neighbourhood: ``forward([B,N,3]) -> [B,N,F]``.

    Parameters
    ----------
    lattice : Lattice
        A square or triangular lattice; the index tables are built for it (any size that holds the cutoff).
    cutoff : float, optional
        ``R_c``: centre bonds ``S_i . S_j`` reach every ``j`` with ``|r_j - r_i| <= R_c`` and the reference
        blocks cover that disk. Default per lattice (``DEFAULTS``). Must be >= 2.
    local_cutoff : float, optional
        Radius within which environment bonds and triangle chiralities are variables (<= cutoff, >= 1).
    bond_shells : tuple of int
        Neighbour shells of the environment bonds ``S_j . S_k`` (1 = nearest neighbours).
    eps : float
        Floor of the reference amplitudes in the unit directions ``f / sqrt(|f|^2 + eps^2)``: a reference
        weaker than ``eps`` is treated as having no direction (the features stay smooth as it vanishes).
        Typical amplitudes: 0.015-0.15 on random spins, 0.001-0.05 in noisy ordered states.

    Attributes
    ----------
    n_features : int
    cutoff : float
        The true receptive radius: the largest distance from site ``i`` of any spin its features depend on.
    feature_names : list of str
    """

    def __init__(self, lattice: Lattice, cutoff: float | None = None, **options):
        super().__init__()
        if not isinstance(lattice, Lattice):
            raise NearsightError(f"lattice must be a nearsight Lattice, got {type(lattice).__name__}")
        if lattice.kind not in DEFAULTS:
            raise NearsightError(f"descriptors exist for lattices {', '.join(DEFAULTS)}, got {lattice.kind!r}")
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise NearsightError(f"unknown descriptor option(s) {', '.join(unknown)}; valid options are "
                                 f"cutoff, {', '.join(_OPTIONS)}")
        d = DEFAULTS[lattice.kind]
        cutoff = d["cutoff"] if cutoff is None else cutoff
        self.requested_cutoff = _number("cutoff", cutoff, lower=2.0,
                                        advice="use cutoff >= 2 lattice spacings (the reference blocks need it)")
        local = options.get("local_cutoff")
        local = min(d["local_cutoff"], self.requested_cutoff) if local is None else local
        self.local_cutoff = _number("local_cutoff", local, lower=1.0, upper=self.requested_cutoff,
                                    advice=f"use 1 <= local_cutoff <= cutoff ({self.requested_cutoff:g})")
        shells = options.get("bond_shells", d["bond_shells"])
        try:
            shells = tuple(sorted({int(s) for s in shells}))
        except (TypeError, ValueError):
            raise NearsightError(f"bond_shells must be a list of positive integers, got {shells!r}") from None
        if not shells or min(shells) < 1 or max(shells) > 6:
            raise NearsightError(f"bond_shells must be neighbour shells between 1 and 6, e.g. [1] or [1, 2]; "
                                 f"got {list(shells)}")
        self.bond_shells = shells
        self.eps = _number("eps", options.get("eps", d["eps"]), lower=1e-8,
                           advice="use a small positive floor such as 0.02")
        lattice.check_cutoff(self.requested_cutoff)
        self.lattice = lattice
        self.kind = lattice.kind
        self.group = PointGroup(lattice.kind, lattice.a)
        self.variables = LocalVariables(lattice, self.group, self.requested_cutoff, self.local_cutoff, shells)
        self.layout = IrrepLayout(self.variables)
        self.cutoff = self.variables.receptive_radius
        self.feature_names = self.layout.feature_names
        self.n_features = len(self.feature_names)
        v = self.variables
        taps, tap_weights = v.block_taps()
        lat = self.lattice
        self._tap_weights = tap_weights                                           # [2, T]
        self._index = {"pair_index": torch.as_tensor(np.stack([lat.shift(d) for d in v.pair_channels])),
                       "triangle_index": torch.as_tensor(np.stack([np.stack([lat.shift(p) for p in t])
                                                                   for t in v.templates])),   # [T, 3, N]
                       "block_index": torch.as_tensor(np.stack([lat.shift(b) for b in v.block_shifts])),
                       "tap_index": torch.as_tensor(np.stack([ch * lat.N + lat.shift(o) for o, ch in taps])),
                       "gather": [torch.as_tensor(v.gather_index(keys)) for keys in self.layout.type_keys]}
        self._cache: dict = {}
        self._positions: dict = {}

    # ------------------------------------------------------------------------------------ forward
    def _constants(self, dtype: torch.dtype, device: torch.device) -> dict:
        key = (dtype, str(device))
        if key not in self._cache:
            c = self.layout.constants(dtype, device)
            c.update({k: v.to(device) for k, v in self._index.items() if k != "gather"})
            c["gather"] = [g.to(device) for g in self._index["gather"]]
            c["tap_weights"] = torch.as_tensor(self._tap_weights, dtype=dtype, device=device)
            c["det"] = torch.as_tensor(self.group.det, dtype=dtype, device=device)
            self._cache[key] = c
        return self._cache[key]

    def forward(self, spins: torch.Tensor, ordered: bool = True) -> torch.Tensor:
        """``spins [B, N, 3]`` (or ``[N, 3]``) -> features ``[B, N, F]`` (or ``[N, F]``) in the spins' dtype.

        ``ordered=False`` returns them channel-major, ``[B, F, N]``, in the internal order of the vectorized pass
        (``features[:, self.feature_order]`` is the documented order of :attr:`feature_names`); a network that
        permutes its first layer instead (:meth:`SiteMLP.fluctuation`) saves the gather and the transpose.
        """
        if not isinstance(spins, torch.Tensor) or not spins.is_floating_point():
            raise NearsightError("spins must be a floating-point torch tensor of shape [B, N, 3]")
        single = spins.dim() == 2
        s = spins.unsqueeze(0) if single else spins
        if s.dim() != 3 or s.shape[1] != self.lattice.N or s.shape[2] != 3:
            raise NearsightError(f"spins have shape {tuple(spins.shape)}; expected [B, {self.lattice.N}, 3] "
                                 f"for {self.lattice!r}")
        out = self.site_features(*self.lattice_terms(s), ordered=ordered)
        return out[0] if single else out

    def lattice_terms(self, spins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two O(N) lattice-wide intermediates every site's features are built from, channel-major: the
        pair/chirality fields ``[B, K, N]`` and the block reference vectors ``[B, 2|G|, N]``. With
        :meth:`site_features` this splits ``forward`` so a caller can evaluate sites in chunks (bounded memory)
        and back-propagate through these two tensors once (see
        :func:`nearsight.ml.network.energy_and_fields_by_sites`)."""
        c = self._constants(spins.dtype, spins.device)
        fields = lattice_fields(spins.transpose(1, 2), c["pair_index"], c["triangle_index"])    # [B, K, N]
        F = torch.matmul(c["tap_weights"], gather_variables(fields, c["tap_index"]))           # [B, 2, N]
        return fields, block_vectors(F, c["block_index"], c["det"])

    def site_features(self, flat: torch.Tensor, blocks: torch.Tensor, sites: slice | None = None,
                      ordered: bool = True) -> torch.Tensor:
        """Features of the sites ``sites`` (a slice of site indices; all sites if None) from
        :meth:`lattice_terms`: ``[B, n, F]`` in the documented order, or with ``ordered=False`` channel-major
        ``[B, F, n]`` in the internal order (see :meth:`forward`)."""
        c = self._constants(flat.dtype, flat.device)
        sites = slice(None) if sites is None else sites
        X = [gather_variables(flat, idx[:, sites]) for idx in c["gather"]]
        out = compute_features(X, blocks[:, :, sites], self.layout, c, self.eps)
        return take_rows(out, c["order"], 1).transpose(1, 2) if ordered else out

    @property
    def feature_order(self) -> torch.Tensor:
        """``order[j]``: position in the internal order (``forward(..., ordered=False)``) of feature ``j``."""
        return torch.as_tensor(self.layout.plan["order"])

    def feature_positions(self, device) -> torch.Tensor:
        """The inverse of :attr:`feature_order` on ``device`` (cached): the documented index of each internal
        feature, what a network permutes its first layer by (:meth:`SiteMLP.fluctuation`)."""
        key = str(device)
        if key not in self._positions:
            self._positions[key] = torch.as_tensor(self.layout.plan["positions"], device=device)
        return self._positions[key]

    # ------------------------------------------------------------------------------------ reporting
    def config(self) -> dict:
        """JSON-serializable settings; :func:`build_descriptor` rebuilds the same features on any lattice size.

        ``check`` holds three numbers computed from the features of a fixed configuration: a rebuild compares
        them, so a model can never silently meet features that differ from those it was trained on.
        """
        return {"kind": self.kind, "cutoff": self.requested_cutoff, "local_cutoff": self.local_cutoff,
                "bond_shells": list(self.bond_shells), "eps": self.eps, "version": CONFIG_VERSION,
                "n_features": self.n_features, "check": self.check_values()}

    def check_values(self) -> list[float]:
        """Three weighted sums of the float64 features of a fixed smooth non-coplanar texture on the smallest
        lattice that holds the cutoff (independent of this descriptor's lattice size)."""
        if getattr(self, "_check", None) is None:
            L = max(self.lattice.min_size(self.requested_cutoff), 5)
            lat = Lattice(self.kind, L)
            d = self if lat == self.lattice else Descriptor(lat, self.requested_cutoff, local_cutoff=self.local_cutoff,
                                                              bond_shells=self.bond_shells, eps=self.eps)
            x, y = (torch.as_tensor(lat.xy[:, k], dtype=torch.float64) for k in (0, 1))
            th = 0.9 + 0.7 * torch.sin(2 * np.pi * (2 * x + y) / L) + 0.3 * torch.cos(2 * np.pi * y / L)
            ph = 2 * np.pi * (x - 2 * y) / L + 0.5 * torch.sin(2 * np.pi * x / L)
            spins = torch.stack([th.sin() * ph.cos(), th.sin() * ph.sin(), th.cos()], dim=-1)[None]
            with torch.no_grad():
                f = d(spins)[0]
            w = torch.cos(0.37 * torch.arange(f.shape[1], dtype=torch.float64) + 0.2)
            self._check = [float((f @ w).mean()), float((f * f).mean()), float(f[0] @ w)]
        return list(self._check)

    def summary(self) -> dict:
        """Sizes of the construction: variables, copies per irrep, features, receptive radius."""
        v = self.variables
        per_origin = {o: v.origin.count(o) for o in ("centre", "env", "chir")}
        copies: dict = {}
        for nd in self.layout.nodes:
            copies[f"{nd.cls}:{nd.label}"] = len(nd.names)
        return {"kind": self.kind, "group": self.group.name, "cutoff": self.cutoff,
                "local_cutoff": self.local_cutoff, "variables": per_origin,
                "reference_blocks": {"c0": list(v.block_geometry[0]), "radius": v.block_geometry[1]},
                "orbit_types": len(self.layout.types),
                "copies": copies, "reference_triples": len(self.layout.triples), "n_features": self.n_features}

    def extra_repr(self) -> str:
        return (f"{self.kind}, cutoff={self.cutoff:.4g} (requested {self.requested_cutoff:g}), "
                f"local_cutoff={self.local_cutoff:g}, n_features={self.n_features}")


def build_descriptor(config: dict, lattice: Lattice) -> Descriptor:
    """Rebuild a descriptor from :meth:`Descriptor.config` on ``lattice`` (same kind, any size holding the cutoff)."""
    if not isinstance(config, dict):
        raise NearsightError(f"descriptor config must be a dict from Descriptor.config(), got {type(config).__name__}")
    cfg = dict(config)
    kind = cfg.pop("kind", None)
    if kind is None:
        raise NearsightError("descriptor config has no 'kind'; pass the dict returned by Descriptor.config()")
    if not isinstance(lattice, Lattice):
        raise NearsightError(f"lattice must be a nearsight Lattice, got {type(lattice).__name__}")
    if lattice.kind != kind:
        raise NearsightError(f"this descriptor was built for the {kind} lattice and cannot be used on a "
                             f"{lattice.kind} lattice; use a {kind} lattice (or a descriptor/model for "
                             f"{lattice.kind!r})")
    version = cfg.pop("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise NearsightError(f"descriptor config version {version} is not supported by this nearsight "
                             f"(version {CONFIG_VERSION}); retrain the model with this version")
    expected = cfg.pop("n_features", None)
    check = cfg.pop("check", None)
    cutoff = cfg.pop("cutoff", None)
    if cutoff is not None:
        try:
            lattice.check_cutoff(float(cutoff))
        except NearsightError as exc:
            raise NearsightError(f"{exc} (the descriptor's cutoff is fixed by its config)") from None
    desc = Descriptor(lattice, cutoff, **cfg)
    if expected is not None and int(expected) != desc.n_features:
        raise NearsightError(f"descriptor config expects {expected} features but this nearsight builds "
                             f"{desc.n_features}; the model is incompatible with this version — retrain it")
    if check is not None:
        now = desc.check_values()
        if len(check) != len(now) or not np.allclose(now, check, rtol=1e-6, atol=1e-9):
            raise NearsightError(f"descriptor features differ from those recorded in the config (check {check} vs "
                                 f"{now}); the model was trained with another descriptor version — retrain it")
    return desc


def _number(name: str, value, *, lower: float | None = None, upper: float | None = None, advice: str = "") -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise NearsightError(f"{name} must be a number, got {value!r}; {advice}") from None
    if not math.isfinite(x) or (lower is not None and x < lower) or (upper is not None and x > upper):
        raise NearsightError(f"{name} = {value!r} is out of range; {advice}")
    return x
