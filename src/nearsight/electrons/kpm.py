"""Kernel polynomial method (KPM): linear-scaling energies and exchange fields of the s-d model.

This module is the provider and the method (moments, adjoint recursion, chemical potential); the Chebyshev pieces it
uses (spectral bounds, kernels, coefficients, the matrix-free operator) are in :mod:`.chebyshev`, the probing vectors
in :mod:`.probing`.

The electronic energy is a trace of a function of the one-electron Hamiltonian,
``Omega = Tr g(H)`` with ``g(e) = -kT ln(1 + exp(-(e - mu)/kT))`` (``min(e - mu, 0)`` at ``kT = 0``), see
:mod:`nearsight.ensemble`. With ``H`` mapped into ``[-1, 1]`` by ``x = (H - b)/a``, ``g`` is expanded in
Chebyshev polynomials (damped by a kernel where needed, below) and the trace is estimated with probing vectors:

    Omega ~ w sum_r sum_{n<M} mu_n <r|T_n(x)|r>,     mu_n = g_n^kernel c_n[g].

**Fields** are the exact gradient of this estimate (Barros & Kato, PRB 88, 235101 (2013); Wang, Chern, Batista &
Barros, JCP 148, 094107 (2018): gradient-based probing). With ``alpha_m = T_m(x) r`` and the product rules
``T_2m = 2 T_m^2 - 1``, ``T_2m+1 = 2 T_m+1 T_m - T_1`` the estimate is a quadratic form in ``alpha_0..alpha_K``
(``K = M/2``); the adjoint (reverse) recursion ``lambda_k = g_k + 2 x lambda_k+1 - lambda_k+2`` with sources
``g_k = p_k alpha_k + (q_k alpha_k+1 + q_k-1 alpha_k-1)/2`` gives ``dOmega = 2 Re sum_k w_k lambda_k^+ dx
alpha_k-1`` (``w_1 = 1``, else 2). The ``alpha`` are regenerated backwards (``alpha_k-1 = 2 x alpha_k -
alpha_k+1``; the Chebyshev recursion is neutrally stable both ways), so memory is a few vectors, not ``M``, and
the cost is ``1.5 M`` products ``H v`` on ``R`` vectors. The on-site ``2x2`` block of the effective density
matrix gives ``h_i = -dE/dS_i = J <c+_i sigma c_i> + B``; fields are therefore exactly ``-dE_kpm/dS`` for the same
probing vectors, so KPM-driven dynamics conserves the KPM energy.

**Spectral bounds** default to Weyl's inequality, ``spec H in [min eps_T - |J|, max eps_T + |J|]`` with
``eps_T`` the exact (Fourier) spectrum of the hopping: rigorous for every spin configuration, reached by the
ferromagnet, and independent of the spins (so the energy is one smooth function of ``S``). A 1% margin is added.
User bounds are checked on every call: ``||T_K(x) r|| <= ||r||`` holds for every probe when the spectrum lies in
``[-1, 1]``; growth beyond that raises. (Violations below ``~(1/K)^2`` of the half-width are under the resolution
of the expansion and cannot be told apart from it.)

**Canonical mode**: ``mu`` solves ``N_kpm(mu) = N_e`` with ``N_kpm`` the same probed, kernel-damped expansion of
the Fermi function (the KPM density of states, integrated); then ``F = Omega(mu) + mu N_e`` and, since
``dF/dmu = 0`` there, the fields are the gradient at fixed ``mu``.

**Kernel and resolution.** The Jackson kernel (Lorentz optional) broadens levels by ``sigma ~ pi a / M`` and
converges algebraically (energy error ``~ sigma^2 DOS(mu)``): it is what a ``kT = 0`` step needs, which is resolved
only to ``sigma`` (on disordered spins an effective temperature ``~ sigma``; across a level gap ``Delta`` at
``mu`` on a finite lattice it needs ``M >> pi a / Delta``, e.g. ``M ~ 4000`` for ``Delta = 0.03`` at
``a = 10``). At ``kT > 0`` the Fermi function is analytic in a strip of half-width ``pi kT`` and its plain
truncated series converges as ``exp(-pi M kT / a)``, far faster than any damped one once ``pi M kT / a`` is a
few: ``kernel='auto'`` (the default) truncates without damping when ``pi M kT / a >= 3`` and uses Jackson
otherwise. Measured (square ``J = 6``, kT = 0.01, ``a = 10.1``, exact probing, 12x12): transverse-field error
4.6% / 1.8% / 0.5% with Jackson at ``M = 1000 / 2000 / 4000``, 0.2% / 0.02% / 0.00% truncated.

**Defaults** (``benchmarks/bench_kpm.py`` prints the evidence): ``M = 2000`` puts the expansion error at kT = 0.01
below 1e-7 per site and 0.02% in the fields for both project systems (``pi M kT / a = 6.2`` for the square
``J = 6`` band, the widest), so the probing distance is the one accuracy knob. ``probe_distance = 8`` with
seeded random phases on the colouring (``vectors=None``; unit amplitudes with ``'ones'``): the phases make the
same-colour cross terms add incoherently (10-100x smaller energy errors on ordered states, 1-2x smaller fields).
On 24x24 at kT = 0.01 this gives energies within 3e-5 per site and transverse-field errors of about 1% (square
``J = 6, n = 0.485``), 2% (triangular tetrahedral + noise) and 5% (triangular random spins, a metal whose density
matrix is still 4e-3 at distance 12: no colouring short of every site its own colour reaches 2% there). On
lattices too small to hold the distance the default falls back to exact probing.

**Phase realizations** (``realizations=K``): ``K`` independent draws of the colouring's random phases, weight
``1/K``. The trace stays exact and the same-colour cross terms (the whole probing error) average down as
``1/sqrt(K)``, at ``K`` times the cost. Measured on triangular random spins (24x24, ``J = 2, n = 1/4``, canonical,
kT = 0.01, ``M = 2000``, distance 8, two configurations): transverse-field error 5.5/5.7% (``K = 1``),
2.8/2.9% (``K = 4``), 1.9/1.9% (``K = 9``); energy 3-7e-5, 2-3e-5, 1.3-1.6e-5 per site. The default,
``realizations='auto'``, sets ``K`` on the first call from the spread between two phase draws on those spins (the
cross terms of independent draws are independent, zero-mean and alike, so ``RMS(h1 - h2)/sqrt(2)`` estimates one
draw's error: 28.6% estimated vs 30% true on a 16x16 metal, ``tests/test_kpm.py``): ``K = ceil((e/1.5%)^2)``, at
most 16, then fixed, so the energy stays one smooth function of the spins. Ordered, gapped or square-lattice
configurations (about 1% at ``K = 1``) keep ``K = 1`` and pay two extra evaluations once; a disordered metal gets
the draws it needs. ``K`` is set by the first configuration a provider sees: start a run from its most disordered
state, or give ``realizations`` explicitly.
"""
from __future__ import annotations

import math
import os

import numpy as np
import scipy.fft
import scipy.special
import torch

from ..errors import NearsightError, warn
from ..fields import FieldProvider, FieldResult, transverse
from ..hamiltonian import SDModel, exchange_blocks, zeeman_energy
from ..lattice import Lattice
from .chebyshev import Operator, chebyshev_coefficients, hop_offsets, kernel_factors, rdot, weyl_bounds
from .probing import colouring, probe_vectors, torus_length

KERNELS = ("auto", "jackson", "lorentz", "none")
AUTO_RESOLUTION = 3.0  # kernel='auto' truncates without damping once pi M kT / a >= this
DEFAULT_MOMENTS = 2000
DEFAULT_PROBE_DISTANCE = 8.0
#: realizations='auto': the estimated transverse-field probing error aimed at, and the most phase draws it may use
AUTO_TARGET = 0.015
AUTO_MAX_REALIZATIONS = 16
BOUND_MARGIN = 0.01
_GROWTH_TOL = 1e-8
_MAX_ENTRIES = 2 ** 24  # complex entries per probe block; larger batches are split
#: guards (issue 20): refuse a moment count whose bookkeeping alone exceeds the available memory, or whose field
#: evaluation would take longer than this at the assumed throughput; warn above this truncation error estimate
MAX_EVALUATION_SECONDS = 86400.0
ASSUMED_FLOPS = 1e9
TRUNCATION_WARNING = 0.03


# ------------------------------------------------------------------------------------------- the provider
class KPMProvider(FieldProvider):
    """Kernel-polynomial field provider: cost ``O(M R N)`` for ``M`` moments and ``R`` probing vectors.

    ``moments``: Chebyshev moments ``M`` (>= 2). ``probe_distance``: same-colour sites of the probing colouring are
    farther apart than this (Euclidean, lattice spacings); ``'exact'`` gives every site its own colour (``R = 2N``,
    exact trace); ``None`` is 8, or exact where the torus is too small for 8. ``vectors``: ``None`` (colouring with
    seeded random phases), ``'ones'`` (colouring with unit amplitudes) or an integer ``R`` (``R`` random-phase
    vectors on all sites, Hutchinson). ``realizations``: independent draws of the colouring's random phases
    (``vectors=None`` only; cost and vectors times ``K``, probing cross terms down by ``1/sqrt(K)``); ``'auto'``
    (default) picks ``K`` on the first call for an estimated 1.5% field error (module docstring). ``kernel``: ``'auto'``, ``'jackson'``, ``'lorentz'`` or ``'none'`` (``kT > 0``
    only). ``bounds``: ``None`` (rigorous Weyl bounds) or ``(lo, hi)``, checked on every call. ``seed`` fixes the
    phases / random vectors, so the energy is one fixed, smooth function of the spins and ``h = -dE/dS`` exactly.
    ``device``: any torch device (``'cuda'``); everything stays on it except ``[B, M]`` moment arrays.
    """

    name = "kpm"

    def __init__(self, lattice: Lattice, model: SDModel, *, moments: int = DEFAULT_MOMENTS,
                 probe_distance: float | str | None = None, vectors=None, kernel: str = "auto",
                 bounds: tuple[float, float] | None = None, device: str | None = None, seed: int = 0,
                 realizations: int | str = "auto"):
        self.lattice, self.model = lattice, model
        self._device = torch.device(device or "cpu")
        if isinstance(moments, bool) or not isinstance(moments, (int, np.integer)) or moments < 2:
            raise NearsightError(f"moments must be an integer >= 2, got {moments!r}; use e.g. moments="
                                 f"{DEFAULT_MOMENTS} (resolution ~ pi * bandwidth / (2 * moments))")
        self.moments = int(moments)
        if kernel not in KERNELS:
            raise NearsightError(f"kernel must be one of {', '.join(KERNELS)}, got {kernel!r}")
        if kernel == "none" and model.kT == 0:
            raise NearsightError("kernel='none' needs kT > 0 (the kT = 0 step has Gibbs oscillations); "
                                 "use kernel='jackson' or set kT > 0")
        self.kernel_requested = kernel
        self.n_electrons = model.n_electrons(lattice.N) if model.canonical else None

        if probe_distance is None:  # the default, or exact probing where the torus is too small to hold it
            probe_distance = DEFAULT_PROBE_DISTANCE if DEFAULT_PROBE_DISTANCE < torus_length(lattice) else "exact"
        if isinstance(probe_distance, str) and probe_distance == "exact":
            dist = math.inf
        else:
            try:
                dist = float(probe_distance)
            except (TypeError, ValueError):
                raise NearsightError(f"probe_distance must be a number >= 1 or 'exact', got "
                                     f"{probe_distance!r}") from None
            if not (dist >= 1.0) or math.isinf(dist):
                raise NearsightError(f"probe_distance must be a finite number >= 1 (lattice spacings) or "
                                     f"'exact', got {probe_distance!r}")
        self.probe_distance = probe_distance
        if vectors is None or vectors == "ones":
            self.colour, self.colour_separation = colouring(lattice, dist)
            n_random = None
        elif isinstance(vectors, (int, np.integer)) and not isinstance(vectors, bool) and vectors >= 1:
            self.colour, self.colour_separation, n_random = None, None, int(vectors)
        else:
            raise NearsightError(f"vectors must be None (colouring with random phases), 'ones' (colouring, unit "
                                 f"amplitudes) or an integer >= 1 (random vectors), got {vectors!r}")
        self.vectors, self.seed = vectors, int(seed)
        auto = isinstance(realizations, str) and realizations == "auto"
        if not auto and (isinstance(realizations, bool) or not isinstance(realizations, (int, np.integer))
                         or realizations < 1):
            raise NearsightError(f"realizations must be an integer >= 1 or 'auto', got {realizations!r}")
        if not auto and realizations > 1 and vectors is not None:
            raise NearsightError(f"realizations={realizations} draws the random phases of the colouring again; it "
                                 f"needs vectors=None (got vectors={vectors!r})")
        exact = self.colour is not None and int(self.colour.max()) + 1 == lattice.N
        # 'auto' is settled on the first call (see _calibrate) where phases carry a probing error
        self._pending_auto = auto and vectors is None and not exact
        self.realizations_requested = "auto" if auto else int(realizations)
        self._n_random = n_random
        self._set_vectors(1 if auto else int(realizations))                   # sets self.realizations

        rigorous = weyl_bounds(lattice, model)
        if bounds is None:
            lo, hi = rigorous
        else:
            try:
                lo, hi = (float(v) for v in bounds)
            except (TypeError, ValueError):
                raise NearsightError(f"bounds must be two numbers (lo, hi) or None, got {bounds!r}") from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise NearsightError(f"bounds must be finite with lo < hi, got {bounds!r}; or use bounds=None "
                                     f"(rigorous: {rigorous[0]:.6g}, {rigorous[1]:.6g})")
        self.bounds, self._user_bounds = (lo, hi), bounds is not None
        self.b = 0.5 * (hi + lo)
        self.a = 0.5 * (hi - lo) * (1.0 + BOUND_MARGIN)
        self._hops = hop_offsets(lattice, model.t, model.t2)
        if kernel == "auto":
            resolved = model.kT > 0 and math.pi * self.moments * model.kT / self.a >= AUTO_RESOLUTION
            kernel = "none" if resolved else "jackson"
        self.kernel = kernel
        self._damp = kernel_factors(kernel, self.moments)
        self._check_budget()
        self.truncation_error = None          # estimated on the first evaluation (truncation_estimate)

    def _check_budget(self) -> None:
        """Refuse ``moments`` beyond what memory and time allow, with the estimates (before any work)."""
        M, R, N = self.moments, self.n_vectors, self.lattice.N
        need = 600.0 * M                       # bytes per configuration: moment arrays, coefficients, bookkeeping
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = float("inf")
        flops = 1.5 * M * 2 * N * R * 8 * (len(self._hops) + 2)   # 1.5 M products H v on R probe vectors
        secs = flops / ASSUMED_FLOPS
        if need > avail or secs > MAX_EVALUATION_SECONDS:
            m_max = int(min(avail / 600.0, MAX_EVALUATION_SECONDS * ASSUMED_FLOPS / (flops / M)))
            raise NearsightError(
                f"moments={M} is beyond this machine: about {need / 2**30:.3g} GiB per configuration "
                f"({avail / 2**30:.3g} GiB available) and about {secs / 3600:.3g} h per field evaluation ({R} probe "
                f"vectors, {N} sites, at ~{ASSUMED_FLOPS:.0e} flop/s); use moments <= {m_max} (e.g. "
                f"{DEFAULT_MOMENTS}: resolution ~ pi * bandwidth / (2 * moments))")

    def truncation_estimate(self, tau: np.ndarray, mu: np.ndarray) -> float:
        """Estimated relative error of the occupation the expansion applies, ``||f_M(H) - f(H)||_F / ||f(H)||_F``
        over the spectrum, weighted by the (Jackson-damped) KPM density of states of the spins at hand; ``f`` the
        Fermi function at ``kT`` (a step at ``kT = 0``), ``f_M`` its truncated, kernel-damped series. A guide to the
        field error the truncation causes, not a bound."""
        M = self.moments
        G = max(4 * M, 1024)

        def at_nodes(c):                       # sum_n c_n T_n(x_k) on x_k = cos(pi (k + 1/2) / G)
            a = np.zeros(G)
            a[:M] = c
            a[1:] *= 0.5
            return scipy.fft.dct(a, type=3)
        x = np.cos(np.pi * (np.arange(G) + 0.5) / G)
        dos = np.clip(at_nodes(np.asarray(tau, dtype=np.float64).mean(0) * kernel_factors("jackson", M)), 0, None)
        m, e = float(np.mean(mu)), self.a * x + self.b
        f = scipy.special.expit(-(e - m) / self.model.kT) if self.model.kT > 0 else (e < m).astype(np.float64)
        fM = at_nodes(chebyshev_coefficients("count", np.array([m]), self.model.kT, self.a, self.b, M)[0]
                      * self._damp)
        return float(np.sqrt((dos * (fM - f) ** 2).sum() / max((dos * f ** 2).sum(), 1e-300)))

    # -------------------------------------------------------------------------------------- interface
    def _set_vectors(self, K: int) -> None:
        self._r, self._w = probe_vectors(self.lattice, self.colour, n_random=self._n_random,
                                         phases=self.vectors is None, realizations=K, seed=self.seed,
                                         device=self._device)
        self._r_norm2 = (self._r.abs() ** 2).sum((0, 1))  # [R]
        self.realizations = int(K)

    def _calibrate(self, spins: torch.Tensor) -> None:
        """``realizations='auto'``: estimate the probing error of one phase draw from the spread between two
        independent draws on these spins (the cross terms are independent, zero-mean and equally distributed in
        each, so ``RMS(h1 - h2) / sqrt(2)`` estimates one draw's error), and fix ``K = ceil((e / target)^2)``,
        capped at ``AUTO_MAX_REALIZATIONS``, for the rest of this provider's life (the energy stays one fixed
        smooth function of the spins)."""
        self._pending_auto = False
        self._set_vectors(2)
        r2, half = self._r, self._r.shape[-1] // 2
        fields = []
        for part in (r2[..., :half], r2[..., half:]):
            self._r, self._w, self._r_norm2 = part, 1.0, (part.abs() ** 2).sum((0, 1))
            fields.append(transverse(self._compute_fixed(spins).fields, spins))
        ref = (0.5 * (fields[0] + fields[1])).pow(2).sum(-1).mean().sqrt()
        err = float((fields[0] - fields[1]).pow(2).sum(-1).mean().sqrt() / (math.sqrt(2.0) * ref)) if ref > 0 else 0.0
        self.auto_estimate = err
        self._set_vectors(int(min(AUTO_MAX_REALIZATIONS, max(1, math.ceil((err / AUTO_TARGET) ** 2)))))

    @property
    def n_vectors(self) -> int:
        return int(self._r.shape[-1])

    def describe(self) -> dict:
        d = {**super().describe(), **{k: v for k, v in self.model.to_dict().items() if v is not None}}
        d.update(moments=self.moments, kernel=self.kernel, kernel_requested=self.kernel_requested,
                 probe_distance=str(self.probe_distance), vectors=str(self.vectors), n_vectors=self.n_vectors,
                 realizations=self.realizations, realizations_requested=str(self.realizations_requested),
                 seed=self.seed,
                 spectral_bounds=list(self.bounds), bounds_source="user" if self._user_bounds else "weyl",
                 bound_margin=BOUND_MARGIN)
        if self.colour is not None:
            d.update(n_colours=int(self.colour.max()) + 1, colour_separation=float(self.colour_separation))
        return d

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        if self._pending_auto:
            self._calibrate(spins)
        return self._compute_fixed(spins)

    def _compute_fixed(self, spins: torch.Tensor) -> FieldResult:
        per = max(1, _MAX_ENTRIES // (self.lattice.N * 2 * self.n_vectors))
        parts = [self._evaluate(s) for s in spins.split(per)]
        energy = torch.cat([p[0] for p in parts])
        fields = torch.cat([p[1] for p in parts])
        mu = torch.cat([p[2] for p in parts])
        return FieldResult(energy, fields, {"mu": mu})

    # -------------------------------------------------------------------------------------- the method
    def _operator(self, spins: torch.Tensor) -> Operator:
        return Operator(self.lattice, self._hops, exchange_blocks(spins, self.model.J), self.a, self.b)

    def apply_hamiltonian(self, spins: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Matrix-free ``H v`` for spins ``[B, N, 3]`` and vectors ``[B, N, 2, R]`` (basis ``2*i + s``)."""
        op = self._operator(spins)
        w = v.to(torch.complex128).permute(0, 2, 1, 3).unsqueeze(1).contiguous()    # [B, 1, 2, N, R]
        out = torch.zeros_like(w)
        op.add_2x(out, w)
        return (0.5 * self.a * out + self.b * w).squeeze(1).permute(0, 2, 1, 3)

    def moments_of(self, spins: torch.Tensor) -> torch.Tensor:
        """Probed Chebyshev moments ``w sum_r <r|T_n(x)|r>``, ``[B, M]`` (float64): the KPM DOS."""
        return self._forward(self._operator(spins), spins.shape[0])[0]

    def _forward(self, op: Operator, B: int):
        M, K = self.moments, self.moments // 2
        r = self._r.permute(1, 0, 2)                                               # [2, N, R]
        prev = r.expand(B, 1, -1, -1, -1).contiguous()                            # alpha_0
        cur = torch.zeros_like(prev)
        op.add_2x(cur, prev)
        cur.mul_(0.5)                                                             # alpha_1 = x r
        norms, cross = [rdot(prev, prev)], []
        for m in range(1, K + 1):
            cross.append(rdot(cur, prev))                                        # Q_{m-1}
            if 2 * m < M:
                norms.append(rdot(cur, cur))                                     # N_m
            if m == K:
                break
            prev.neg_()
            op.add_2x(prev, cur)                                                  # alpha_{m+1}
            prev, cur = cur, prev
        Nm, Qm = torch.stack(norms, 1), torch.stack(cross, 1)
        tau = torch.empty(B, M, dtype=torch.float64, device=Nm.device)
        tau[:, 0::2] = 2 * Nm - Nm[:, :1]
        tau[:, 1::2] = 2 * Qm[:, : (M // 2)] - Qm[:, :1]
        self._check_growth(cur)
        return tau * self._w, prev, cur                                           # alpha_{K-1}, alpha_K

    def _check_growth(self, alpha_K: torch.Tensor) -> None:
        grown = torch.view_as_real(alpha_K).pow(2).sum((1, 2, 3, 5)) / self._r_norm2   # [B, R]
        ratio = float(grown.max())
        if not ratio <= 1.0 + _GROWTH_TOL:
            lo, hi = self.bounds
            raise NearsightError(
                f"spectral bounds ({lo:.6g}, {hi:.6g}) are exceeded by the Hamiltonian (Chebyshev vectors grew by "
                f"{math.sqrt(ratio) if math.isfinite(ratio) else ratio:.3g}x); widen bounds or use bounds=None "
                f"(rigorous Weyl bounds)")

    def _solve_mu(self, tau: np.ndarray) -> np.ndarray:
        """``mu [B]`` with ``N_kpm(mu) = N_e`` (bisection; ``N_kpm`` is monotone for a positive kernel)."""
        m, M = self.model, self.moments
        lo = np.full(tau.shape[0], self.b - self.a - 40 * m.kT - 1.0)
        hi = np.full(tau.shape[0], self.b + self.a + 40 * m.kT + 1.0)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            n = (chebyshev_coefficients("count", mid, m.kT, self.a, self.b, M) * self._damp * tau).sum(1)
            over = n > self.n_electrons
            hi, lo = np.where(over, mid, hi), np.where(over, lo, mid)
            if float((hi - lo).max()) < 1e-13 * self.a:
                break
        return 0.5 * (lo + hi)

    def _evaluate(self, spins: torch.Tensor):
        m, M, B = self.model, self.moments, spins.shape[0]
        dev = spins.device
        op = self._operator(spins)
        tau_t, a_km1, a_k = self._forward(op, B)
        tau = tau_t.cpu().numpy()
        mu = self._solve_mu(tau) if m.canonical else np.full(B, m.mu)
        if self.truncation_error is None:
            self.truncation_error = self.truncation_estimate(tau, mu)
            if self.truncation_error > TRUNCATION_WARNING:
                warn(f"KPM with moments={M} ({self.kernel} kernel): the truncated expansion misses the occupation by "
                     f"an estimated {100 * self.truncation_error:.3g}% (resolution pi a/M = {math.pi * self.a / M:.3g} "
                     f"against kT = {m.kT:g}); the fields may be off by as much or more: raise moments")
        mun = chebyshev_coefficients("omega", mu, m.kT, self.a, self.b, M) * self._damp    # [B, M]
        omega = (mun * tau).sum(1)
        energy = torch.as_tensor(omega + (mu * self.n_electrons if m.canonical else 0.0), device=dev)
        G = self._backward(op, mun, a_km1, a_k)                                  # [B, 2, 2, N]
        # h^a = -dOmega/dS^a = (2 J w / a) Re Tr(sigma^a G_i),  dx_i = -(J/a) dS . sigma
        f = 2.0 * m.J * self._w / self.a
        hx = (G[:, 1, 0] + G[:, 0, 1]).real
        hy = (G[:, 1, 0] - G[:, 0, 1]).imag
        hz = (G[:, 0, 0] - G[:, 1, 1]).real
        fields = f * torch.stack([hx, hy, hz], -1) + torch.tensor(m.B, dtype=torch.float64, device=dev)
        return energy + zeeman_energy(m, spins), fields, torch.as_tensor(mu, device=dev)

    def _backward(self, op: Operator, mun: np.ndarray, a_km1: torch.Tensor, a_k: torch.Tensor) -> torch.Tensor:
        """Adjoint recursion; returns ``G_i[s', s] = sum_k w_k alpha_k-1(i, s') conj(lambda_k(i, s))``
        summed over probes, as ``[B, 2, 2, N]``."""
        M, K = self.moments, self.moments // 2
        B = a_k.shape[0]
        dev, dt = a_k.device, a_k.dtype
        p = np.zeros((B, K + 2))
        q = np.zeros((B, K + 2))
        p[:, : (M + 1) // 2] = 2 * mun[:, 0::2]
        q[:, : M // 2] = 2 * mun[:, 1::2]
        q[:, 0] -= mun[:, 1::2].sum(1)
        p_t = torch.as_tensor(p, device=dev).to(dt).view(B, K + 2, 1, 1, 1)
        q_t = torch.as_tensor(0.5 * q, device=dev).to(dt).view(B, K + 2, 1, 1, 1)
        # Z_k = [alpha_k ; lambda_k+1] stacked on axis 1; start from Z_{K-1} and Z_K.
        cur = torch.cat([a_km1, p_t[:, K:K + 1] * a_k + q_t[:, K - 1:K] * a_km1], 1)      # Z_{K-1}
        acc = torch.zeros(B, 2, 2, *a_k.shape[3:], dtype=dt, device=dev)          # [B, s', s, N, R]
        lbar = torch.empty_like(a_k[:, 0])                                        # conj(lambda), reused

        def accumulate(alp, lam, w):  # acc[s', s] += w alpha[s'] conj(lambda[s]); no allocation per step
            torch.conj_physical(lam, out=lbar)
            if w != 1.0:
                lbar.mul_(w)
            for s1 in range(2):
                for s2 in range(2):
                    acc[:, s1, s2].addcmul_(alp[:, s1], lbar[:, s2])

        accumulate(cur[:, 0], cur[:, 1], 2.0 if K > 1 else 1.0)
        if K > 1:
            nxt = torch.cat([a_k, torch.zeros_like(a_k)], 1)                      # Z_K
            for k in range(K - 1, 0, -1):
                # nxt <- Z_{k-1} = 2 x Z_k - Z_{k+1} + [0 ; g_k]
                nxt.neg_()
                alp, lam = nxt[:, 0], nxt[:, 1]
                lam.addcmul_(q_t[:, k], alp, value=-1.0)                          # + q_k/2 alpha_{k+1}
                op.add_2x(nxt, cur)
                lam.addcmul_(p_t[:, k], cur[:, 0])                                # + p_k alpha_k
                lam.addcmul_(q_t[:, k - 1], alp)                                  # + q_{k-1}/2 alpha_{k-1}
                accumulate(alp, lam, 2.0 if k > 1 else 1.0)
                cur, nxt = nxt, cur
        return acc.sum(-1)
