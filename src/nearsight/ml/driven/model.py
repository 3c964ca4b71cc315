"""The generalized-potential model: a learned *driven* (nonconservative) exchange field on a strip between leads.

Under a bias the steady-state exchange field is not a gradient (:class:`~nearsight.electrons.negf.NEGFProvider`,
``conservative = False``). Its transverse part is written as a conservative plus a nonconservative part,

    h_perp_i = P_i (-dV/dS_i)  +  S_i x (-dW/dS_i),        P_i = 1 - S_i S_i^T,
    V = sum_i v_i,   W = sum_i w_i,   v_i = v(z_i),  w_i = w(z_i)   (two per-site MLPs, as in SiteEnergyModel)

with ``z_i`` the symmetry-invariant descriptor of site ``i`` plus a few *driven-geometry inputs* (below). Both parts
are transverse by construction (``S_i . h_i = 0`` exactly; the longitudinal part of a label is never learned and
does not move the spin). In the LLG equation ``dS/dt = -S x h`` the two parts act differently:

* ``V`` generates a Hamiltonian flow, ``dS_i/dt = S_i x dV/dS_i``: it conserves ``V`` (field-like torque);
* ``W`` generates a gradient flow, ``dS_i/dt = -P_i dW/dS_i``: it lowers ``W`` at the rate ``sum_i |P_i dW/dS_i|^2``
  (damping-like / anti-damping torque; the sign of ``w`` decides which).

**Uniqueness.** If two pairs give the same field, the differences satisfy ``P_i grad_i dV = -S_i x grad_i dW`` for
every ``i``: with all other spins fixed, ``dV + i dW`` is (anti)holomorphic in ``S_i`` on the Riemann sphere, hence
constant, so ``V`` and ``W`` are unique up to additive constants — for any smooth ``V``, ``W``, including the
degenerate case where one of them is zero. Only the constants are undetermined: the energy this model returns is
``V`` with an arbitrary offset (``nearsight.training.driven.fit_generalized`` trains on fields only; the offset is 0
at initialization). Not every transverse field is of this form, and on finite data the split is only as sharp as the data constrain it.

**Why a spin-transfer part (``spin_transfer=True``).** With ``V`` and ``W`` invariant under global spin rotations
and under translations, neither part can move a rigid 180° domain wall: the LLG velocity of each part (precession
and damping alike) projected on a symmetry mode ``m`` (the wall's translation ``dS/dX`` or its rotation about the
easy axis, which LLG couples gyrotropically) is a combination of ``dV/dm`` and ``dW/dm``, and those vanish. A bias
does move walls — the spin-transfer torque of the current, ``~ (j.grad) S`` (adiabatic) and ``S x (j.grad) S``
(non-adiabatic), whose linearization is antisymmetric (limitation 1 below). So the model can add the lowest-order
equivariant, non-potential field on the lattice,

    h_transfer_i = a_i P_i D_i + b_i S_i x D_i,     D_i = S_{i+x} - S_{i-x},

with ``a_i = V * MLP_a(z_i)`` and ``b_i = V * MLP_b(z_i)`` (two more site networks, mirror-even before the bias
factor so the whole field keeps the two-terminal mirror symmetry). It is returned inside the nonconservative part
(``h_nonconservative = S x (-dW/dS) + h_transfer``). In LLG it gives ``dS_i/dt = b_i P_i D_i - a_i S_i x D_i + ...``:
``b`` is the adiabatic and ``a`` the non-adiabatic coefficient of a Zhang–Li torque with local, learned strengths.

More stencils can be added (``spin_transfer=("dx", "sx", ...)``, :data:`TRANSFER_STENCILS`), each a term
``a^k_i P_i D^k_i + b^k_i S_i x D^k_i`` with its own two site networks, ``D^k_i = sum_d w_d S_{i+d}`` over a few
neighbour offsets ``d``. A stencil odd under the mirror ``x -> -x`` (``dx``; ``dxy``; ``d2x``) has mirror-even
coefficients before the bias factor, as above; an even one (``sx``: ``S_{i+x} + S_{i-x}``; ``sxy``; ``s2x``; ``sy``)
has mirror-odd coefficients (as ``w``). Both are needed for an *upwind* torque — electrons arriving from the upstream
neighbour rotate towards the local spin:
``|V| P_i S_{i - sgn(V) x} = |V|/2 P_i (S_{i+x} + S_{i-x}) - V/2 P_i (S_{i+x} - S_{i-x})``.

**Inputs beyond the descriptor** (concatenated to the descriptor features of strip site ``(x, y)``):

* ``bias`` V (one scalar per configuration) so one model covers several biases;
* lead proximity ``exp(-x/lam)`` and ``exp(-(Lx-1-x)/lam)`` for each ``lam`` in ``lead_scales`` (0 on a periodic
  lattice: leads at infinity). They depend on ``x`` only, never on ``y``: the model stays translation invariant
  along ``y`` and reflection invariant about ``y``; along ``x`` the strip is not translation invariant, and these
  inputs tell the network so, with a decay that makes the model transferable to longer strips;
* ``column_range = K`` (default 0: off): ``4K + 1`` column inputs, the means over ``y`` of the bond alignments
  ``S_j . S_{j+x}`` and ``S_j . S_{j+y}`` in the columns up to ``K`` away along ``x`` (zero beyond a lead). In a
  double-exchange metal the alignment of a bond sets its conductance, and the current through a noisy texture —
  hence the spin-transfer torque on a site — depends on the texture further along the strip than the descriptor
  cutoff (measured on the domain-wall strip: the label floor of noisy walls at bias 1-1.6 is 5-6% at radius 2-4
  for a slab of half-width R along x; ``examples/domain_wall.py floor`` now uses the library's disk of radius R).
  Column means keep every symmetry (``y`` translation and mirror, O(3); the list reverses under the ``x`` mirror) and make the site terms see ``K`` columns: :attr:`cutoff` is
  ``max(descriptor cutoff, K)``;
* ``polar`` (default on): two current-direction features, ``S_i . (S_{i+x} - S_{i-x})`` and
  ``S_i . (S_{i+x+y} + S_{i+x-y} - S_{i-x+y} - S_{i-x-y})``. The descriptor is invariant under the site point
  group, including the mirror ``x -> -x``, so without them a site far from the leads could not tell the
  direction of the current, while the bias breaks exactly that mirror. They are O(3) invariant, ``y``-translation
  and ``y``-mirror invariant, and odd under ``x -> -x``.

With ``mirror_symmetric=True`` (default) every site network is averaged over the inputs and their image under the
mirror ``x -> Lx-1-x`` combined with ``V -> -V`` (lead features swapped, polar features negated). That is an exact
symmetry of the two-terminal s-d strip with identical leads (``mu_L,R = mu +- V/2``; no spin-orbit coupling, so the
spatial mirror does not act on spins), and the model then has it exactly.

**Open boundary.** The :class:`~nearsight.descriptors.Descriptor` needs a periodic :class:`Lattice`. A
:class:`~nearsight.lattice.Strip` ``(Lx, Ly)`` is embedded in the periodic square lattice
``(Lx + 2 pad) x Ly``, ``pad = ceil(receptive radius)``, whose padding columns hold **zero vectors**: the NEGF leads
carry no local spins, and a zero spin contributes nothing to any bond or chirality, so a site near a lead sees
"no spin" there (not a copy of the edge, not a fixed direction — a fixed direction would break spin-rotation
invariance). ``pad`` is at least the receptive radius, so no site sees across the periodic seam, and only strip sites
contribute to ``V`` and ``W``. A periodic :class:`~nearsight.lattice.Lattice` (square) is used as it is (bulk:
leads at infinity, lead features 0). NOTE: unlike ``NEGFProvider``, a ``Lattice`` here means *periodic*.

**Limitations.** (1) The linearization of any ``P grad V`` or ``S x grad W`` about a uniform state is a symmetric
(Hessian) operator, so torques whose linear part is antisymmetric — the Zhang–Li adiabatic and non-adiabatic
spin-transfer torques ``~ (j.grad) S`` and ``S x (j.grad) S`` of a smooth texture — are *not* of this form for any
local or nonlocal ``V``, ``W``; without ``spin_transfer`` the model can only approximate them through nonlinear
terms (and cannot drive a rigid wall, above). Measure the held-out
error on NEGF labels before trusting it. (2) The descriptor is O(3) invariant, ``S -> -S`` included, so the
conservative part is odd and the nonconservative part even under global spin inversion (the spin-transfer part
has one term of each parity); a biased steady state is not time-reversal symmetric and its field may contain other
parts of the other parity (SO(3) pseudoscalar, chirality-odd terms), which are not represented. (3) Square lattice
only (the NEGF strip is square); the strip width ``Ly`` must hold the descriptor cutoff (narrow strips, where the periodic images along ``y`` are physical, are not supported).
(4) Biases outside the trained range are extrapolation.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ...descriptors import Descriptor, build_descriptor
from ...errors import NearsightError
from ...fields import transverse
from ...lattice import Lattice, Strip
from ..network import SiteMLP, dtype_name

N_POLAR = 2

#: Spin-transfer stencils: name -> (neighbour offsets (dx, dy, weight), sign of the coefficient under the mirror).
TRANSFER_STENCILS = {
    "dx": (((1, 0, 1.0), (-1, 0, -1.0)), 1.0),
    "sx": (((1, 0, 1.0), (-1, 0, 1.0)), -1.0),
    "dxy": (((1, 1, 1.0), (1, -1, 1.0), (-1, 1, -1.0), (-1, -1, -1.0)), 1.0),
    "sxy": (((1, 1, 1.0), (1, -1, 1.0), (-1, 1, 1.0), (-1, -1, 1.0)), -1.0),
    "d2x": (((2, 0, 1.0), (-2, 0, -1.0)), 1.0),
    "s2x": (((2, 0, 1.0), (-2, 0, 1.0)), -1.0),
    "sy": (((0, 1, 1.0), (0, -1, 1.0)), -1.0),
}


def head_tags_of(stencils) -> tuple[str, ...]:
    """File tags of the site networks: ``v``, ``w``, then ``a``, ``b`` for ``dx`` (as in files written before there
    were other stencils) and ``a_<name>``, ``b_<name>`` for the others."""
    return ("v", "w") + tuple(t for n in stencils for t in (("a", "b") if n == "dx" else (f"a_{n}", f"b_{n}")))


def parse_stencils(spin_transfer) -> tuple[str, ...]:
    """``False``/``None`` -> (); ``True`` -> ("dx",); a name or a list of names -> that tuple (checked)."""
    if spin_transfer is None or spin_transfer is False or (isinstance(spin_transfer, (tuple, list))
                                                           and len(spin_transfer) == 0):
        return ()
    if spin_transfer is True:
        return ("dx",)
    names = (spin_transfer,) if isinstance(spin_transfer, str) else tuple(spin_transfer)
    bad = [n for n in names if n not in TRANSFER_STENCILS]
    if bad or len(set(names)) != len(names):
        raise NearsightError(f"spin_transfer must be true/false or a list of distinct stencil names from "
                             f"{sorted(TRANSFER_STENCILS)}, got {spin_transfer!r}")
    return names


def _geometry_info(geometry) -> dict:
    if isinstance(geometry, Strip):
        return {"type": "strip", "Lx": geometry.Lx, "Ly": geometry.Ly}
    if isinstance(geometry, Lattice):
        if geometry.kind != "square":
            raise NearsightError(f"the generalized-potential model supports the square lattice only (the NEGF strip "
                                 f"is square), got {geometry.kind!r}")
        return {"type": "periodic", "Lx": geometry.L1, "Ly": geometry.L2}
    raise NearsightError(f"geometry must be a Strip(Lx, Ly) (open along x, periodic along y) or a periodic square "
                         f"Lattice, got {type(geometry).__name__}")


def geometry_from_info(info: dict):
    try:
        kind, Lx, Ly = info["type"], int(info["Lx"]), int(info["Ly"])
    except (KeyError, TypeError, ValueError):
        raise NearsightError(f"card geometry must be {{type: strip|periodic, Lx, Ly}}, got {info!r}") from None
    if kind == "strip":
        return Strip(Lx, Ly)
    if kind == "periodic":
        return Lattice("square", Lx, Ly)
    raise NearsightError(f"card geometry type must be 'strip' or 'periodic', got {kind!r}")


class GeneralizedPotentialModel(nn.Module):
    """``h_perp = P(-dV/dS) + S x (-dW/dS)`` with ``V``, ``W`` sums of per-site MLPs (see the module docstring).

    Parameters
    ----------
    geometry : Strip or Lattice
        An open-x / periodic-y :class:`Strip`, or a periodic square :class:`Lattice` (leads at infinity).
    descriptor : dict, optional
        Descriptor options (``{"cutoff": 2.0, ...}``) or a :meth:`Descriptor.config` dict. Default: the
        descriptor defaults (cutoff 6).
    hidden, activation : sizes and activation of both site MLPs.
    lead_scales : decay lengths ``lam`` of the lead-proximity inputs ``exp(-d/lam)`` (may be empty).
    polar : add the two current-direction inputs (odd under ``x -> -x``).
    mirror_symmetric : average each site network over the mirror ``x -> Lx-1-x`` with ``V -> -V``.
    spin_transfer : ``False``; ``True`` (the ``dx`` stencil); or a list of stencil names (:data:`TRANSFER_STENCILS`).
    column_range : columns seen on each side through the column inputs (0: none).
    """

    def __init__(self, geometry, descriptor: dict | None = None, *, hidden=(32, 32), activation: str = "silu",
                 lead_scales=(1.0, 3.0), polar: bool = True, mirror_symmetric: bool = True,
                 spin_transfer=False, column_range: int = 0, heads: tuple[SiteMLP, ...] | None = None,
                 card: dict | None = None):
        super().__init__()
        self.geometry_info = _geometry_info(geometry)
        self.geometry = geometry
        try:
            self.lead_scales = tuple(float(s) for s in lead_scales)
        except (TypeError, ValueError):
            raise NearsightError(f"lead_scales must be a list of positive lengths, got {lead_scales!r}") from None
        if any(not math.isfinite(s) or s <= 0 for s in self.lead_scales):
            raise NearsightError(f"lead_scales must be positive finite lengths, got {list(lead_scales)!r}")
        self.polar, self.mirror_symmetric = bool(polar), bool(mirror_symmetric)
        self.transfer_stencils = parse_stencils(spin_transfer)
        self.spin_transfer = bool(self.transfer_stencils)
        self.descriptor, self.pad, self.padded = self._build_descriptor(dict(descriptor or {}))
        if not (isinstance(column_range, (int, np.integer)) and 0 <= int(column_range) < 64):
            raise NearsightError(f"column_range must be an integer from 0 to 63 (columns seen on each side), got "
                                 f"{column_range!r}")
        self.column_range = int(column_range)
        self.n_extra = (1 + 2 * len(self.lead_scales) + (N_POLAR if self.polar else 0)
                        + (4 * self.column_range + 1 if self.column_range else 0))
        n_in = int(self.descriptor.n_features) + self.n_extra
        n_heads = 2 + 2 * len(self.transfer_stencils)
        if heads is None:
            heads = tuple(SiteMLP(n_in, hidden, activation) for _ in range(n_heads))
        if len(heads) != n_heads:
            raise NearsightError(f"spin_transfer={list(self.transfer_stencils)} needs {n_heads} site networks, got "
                                 f"{len(heads)}; the model file does not match its settings")
        if any(h.n_features != n_in for h in heads):
            raise NearsightError(f"the site networks expect {heads[0].n_features} inputs but the descriptor and the "
                                 f"driven inputs give {n_in}; the model file does not match its settings")
        self.v_head, self.w_head = heads[:2]
        self.transfer_heads = nn.ModuleList(heads[2:])        # (a, b) per stencil, in stencil order
        self.card = dict(card or {})
        self._build_tables()

    # ------------------------------------------------------------------------------------------ construction
    def _build_descriptor(self, opts: dict):
        g = self.geometry_info
        strip = g["type"] == "strip"

        def make(pad):
            lat = Lattice("square", g["Lx"] + 2 * pad, g["Ly"])
            if "kind" in opts:
                return build_descriptor(opts, lat)
            return Descriptor(lat, **opts)

        requested = float(opts.get("cutoff", 6.0) or 6.0)
        reach = max([abs(dx) for n in self.transfer_stencils for dx, _, _ in TRANSFER_STENCILS[n][0]] + [1])
        pad = max(math.ceil(requested - 1e-9), reach) if strip else 0
        try:
            desc = make(pad)
            if strip and desc.cutoff > pad + 1e-9:       # receptive radius beyond the request: pad further
                pad = max(math.ceil(desc.cutoff - 1e-9), reach)
                desc = make(pad)
        except NearsightError as exc:
            raise NearsightError(f"{exc} — for the {g['type']} geometry {g['Lx']}x{g['Ly']} "
                                 f"(padded along x to {g['Lx'] + 2 * pad}): the width Ly must hold the descriptor "
                                 f"cutoff; use a wider strip or a smaller cutoff") from None
        return desc, pad, desc.lattice

    def _build_tables(self):
        g, lat = self.geometry_info, self.padded
        Lx, Ly = g["Lx"], g["Ly"]
        i = np.arange(Lx * Ly)
        x, y = i % Lx, i // Lx
        self._site = torch.as_tensor(lat.index(x + self.pad, y))            # strip site -> padded site
        # the spin-transfer stencils, and dx, dxy for the two polar inputs S_i . D_i
        names = set(self.transfer_stencils) | ({"dx", "dxy"} if self.polar else set())
        self._stencil = {name: [(torch.as_tensor(lat.index(x + self.pad + dx, y + dy)), w)
                                for dx, dy, w in TRANSFER_STENCILS[name][0]] for name in names}
        if g["type"] == "strip" and self.lead_scales:
            lead = [np.exp(-x / s) for s in self.lead_scales] + [np.exp(-(Lx - 1 - x) / s) for s in self.lead_scales]
            self._lead = torch.as_tensor(np.stack(lead, -1), dtype=torch.float64)      # [N, 2k]
        else:
            self._lead = torch.zeros(Lx * Ly, 2 * len(self.lead_scales), dtype=torch.float64)

    def on_geometry(self, geometry) -> "GeneralizedPotentialModel":
        """The same networks on another strip or periodic square lattice (descriptor rebuilt, weights shared)."""
        if _geometry_info(geometry) == self.geometry_info:
            return self
        m = GeneralizedPotentialModel(geometry, self.descriptor.config(), lead_scales=self.lead_scales,
                                      polar=self.polar, mirror_symmetric=self.mirror_symmetric,
                                      column_range=self.column_range,
                                      spin_transfer=self.transfer_stencils, heads=self.heads, card=self.card)
        return m.to(dtype=self.dtype)

    @property
    def heads(self) -> tuple[SiteMLP, ...]:
        """The site networks: ``v``, ``w`` and, with ``spin_transfer``, the coefficients ``a``, ``b`` per stencil."""
        return (self.v_head, self.w_head) + tuple(self.transfer_heads)

    @property
    def head_tags(self) -> tuple[str, ...]:
        """File tags of :attr:`heads` (:func:`head_tags_of`)."""
        return head_tags_of(self.transfer_stencils)

    @property
    def dtype(self) -> torch.dtype:
        return self.v_head.e_ref.dtype

    @property
    def N(self) -> int:
        return self.geometry_info["Lx"] * self.geometry_info["Ly"]

    @property
    def cutoff(self) -> float:
        """Receptive radius of a site term ``v_i``, ``w_i`` (a field sees twice this): the descriptor's cutoff, or
        ``column_range`` along x if larger."""
        return max(float(self.descriptor.cutoff), float(self.column_range))

    def settings(self) -> dict:
        return {"hidden": list(self.v_head.hidden), "activation": self.v_head.activation,
                "lead_scales": list(self.lead_scales), "polar": self.polar, "column_range": self.column_range,
                "mirror_symmetric": self.mirror_symmetric, "spin_transfer": self.spin_transfer,
                "transfer_stencils": list(self.transfer_stencils),
                "n_features": self.v_head.n_features,
                "dtype": dtype_name(self.dtype)}

    # ----------------------------------------------------------------------------------------------- inputs
    def _check(self, spins, bias):
        if not isinstance(spins, torch.Tensor) or not spins.is_floating_point():
            raise NearsightError("spins must be a floating-point torch tensor of shape [B, N, 3] or [N, 3]")
        single = spins.dim() == 2
        s = spins.unsqueeze(0) if single else spins
        if s.dim() != 3 or s.shape[1] != self.N or s.shape[2] != 3:
            raise NearsightError(f"spins have shape {tuple(spins.shape)}; expected [B, {self.N}, 3] (or "
                                 f"[{self.N}, 3]) for the {self.geometry_info['type']} geometry "
                                 f"{self.geometry_info['Lx']}x{self.geometry_info['Ly']}")
        if bias is None:
            raise NearsightError("bias is required: the driven fields depend on the bias V (mu_L,R = mu +- V/2); "
                                 "pass a number or one value per configuration (0 for equilibrium)")
        b = torch.as_tensor(bias, dtype=s.dtype, device=s.device)
        if b.dim() == 0:
            b = b.expand(s.shape[0])
        if b.dim() != 1 or b.shape[0] != s.shape[0]:
            raise NearsightError(f"bias must be a number or have one value per configuration ({s.shape[0]}), "
                                 f"got shape {tuple(b.shape)}")
        if not bool(torch.isfinite(b).all()):
            raise NearsightError("bias must be finite")
        return s, b, single

    def _padded(self, spins: torch.Tensor) -> torch.Tensor:
        return spins.new_zeros(spins.shape[0], self.padded.N, 3).index_copy(1, self._site.to(spins.device), spins)

    def _stencil_sum(self, padded: torch.Tensor, name: str) -> torch.Tensor:
        """``D_i = sum_d w_d S_{i+d}`` of one stencil ``[B, N, 3]`` (a missing neighbour, beyond a lead, is zero)."""
        out = None
        for idx, w in self._stencil[name]:
            term = w * padded.index_select(1, idx.to(padded.device))
            out = term if out is None else out + term
        return out

    def inputs(self, spins: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Site inputs ``z`` and their mirror images ``z'`` (``[B, N, F + extra]``) for a checked batch."""
        B, N = spins.shape[0], self.N
        padded = self._padded(spins)
        desc = self.descriptor(padded).index_select(1, self._site.to(spins.device))
        lead = self._lead.to(dtype=spins.dtype, device=spins.device).expand(B, N, -1)
        k = len(self.lead_scales)
        v = bias[:, None, None].expand(B, N, 1)
        parts, mparts = [desc, v, lead], [desc, -v, torch.cat([lead[..., k:], lead[..., :k]], -1)]
        if self.column_range:
            col, mcol = self._column_inputs(spins)
            parts.append(col)
            mparts.append(mcol)
        if self.polar:
            pol = torch.stack([(spins * self._stencil_sum(padded, name)).sum(-1) for name in ("dx", "dxy")], -1)
            parts.append(pol)
            mparts.append(-pol)
        return torch.cat(parts, -1), torch.cat(mparts, -1)

    def _column_inputs(self, spins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Column inputs ``[B, N, 4K + 1]`` (``K = column_range``) and their mirror images: the column means (over
        ``y``) of the bond alignments ``S_j . S_{j+x}`` of the x-bonds ``(x+k, x+k+1)``, ``k = -K..K-1``, and
        ``S_j . S_{j+y}`` of the columns ``x+k``, ``k = -K..K``, seen from a site in column ``x``; zero beyond a
        lead. They tell a site how well aligned — how conducting, in a double-exchange metal — the strip is up to
        ``K`` columns away: the current through a noisy texture is set by more than the descriptor's radius.
        The mirror ``x -> -x`` reverses each list (bond ``k -> -k-1``, column ``k -> -k``)."""
        g, K = self.geometry_info, self.column_range
        Lx, Ly, B = g["Lx"], g["Ly"], spins.shape[0]
        s = spins.reshape(B, Ly, Lx, 3)
        by = (s * s.roll(-1, 1)).sum(-1).mean(1)                                           # [B, Lx]
        xs = torch.arange(Lx, device=spins.device)
        if g["type"] == "periodic":
            bx = (s * s.roll(-1, 2)).sum(-1).mean(1)
            ib = (xs[:, None] + torch.arange(-K, K, device=spins.device)) % Lx
            iy = (xs[:, None] + torch.arange(-K, K + 1, device=spins.device)) % Lx
        else:                                  # zero-padded: bond x (x, x+1) at x + K, column x at x + K
            bx = torch.nn.functional.pad((s[:, :, :-1] * s[:, :, 1:]).sum(-1).mean(1), (K, K))
            by = torch.nn.functional.pad(by, (K, K))
            ib = xs[:, None] + torch.arange(0, 2 * K, device=spins.device)
            iy = xs[:, None] + torch.arange(0, 2 * K + 1, device=spins.device)
        cb, cy = bx[:, ib], by[:, iy]                                                      # [B, Lx, 2K], [B, Lx, 2K+1]
        col = torch.cat([cb, cy], -1)
        mcol = torch.cat([cb.flip(-1), cy.flip(-1)], -1)
        expand = lambda t: t[:, None].expand(B, Ly, Lx, t.shape[-1]).reshape(B, Lx * Ly, t.shape[-1])  # noqa: E731
        return expand(col), expand(mcol)

    def _heads(self, z, zm, b, head: SiteMLP, odd_bias: bool, mirror_sign: float | None = None) -> torch.Tensor:
        """One site network on inputs ``z`` (averaged with the mirror images ``zm``); ``w`` carries the bias.

        ``mirror_sign`` (default ``-1`` with ``odd_bias``, else ``+1``) is how the network's output enters the
        mirror average; the spin-transfer coefficients carry the bias but are mirror-even before it (``+1``)."""
        sign = (-1.0 if odd_bias else 1.0) if mirror_sign is None else mirror_sign
        if self.mirror_symmetric:                # one network call on both images (fewer, larger operations)
            both = head.fluctuation(torch.cat([z, zm]))
            out = 0.5 * (both[:z.shape[0]] + sign * both[z.shape[0]:])
        else:
            out = head.fluctuation(z)
        return b[:, None] * out if odd_bias else out

    def _transfer(self, s, z, zm, b) -> torch.Tensor:
        """Spin-transfer part ``sum_k a^k_i P_i D^k_i + b^k_i S_i x D^k_i`` over the stencils, ``[B, N, 3]``."""
        padded, out = self._padded(s), 0.0
        for k, name in enumerate(self.transfer_stencils):
            D = self._stencil_sum(padded, name)
            sign = TRANSFER_STENCILS[name][1]
            a = self._heads(z, zm, b, self.transfer_heads[2 * k], True, mirror_sign=sign)
            c = self._heads(z, zm, b, self.transfer_heads[2 * k + 1], True, mirror_sign=sign)
            out = out + a[..., None] * transverse(D, s) + c[..., None] * torch.cross(s, D, dim=-1)
        return out

    def site_terms(self, spins: torch.Tensor, bias) -> tuple[torch.Tensor, torch.Tensor]:
        """``(v, w)``, each ``[B, N]``: the site terms of ``V`` and ``W``; ``w_i = bias * MLP_w(z_i)``."""
        s, b, _ = self._check(spins, bias)
        s, b = s.to(self.dtype), b.to(self.dtype)
        z, zm = self.inputs(s, b)
        return self._heads(z, zm, b, self.v_head, False), self._heads(z, zm, b, self.w_head, True)

    def potentials(self, spins: torch.Tensor, bias) -> tuple[torch.Tensor, torch.Tensor]:
        """``(V, W)``, each ``[B]`` (summed in float64; ``N e_ref`` added), or scalars for unbatched spins."""
        single = isinstance(spins, torch.Tensor) and spins.dim() == 2
        v, w = self.site_terms(spins, bias)
        n = v.shape[-1]
        V = v.to(torch.float64).sum(-1) + n * self.v_head.e_ref.to(torch.float64)
        W = w.to(torch.float64).sum(-1) + n * self.w_head.e_ref.to(torch.float64)
        return (V[0], W[0]) if single else (V, W)

    forward = potentials

    # ----------------------------------------------------------------------------------------------- fields
    def evaluate(self, spins: torch.Tensor, bias, create_graph: bool = False) -> dict:
        """``V``, ``W`` ``[B]`` and the two field parts ``h_conservative``, ``h_nonconservative`` ``[B, N, 3]``
        (with ``spin_transfer``, ``h_nonconservative`` includes ``h_transfer``, also returned on its own).

        Both parts use the spins as given (unit vectors expected). ``create_graph=True`` keeps the graph (training).
        """
        s0, b, single = self._check(spins, bias)
        B = s0.shape[0]
        with torch.enable_grad():
            s = s0.to(self.dtype)
            s = s if s.requires_grad else s.detach().requires_grad_(True)
            b = b.to(self.dtype)
            # one backward pass for both gradients: V on a first copy of the batch, W on a second
            s2 = torch.cat([s, s])
            z, zm = self.inputs(s2, torch.cat([b, b]))
            v = self._heads(z[:B], zm[:B], b, self.v_head, False)
            w = self._heads(z[B:], zm[B:], b, self.w_head, True)
            n = v.shape[-1]
            V = v.to(torch.float64).sum(-1) + n * self.v_head.e_ref.to(torch.float64)
            W = w.to(torch.float64).sum(-1) + n * self.w_head.e_ref.to(torch.float64)
            (g,) = torch.autograd.grad(V.sum() + W.sum(), s2, create_graph=create_graph)
            hc = transverse(-g[:B], s)
            hn = torch.cross(s, -g[B:], dim=-1)
            out = {"V": V, "W": W, "h_conservative": hc}
            if self.spin_transfer:
                out["h_transfer"] = self._transfer(s, z[:B], zm[:B], b)
                hn = hn + out["h_transfer"]
            out["h_nonconservative"] = hn
        if not create_graph:
            out = {k: t.detach() for k, t in out.items()}
        if single:
            out = {k: t[0] for k, t in out.items()}
        return out

    def parts(self, spins: torch.Tensor, bias, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(P(-dV/dS), S x (-dW/dS))``, each ``[B, N, 3]`` (or ``[N, 3]``)."""
        r = self.evaluate(spins, bias, create_graph)
        return r["h_conservative"], r["h_nonconservative"]

    def fields(self, spins: torch.Tensor, bias, create_graph: bool = False) -> torch.Tensor:
        """The transverse field ``h_perp = P(-dV/dS) + S x (-dW/dS)`` ``[B, N, 3]`` (or ``[N, 3]``)."""
        hc, hn = self.parts(spins, bias, create_graph)
        return hc + hn

    @torch.no_grad()
    def set_normalization(self, spins: torch.Tensor, bias, scale: float) -> None:
        """Standardize the site inputs on ``spins``/``bias`` (both mirror images) and set both heads' scale."""
        s, b, _ = self._check(spins, bias)
        z, zm = self.inputs(s.to(self.dtype), b.to(self.dtype))
        zz = torch.cat([z, zm] if self.mirror_symmetric else [z]).reshape(-1, z.shape[-1])
        rms_bias = float(b.pow(2).mean().sqrt())
        self.v_head.set_normalization(zz.mean(0), zz.std(0), e_ref=0.0, scale=scale)
        for head in self.heads[1:]:
            head.set_normalization(zz.mean(0), zz.std(0), e_ref=0.0, scale=scale / rms_bias if rms_bias > 0 else scale)

    def extra_repr(self) -> str:
        g = self.geometry_info
        return (f"{g['type']} {g['Lx']}x{g['Ly']} (pad {self.pad}), cutoff={self.cutoff:g}, "
                f"lead_scales={list(self.lead_scales)}, polar={self.polar}, mirror_symmetric={self.mirror_symmetric}, "
                f"spin_transfer={list(self.transfer_stencils)}")
