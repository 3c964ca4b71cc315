"""Nonequilibrium Green's functions (NEGF): exchange fields on a biased s-d sample between two ideal leads.

**Geometry.** A :class:`~nearsight.lattice.Strip` of ``Lx x Ly`` square-lattice sites (site index ``i = x + Lx*y``
as everywhere in the package), *open* along the transport direction ``x`` and *periodic* along ``y`` (periodic images add, as in
:func:`nearsight.hamiltonian.hopping_matrix`: at ``Ly = 2`` the two transverse bonds give ``-2t``). ``Ly = 1`` is a
plain chain (no transverse hopping). Columns ``x = 0`` and ``x = Lx-1`` couple by ``-t`` per site to semi-infinite
ideal leads: the same strip continued without local spins (spin degenerate, same ``t``), held at
``mu_L = mu + V/2`` and ``mu_R = mu - V/2`` and temperature ``kT > 0``. ``e = hbar = 1``.

**Lead self-energies.** Per transverse mode ``k_y = 2 pi m / Ly`` (energy ``eps_m``: the eigenvalues of the
transverse hopping, ``-2t cos k_y`` for ``Ly >= 2``, 0 for the chain) the surface Green's function of a
semi-infinite chain, ``g(z) = (w - sqrt(w - 2|t|) sqrt(w + 2|t|)) / (2 t^2)`` with ``w = z - eps_m``: with
principal square roots this is the retarded branch everywhere in the closed upper half plane (``Im g < 0`` inside
the band, ``|t g| < 1`` outside it, ``g ~ 1/z`` at infinity). ``Sigma(z) = t^2 U g U^+`` on the contact column.
With ``wide_band=Gamma`` the leads are replaced by ``Sigma = -i Gamma/2`` on every contact orbital.

**Density matrix.** ``D_ab = <c+_b c_a> = int dE/2pi (-i G<_ab)``, ``G< = G^r (i f_L Gamma_L + i f_R Gamma_R) G^a``.
With ``f_< = f(E; min(mu_L, mu_R))``

    D = (i/2pi) int dE f_<(E) [G^r(E) - G^a(E)]                                        (equilibrium-like part)
      + int dE/2pi G^r [(f_L - f_<) Gamma_L + (f_R - f_<) Gamma_R] G^a                  (bias window, real axis).

The first term is ``(i/2pi)(X - X^+)``, ``X = int f_< G^r dE``, deformed into the upper half plane: a circular arc
from ``E_lo`` (below every state) up to height ``delta = 2 pi kT N_p`` (midway between Fermi poles) and a line at
that height to ``mu + 36 kT``, minus ``2 pi i kT sum_{p < N_p} G^r(mu + i pi kT (2p+1))`` for the enclosed Fermi poles
(on that line ``f`` is real and equal to ``f(Re z)``). Bound states (poles of ``G^r`` on the real axis, outside the
lead bands) are therefore occupied with ``f_<``; in the bias window only lead-fed states count (the usual
steady-state NEGF convention). The wide-band real-axis tail below ``E_lo`` is added analytically
(``Gamma/(2 pi R) - {H, Gamma}/(4 pi R^2)``, ``R = -E_lo``, error ``O(R^-3)``). All quadratures are composite
Gauss-Legendre with adaptive bisection: a panel is accepted when its ``n`` and ``2n`` point rules agree to
``tol`` times its share of the interval; otherwise :class:`NearsightError` is raised (never a silent result).
Real-axis panels are split at ``mu_L``, ``mu_R`` and the lead sub-band edges and mapped with
``E = a + (b-a)(1 - cos pi u)/2`` so the square-root band edges do not spoil convergence.

**Recursive Green's functions.** Slices are columns (``2 Ly`` orbitals, local index ``2y + s``). Left- and
right-connected sweeps give the diagonal blocks ``G_xx``, the neighbour blocks ``G_x+1,x``, ``G_x,x+1`` and the
columns ``G_x,0``, ``G_x,Lx-1`` in ``O(Lx (2Ly)^3)`` per energy.

**Outputs.** ``h_i = J <c+_i sigma c_i> + B = J Tr(sigma D_ii) + B`` (Hellmann-Feynman form; under bias not a
gradient, hence ``conservative = False``). ``energy = Tr(D H_s) - sum_i B.S_i``: the band energy of the *sample*
Hamiltonian (hopping inside the sample and exchange; not the sample-lead bonds) in the nonequilibrium state, plus the
Zeeman term. It is *not* a potential of the fields, not even at ``V = 0`` (there ``h = -dOmega/dS`` of the
open-system grand potential ``Omega = (1/pi) Im int f ln det(E - H_s - Sigma) dE``, which this provider does not
return). Extras (per configuration):

* ``charge_current [2]``: particle currents ``I_L``, ``I_R`` *from* the left / right lead *into* the sample
  (Meir-Wingreen at each contact, ``(1/2pi) int Tr[Gamma_a (f_a A - G^n)]``, both spins summed). In steady state
  ``I_L = -I_R = (1/2pi) int T(E) (f_L - f_R) dE``. The electrical current is ``-e`` times this.
* ``spin_current [2, 3]``: the same with ``Tr[sigma Gamma_a ...]``: the sigma-current (spin ``hbar/2`` times this)
  from each lead into the sample; ``I^s_L + I^s_R`` is the spin angular momentum absorbed by the local spins.
* ``bond_current [Lx-1]`` and ``spin_bond_current [Lx-1, 3]``: ``-2t Im Tr[(1 or sigma) D_x,x+1]``, the particle
  (sigma) current from column ``x`` to ``x+1`` from the full density matrix.
* ``charge [N]`` and ``spin_density [N, 3]``: ``Tr D_ii`` and ``Tr sigma D_ii``.

:meth:`NEGFProvider.transmission` returns the Caroli transmission ``Tr[Gamma_L G^r Gamma_R G^a]`` (spins summed).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import NearsightError, check_positive
from ..ensemble import fermi
from ..hamiltonian import PAULI, SDModel, zeeman_energy
from ..lattice import Lattice, Strip
from ..fields import FieldProvider, FieldResult

_PAULI = PAULI.numpy()   # the Pauli matrices of nearsight.hamiltonian, as numpy
_FERMI_CUT = 36.0        # f(mu + 36 kT) = 2e-16: where the Fermi tails are dropped
_CHUNK = 96              # energies per RGF call (bounds memory)


def surface_green(w: np.ndarray, t: float) -> np.ndarray:
    """Retarded surface Green's function of a semi-infinite chain (hopping ``t``) at ``w = z - eps`` (Im w >= 0)."""
    w = np.asarray(w, dtype=np.complex128) + 0.0j  # +0j keeps real w on the upper lip of the cut
    a = 2.0 * abs(t)
    return (w - np.sqrt(w - a) * np.sqrt(w + a)) / (2.0 * t * t)


def adaptive_gauss(func, edges, tol: float, *, what: str, n: int = 10, max_rounds: int = 40,
                   max_panels: int = 4000) -> np.ndarray:
    """``int func(u) du`` over consecutive panels ``edges`` (``func: [M] -> [M, K]``), adaptive Gauss-Legendre.

    A panel is accepted when the ``n``- and ``2n``-point rules agree to ``tol * width / total`` (max abs over the
    ``K`` outputs); otherwise it is halved. Raises :class:`NearsightError` if this does not converge.
    """
    xa, wa = np.polynomial.legendre.leggauss(n)
    xb, wb = np.polynomial.legendre.leggauss(2 * n)
    edges = np.asarray(edges, dtype=np.float64)
    pending = list(zip(edges[:-1], edges[1:]))
    total_w = float(edges[-1] - edges[0])
    result, n_panels = 0.0, len(pending)
    for _ in range(max_rounds):
        if not pending:
            return result
        a = np.array([p[0] for p in pending])[:, None]
        b = np.array([p[1] for p in pending])[:, None]
        mid, half = (a + b) / 2, (b - a) / 2
        nodes = np.concatenate([(mid + half * xa).ravel(), (mid + half * xb).ravel()])
        vals = np.concatenate([func(nodes[k:k + _CHUNK]) for k in range(0, len(nodes), _CHUNK)])
        P = len(pending)
        va = vals[: P * n].reshape(P, n, -1)
        vb = vals[P * n:].reshape(P, 2 * n, -1)
        Ia = np.einsum("pnk,n->pk", va, wa) * half
        Ib = np.einsum("pnk,n->pk", vb, wb) * half
        err = np.abs(Ib - Ia).max(-1)
        ok = err <= tol * np.maximum(2 * half[:, 0] / total_w, 1e-6)
        result = result + Ib[ok].sum(0)
        nxt = []
        for p, good in zip(pending, ok):
            if not good:
                m = 0.5 * (p[0] + p[1])
                nxt += [(p[0], m), (m, p[1])]
        n_panels += len(nxt) // 2
        if n_panels > max_panels:
            break
        pending = nxt
    raise NearsightError(f"{what} did not converge to tol={tol:g} ({n_panels} panels); raise tol, raise kT, or "
                         f"check for a sharp resonance (very weak lead coupling)")


class NEGFProvider(FieldProvider):
    """NEGF field provider: a strip of the s-d model between two ideal leads at bias ``V`` (see module docstring).

    Parameters: ``geometry`` a :class:`Strip` (or a square :class:`Lattice`, read as a strip open along x with its
    x-periodicity ignored); ``model`` a grand-canonical :class:`SDModel` with ``kT > 0`` and ``t2 = 0``;
    ``bias`` V (``mu_L,R = mu +- V/2``); ``leads`` (``False``: an isolated finite sample, equilibrium only);
    ``wide_band`` a coupling ``Gamma > 0`` replacing the analytic leads by ``Sigma = -i Gamma/2``;
    ``lead_width`` (must equal ``Ly``: the leads continue the strip); ``tol`` the absolute quadrature tolerance
    on density-matrix elements and currents.
    """

    name = "negf"
    conservative = False
    #: wide-band leads: the contour starts at ``E_lo = -reach * (bound on |E|)``; the tail below is analytic
    wide_band_reach = 1e4

    def __init__(self, geometry, model: SDModel, *, bias: float = 0.0, leads: bool = True,
                 wide_band: float | None = None, lead_width: int | None = None, tol: float = 1e-9):
        if isinstance(geometry, Lattice):
            geometry = Strip.from_lattice(geometry)
        if not isinstance(geometry, Strip):
            raise NearsightError(f"geometry must be a Strip(Lx, Ly) or a square Lattice, got {geometry!r}")
        if not isinstance(model, SDModel):
            raise NearsightError(f"model must be an SDModel, got {type(model).__name__}")
        if model.canonical:
            raise NearsightError("NEGF is grand canonical (the leads fix mu_L, mu_R); give mu instead of filling")
        if model.kT <= 0:
            raise NearsightError(f"NEGF needs kT > 0 (Fermi poles of the contour and the real-axis bias window), "
                                 f"got kT={model.kT!r}; use e.g. kT=0.01")
        if model.t2 != 0.0:
            raise NearsightError("NEGF supports nearest-neighbour hopping only; set t2 = 0")
        if model.t == 0.0:
            raise NearsightError("NEGF needs t != 0 (the leads are built from the hopping t)")
        try:
            bias = float(bias)
        except (TypeError, ValueError):
            raise NearsightError(f"bias must be a number, got {bias!r}") from None
        if not math.isfinite(bias):
            raise NearsightError(f"bias must be finite, got {bias!r}")
        if not leads:
            if bias != 0.0:
                raise NearsightError(f"bias={bias:g} needs leads: an isolated sample (leads=False) has no "
                                     f"reservoirs to hold mu +- V/2; set leads=True or bias=0")
            if wide_band is not None:
                raise NearsightError("wide_band is a lead coupling; it needs leads=True")
        if wide_band is not None:
            wide_band = check_positive("wide_band (the coupling Gamma)", wide_band)
        if lead_width is not None and lead_width != geometry.Ly:
            raise NearsightError(f"lead_width={lead_width!r} does not match the strip width Ly={geometry.Ly}: the "
                                 f"leads are ideal continuations of the strip; use lead_width={geometry.Ly}")
        self.tol = check_positive("tol", tol)
        self.lattice, self.model = geometry, model
        self.bias, self.leads, self.wide_band = bias, bool(leads), wide_band
        Ly, t = geometry.Ly, model.t
        hp = np.zeros((Ly, Ly))
        if Ly > 1:
            for y in range(Ly):
                hp[y, (y + 1) % Ly] += -t
                hp[(y + 1) % Ly, y] += -t
        y = np.arange(Ly)
        self._U = np.exp(2j * np.pi * np.outer(y, y) / Ly) / np.sqrt(Ly)  # Fourier modes (columns)
        self._eps_m = np.real(np.einsum("ym,yz,zm->m", self._U.conj(), hp, self._U))
        self._h_perp = np.kron(hp, np.eye(2))
        self.n = 2 * Ly
        self._sig_full = np.stack([np.kron(np.eye(Ly), s) for s in _PAULI])  # [3, n, n]

    # ------------------------------------------------------------------ pieces
    @property
    def mu_L(self) -> float:
        return self.model.mu + self.bias / 2

    @property
    def mu_R(self) -> float:
        return self.model.mu - self.bias / 2

    def describe(self) -> dict:
        d = {**super().describe(), **{k: v for k, v in self.model.to_dict().items() if v is not None}}
        d.update(bias=self.bias, leads=self.leads, wide_band=self.wide_band or 0.0)
        return d

    def _bound(self) -> float:
        """Upper bound on |E| of every state of sample + leads: 2|t| + max|eps_m| + |J|."""
        return 2 * abs(self.model.t) + float(np.abs(self._eps_m).max()) + abs(self.model.J)

    def self_energy(self, z: np.ndarray) -> np.ndarray:
        """Contact self-energy ``[M, 2Ly, 2Ly]`` (same for both leads) at energies ``z`` (Im z >= 0)."""
        z = np.asarray(z, dtype=np.complex128)
        if self.wide_band is not None:
            return np.broadcast_to(-0.5j * self.wide_band * np.eye(self.n), (len(z), self.n, self.n))
        t = self.model.t
        g = surface_green(z[:, None] - self._eps_m[None, :], t)           # [M, Ly]
        s = t * t * np.einsum("ym,km,zm->kyz", self._U, g, self._U.conj())
        return np.einsum("kyz,st->kyszt", s, np.eye(2)).reshape(len(z), self.n, self.n)

    def _column_blocks(self, spins: np.ndarray) -> np.ndarray:
        """On-column Hamiltonian blocks ``[B, Lx, 2Ly, 2Ly]`` (transverse hopping + exchange ``-J S.sigma``)."""
        B = spins.shape[0]
        Lx, Ly = self.lattice.Lx, self.lattice.Ly
        S = spins.reshape(B, Ly, Lx, 3).transpose(0, 2, 1, 3)             # [B, x, y, 3]
        ex = -self.model.J * np.einsum("bxya,ast->bxyst", S, _PAULI)      # [B, x, y, 2, 2]
        H = np.zeros((B, Lx, Ly, 2, Ly, 2), dtype=np.complex128)
        idx = np.arange(Ly)
        H[:, :, idx, :, idx, :] = ex.transpose(2, 0, 1, 3, 4)
        return H.reshape(B, Lx, self.n, self.n) + self._h_perp

    def _rgf(self, z: np.ndarray, Hd: np.ndarray, columns: bool):
        """Recursive Green's functions at energies ``z [M]``: dict of blocks, each ``[B, M, n, n]`` per column."""
        Lx, n, t = self.lattice.Lx, self.n, self.model.t
        I = np.eye(n)
        A = [z[None, :, None, None] * I - Hd[:, x, None] for x in range(Lx)]
        sig = self.self_energy(z)[None] if self.leads else None
        if self.leads:
            A[0] = A[0] - sig
            A[-1] = A[-1] - sig
        inv = np.linalg.inv
        gL, gR = [None] * Lx, [None] * Lx
        gL[0] = inv(A[0])
        for x in range(1, Lx):
            gL[x] = inv(A[x] - t * t * gL[x - 1])
        gR[-1] = inv(A[-1])
        for x in range(Lx - 2, -1, -1):
            gR[x] = inv(A[x] - t * t * gR[x + 1])
        G = [gR[0]] + [inv(A[x] - t * t * (gL[x - 1] + gR[x + 1])) for x in range(1, Lx - 1)]
        if Lx > 1:
            G.append(gL[-1])
        out = {"G": G, "Gdn": [-t * gR[x + 1] @ G[x] for x in range(Lx - 1)],     # G_{x+1,x}
               "Gup": [-t * G[x] @ gR[x + 1] for x in range(Lx - 1)]}             # G_{x,x+1}
        if columns:
            c0 = [G[0]]
            for x in range(Lx - 1):
                c0.append(-t * gR[x + 1] @ c0[-1])
            cN = [G[-1]]
            for x in range(Lx - 2, -1, -1):
                cN.insert(0, -t * gL[x] @ cN[0])
            out.update(c0=c0, cN=cN, sig=sig)
        return out

    # ------------------------------------------------------------- integrands
    def _contour(self):
        """Arc + line of the equilibrium contour: (edges in u, z(u), dz/du) and the enclosed Fermi poles."""
        m, mu = self.model, min(self.mu_L, self.mu_R)
        Np = max(1, math.ceil(0.5 / (2 * math.pi * m.kT)))
        delta = 2 * math.pi * m.kT * Np
        E1 = mu - _FERMI_CUT * m.kT - delta
        E2 = mu + _FERMI_CUT * m.kT
        b = self._bound()
        E_lo = -self.wide_band_reach * max(b, 1.0) if self.wide_band is not None else min(-b, E1) - 1.0
        c = (E1 ** 2 + delta ** 2 - E_lo ** 2) / (2 * (E1 - E_lo))
        r = c - E_lo
        th1 = math.atan2(delta, E1 - c)
        L = math.log(math.pi / th1)

        def path(u):
            u = np.asarray(u, dtype=np.float64)
            arc = u < 1.0
            th = th1 * np.exp((1.0 - u[arc]) * L)                          # geometric grading toward the line
            z = np.empty(u.shape, dtype=np.complex128)
            dz = np.empty(u.shape, dtype=np.complex128)
            z[arc] = c + r * np.exp(1j * th)
            dz[arc] = 1j * r * np.exp(1j * th) * (-L * th)
            s = u[~arc] - 1.0
            z[~arc] = E1 + (E2 - E1) * s + 1j * delta
            dz[~arc] = E2 - E1
            return z, dz

        # line panels: split near mu on the kT scale
        fr = (np.array([mu - 12 * m.kT, mu - 3 * m.kT, mu, mu + 3 * m.kT, mu + 12 * m.kT]) - E1) / (E2 - E1)
        edges = np.concatenate([np.linspace(0.0, 1.0, 5), 1.0 + fr[(fr > 0) & (fr < 1)], [2.0]])
        poles = mu + 1j * math.pi * m.kT * (2 * np.arange(Np) + 1)
        return np.unique(edges), path, poles, E_lo, mu

    def _eq_values(self, z, weight, Hd) -> np.ndarray:
        """``(i/2pi)(F G - conj(F) G^+)`` on diagonal and lower blocks at ``z`` with ``F = weight``: ``[M, K]``."""
        g = self._rgf(z, Hd, columns=False)
        F = weight[None, :, None, None]
        diag = np.stack(g["G"], 2)                                          # [B, M, Lx, n, n]
        Y = 1j / (2 * np.pi) * (F[..., None, :, :] * diag - np.conj(F[..., None, :, :]) * _dag(diag))
        parts = [Y]
        if self.lattice.Lx > 1:
            dn, up = np.stack(g["Gdn"], 2), np.stack(g["Gup"], 2)
            parts.append(1j / (2 * np.pi) * (F[..., None, :, :] * dn - np.conj(F[..., None, :, :]) * _dag(up)))
        return _flat(parts)

    def _window_values(self, E, Hd) -> np.ndarray:
        """Bias-window integrand at real ``E``: density blocks and contact currents, ``[M, K]``."""
        m = self.model
        E = np.asarray(E, dtype=np.float64)
        g = self._rgf(E.astype(np.complex128), Hd, columns=True)
        sig = g["sig"][0]
        Gam = 1j * (sig - _dag(sig))                                        # [M, n, n]
        fl = fermi(E, min(self.mu_L, self.mu_R), m.kT)
        aL = (fermi(E, self.mu_L, m.kT) - fl)[None, :, None, None]
        aR = (fermi(E, self.mu_R, m.kT) - fl)[None, :, None, None]
        c0, cN = g["c0"], g["cN"]
        Lx = self.lattice.Lx
        dens = [(aL * c0[x] @ Gam @ _dag(c0[x]) + aR * cN[x] @ Gam @ _dag(cN[x])) / (2 * np.pi) for x in range(Lx)]
        low = [(aL * c0[x + 1] @ Gam @ _dag(c0[x]) + aR * cN[x + 1] @ Gam @ _dag(cN[x])) / (2 * np.pi)
               for x in range(Lx - 1)]
        ops = np.concatenate([np.eye(self.n)[None], self._sig_full])       # [4, n, n]
        cur = []
        for x, a in ((0, aL), (Lx - 1, aR)):
            Gxx = g["G"][x]
            A = 1j * (Gxx - _dag(Gxx))
            Gn = dens[x] * (2 * np.pi)
            X = Gam @ (a * A - Gn)                                          # [B, M, n, n]
            cur.append(np.einsum("onm,bkmn->bko", ops, X) / (2 * np.pi))     # [B, M, 4]
        parts = [np.stack(dens, 2), *( [np.stack(low, 2)] if Lx > 1 else []), np.stack(cur, 2)]
        return _flat(parts)

    # ---------------------------------------------------------------- results
    def density_matrix(self, spins) -> dict:
        """Blocks of the steady-state density matrix and the contact currents (numpy, batched).

        ``diag [B, Lx, n, n]`` (``D_xx``), ``lower [B, Lx-1, n, n]`` (``D_x+1,x``), ``contact [B, 2, 4]`` (particle
        and sigma currents from the left / right lead into the sample), all with local orbital index ``2y + s``.
        """
        s, _ = self.spins_batch(spins)
        S = s.numpy()
        Hd = self._column_blocks(S)
        B, Lx, n = S.shape[0], self.lattice.Lx, self.n
        nd, nl = B * Lx * n * n, B * (Lx - 1) * n * n

        edges, path, poles, E_lo, mu = self._contour()
        kT = self.model.kT

        def eq(u):
            z, dz = path(u)
            return self._eq_values(z, fermi(z, mu, kT) * dz, Hd)

        Y = adaptive_gauss(eq, edges, self.tol, what="equilibrium contour integral")
        Y = Y + self._eq_values(poles, np.full(len(poles), -2j * np.pi * kT), Hd).sum(0)
        diag = Y[:nd].reshape(B, Lx, n, n)
        lower = Y[nd:nd + nl].reshape(B, Lx - 1, n, n)
        if self.wide_band is not None:
            diag, lower = self._wide_band_tail(diag, lower, Hd, -E_lo)
        contact = np.zeros((B, 2, 4))
        if self.bias != 0.0:
            lo = min(self.mu_L, self.mu_R) - _FERMI_CUT * kT
            hi = max(self.mu_L, self.mu_R) + _FERMI_CUT * kT
            br = [self.mu_L, self.mu_R]
            if self.wide_band is None:
                br += list(self._eps_m - 2 * abs(self.model.t)) + list(self._eps_m + 2 * abs(self.model.t))
            pts = np.unique(np.concatenate([[lo, hi], [p for p in br if lo < p < hi]]))
            pts = pts[np.concatenate([[True], np.diff(pts) > 1e-12])]

            def win(u):
                k = np.minimum(np.floor(u).astype(int), len(pts) - 2)
                a, bb = pts[k], pts[k + 1]
                v = u - k
                E = a + (bb - a) * (1 - np.cos(np.pi * v)) / 2
                jac = (bb - a) * np.pi * np.sin(np.pi * v) / 2
                return self._window_values(E, Hd) * jac[:, None]

            W = adaptive_gauss(win, np.arange(len(pts)), self.tol, what="bias-window integral")
            diag = diag + W[:nd].reshape(B, Lx, n, n)
            lower = lower + W[nd:nd + nl].reshape(B, Lx - 1, n, n)
            contact = W[nd + nl:].reshape(B, 2, 4).real
        return {"diag": diag, "lower": lower, "contact": contact, "H": Hd}

    def _wide_band_tail(self, diag, lower, Hd, R):
        """Real-axis part below ``-R`` (wide-band leads only): ``Gamma/(2pi R) - {H, Gamma}/(4pi R^2)``."""
        Lx, Gm, t = self.lattice.Lx, self.wide_band, self.model.t
        gam = np.zeros(Lx)
        gam[0] += Gm
        gam[-1] += Gm
        I = np.eye(self.n)
        diag = diag + gam[None, :, None, None] * (I / (2 * np.pi * R) - 2 * Hd / (4 * np.pi * R * R))
        if Lx > 1:
            lower = lower + (t * (gam[:-1] + gam[1:]) / (4 * np.pi * R * R))[None, :, None, None] * I
        return diag, lower

    def _compute(self, spins: torch.Tensor) -> FieldResult:
        m, st = self.model, self.lattice
        r = self.density_matrix(spins)
        diag, lower, Hd = r["diag"], r["lower"], r["H"]
        B, Lx, Ly = diag.shape[0], st.Lx, st.Ly
        site = diag.reshape(B, Lx, Ly, 2, Ly, 2)[:, :, np.arange(Ly), :, np.arange(Ly), :]  # [Ly, B, Lx, 2, 2]
        site = site.transpose(1, 0, 2, 3, 4).reshape(B, Ly * Lx, 2, 2)                        # i = x + Lx*y
        mag = np.einsum("ast,bits->bia", _PAULI, site).real
        charge = np.einsum("biss->bi", site).real
        e_band = np.einsum("bxij,bxji->b", Hd, diag).real
        if Lx > 1:
            e_band = e_band - 2 * m.t * np.einsum("bxii->b", lower).real
        ops = np.concatenate([np.eye(self.n)[None], self._sig_full])
        bond = 2 * m.t * np.einsum("onm,bxmn->bxo", ops, lower).imag if Lx > 1 else np.zeros((B, 0, 4))
        fields = m.J * torch.from_numpy(mag) + torch.tensor(m.B, dtype=torch.float64)
        energy = torch.from_numpy(e_band) + zeeman_energy(m, spins)
        c = torch.from_numpy(r["contact"])
        extras = {"charge_current": c[..., 0].contiguous(), "spin_current": c[..., 1:].contiguous(),
                  "bond_current": torch.from_numpy(bond[..., 0].copy()),
                  "spin_bond_current": torch.from_numpy(bond[..., 1:].copy()),
                  "charge": torch.from_numpy(charge), "spin_density": torch.from_numpy(mag)}
        return FieldResult(energy, fields, extras)

    def transmission(self, spins, energies) -> np.ndarray:
        """Caroli transmission ``Tr[Gamma_L G^r Gamma_R G^a]`` (spins summed) at real ``energies``: ``[M]`` or
        ``[B, M]`` for batched spins."""
        if not self.leads:
            raise NearsightError("transmission needs leads; this provider was built with leads=False")
        s, batched = self.spins_batch(spins)
        E = np.atleast_1d(np.asarray(energies, dtype=np.float64))
        if E.ndim != 1 or not np.all(np.isfinite(E)):
            raise NearsightError("energies must be a finite 1-D array of real energies")
        g = self._rgf(E.astype(np.complex128), self._column_blocks(s.numpy()), columns=True)
        sig = g["sig"][0]
        Gam = 1j * (sig - _dag(sig))
        G0N = g["cN"][0]                                                    # G_{0, Lx-1}
        T = np.einsum("kij,bkjl,klm,bkmi->bk", Gam, G0N, Gam, _dag(G0N)).real
        return T if batched else T[0]


def _flat(parts) -> np.ndarray:
    """``[B, M, ...]`` arrays -> one ``[M, K]`` array laid out part by part, each ``[B, ...]`` row-major."""
    M = parts[0].shape[1]
    return np.concatenate([np.moveaxis(p, 1, 0).reshape(M, -1) for p in parts], -1)


def _dag(a: np.ndarray) -> np.ndarray:
    return np.conj(np.swapaxes(a, -1, -2))
