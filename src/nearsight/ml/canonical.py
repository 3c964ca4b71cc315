"""Chemical-potential-conditioned models and the canonical solve (issue 22; physics in docs/canonical.md).

A mu-conditioned model learns the grand potential as a sum of local terms that know ``mu``:

    Omega(S, mu) = sum_i eps_i(env_i, mu),   g = (mu - mu0) / mu_scale,   N(S, mu) = -dOmega/dmu,
    eps_i = e_ref + scale * net(env_i, g) - n_ref (mu - mu0) - chi_ref (mu - mu0)^2 / 2,   n_i = -d eps_i/dmu

``net`` is either family with one global input (BP: the MLP takes ``[features, g]``; MPNN: ``globals [B, 1]``).
The quadratic in ``mu`` is a fixed baseline — the least-squares line ``n_ref + chi_ref (mu - mu0)`` through the
labels' counts per site — so the network learns only the configuration dependence of ``Omega`` about it.
``mu0, mu_scale`` (the centre and half-width of the labels' ``mu_window``), ``n_ref`` and ``chi_ref`` are stored
on the card as ``mu_input``; :class:`MuModel` wraps the network with them. The energy is the labels' ``Omega(mu)`` (plus Zeeman), in float64.

**Grand canonical** at a given ``mu``: fields ``-dOmega/dS`` at that ``mu`` and the count ``N = -dOmega/dmu``.
**Canonical** at ``N_e`` electrons: :func:`solve_count` finds, per configuration, the ``mu*`` in the trained window
with ``N(S, mu*) = N_e`` (safeguarded secant — Newton steps with the slope of the last two counts, no second
derivative — with a bisection fallback, stopped when ``|N - N_e| <= tol N_e``); the fields are the grand-canonical ones at ``mu*`` and the energy is the free energy
``F = Omega(mu*) + mu* N_e`` (``dF/dS = dOmega/dS`` at ``mu*``). A filling not reached inside the window, a solve
that does not converge, or ``dN/dmu <= 0`` at ``mu*`` (a learned Omega that is not concave in ``mu``: the solve is
ill-posed there) raise :class:`NearsightError` — never a silent result.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import NearsightError

#: default tolerance of the canonical solve, relative to N_e (the issue asks N_e held to 1e-8)
COUNT_TOL = 1e-10
MU_INPUT_KEYS = ("mu0", "mu_scale", "n_ref", "chi_ref")


def check_mu_input(mu_input, where: str = "the card's mu_input") -> dict:
    if not isinstance(mu_input, dict) or any(k not in mu_input for k in MU_INPUT_KEYS):
        raise NearsightError(f"{where} must hold {', '.join(MU_INPUT_KEYS)}; the model file is incompatible — "
                             f"retrain it")
    out = {k: float(mu_input[k]) for k in MU_INPUT_KEYS}
    if not all(math.isfinite(v) for v in out.values()) or out["mu_scale"] <= 0:
        raise NearsightError(f"{where} holds non-finite numbers or mu_scale <= 0 ({out}); retrain the model")
    return out


def is_mu_model(model) -> bool:
    return isinstance(model, MuModel)


class MuModel(nn.Module):
    """A network with one global input wrapped as ``forward(spins [B,N,3], mu) -> Omega [B]`` (float64).

    ``mu``: ``[B]`` (one per configuration), or ``[B, N]`` one per site (BP only: then ``-dOmega/dmu[b, i]`` is the
    site count ``n_i = -d eps_i/dmu``, since ``eps_i`` sees only its own input). The wrapped network is ``base``;
    everything else (``on_lattice``, ``dtype``, ``cutoff``, ``lattice``, ``card``, ``family``) is the base's.
    """

    def __init__(self, base: nn.Module, mu_input: dict):
        super().__init__()
        if int(getattr(base, "n_globals", 0)) != 1:
            raise NearsightError(f"a mu-conditioned model needs a network with exactly one global input "
                                 f"(n_globals = 1), got {getattr(base, 'n_globals', 0)}")
        self.base = base
        self.mu_input = check_mu_input(mu_input)
        self.mu0, self.mu_scale, self.n_ref, self.chi_ref = (self.mu_input[k] for k in MU_INPUT_KEYS)

    # ----------------------------------------------------------------------------------------- delegation
    family = property(lambda self: getattr(self.base, "family", "bp"))
    dtype = property(lambda self: self.base.dtype)
    cutoff = property(lambda self: float(self.base.cutoff))
    lattice = property(lambda self: self.base.lattice)

    @property
    def card(self) -> dict:
        return self.base.card

    @card.setter
    def card(self, value: dict) -> None:
        self.base.card = value

    @property
    def window(self) -> tuple[float, float]:
        w = self.card.get("mu_window") or [self.mu0 - self.mu_scale, self.mu0 + self.mu_scale]
        return float(w[0]), float(w[1])

    def on_lattice(self, lattice) -> "MuModel":
        base = self.base.on_lattice(lattice)
        return self if base is self.base else MuModel(base, self.mu_input)

    # ------------------------------------------------------------------------------------------- compute
    def _mu(self, mu, spins: torch.Tensor) -> torch.Tensor:
        m = torch.as_tensor(mu, dtype=torch.float64, device=spins.device)
        B, N = spins.shape[:2]
        if m.dim() == 0:
            m = m.expand(B)
        if m.shape not in ((B,), (B, N)):
            raise NearsightError(f"mu must be one number, one per configuration [{B}] or one per site [{B}, {N}], got "
                                 f"shape {tuple(m.shape)}")
        if m.dim() == 2 and self.family != "bp":
            raise NearsightError("a per-site mu (site densities) needs the bp family: a message-passing site energy "
                                 "sees its neighbours' inputs")
        return m

    def globals_of(self, mu: torch.Tensor) -> torch.Tensor:
        """The network input ``g = (mu - mu0) / mu_scale``: ``[B, 1]`` or ``[B, N, 1]`` in the model dtype."""
        return ((mu - self.mu0) / self.mu_scale).unsqueeze(-1).to(self.dtype)

    def baseline(self, mu: torch.Tensor, n_sites: int) -> torch.Tensor:
        """``-sum_i [n_ref (mu_i - mu0) + chi_ref (mu_i - mu0)^2 / 2]`` ``[B]`` in float64."""
        d = mu - self.mu0
        b = -(self.n_ref * d + 0.5 * self.chi_ref * d * d)
        return b.sum(-1) if d.dim() == 2 else n_sites * b

    def forward(self, spins: torch.Tensor, mu) -> torch.Tensor:
        m = self._mu(mu, spins)
        return self.base(spins, globals=self.globals_of(m)) + self.baseline(m, spins.shape[1])

    def energy_function(self, spins: torch.Tensor):
        """``f(mu, detached=False) -> Omega [B]`` at fixed ``spins``: for the BP family the descriptor is evaluated
        once (its graph to ``spins`` kept for the fields); ``detached=True`` cuts that graph (count iterations)."""
        if self.family != "bp":
            return lambda mu, detached=False: self(spins.detach() if detached else spins, mu)
        base = self.base
        d = base.descriptor
        x, pos = d(spins, ordered=False), d.feature_positions(spins.device)
        N = spins.shape[1]
        e0 = N * base.head.e_ref.to(torch.float64)

        def f(mu, detached=False):
            m = self._mu(mu, spins)
            fl = base.head.fluctuation(x.detach() if detached else x, pos, self.globals_of(m))
            return fl.to(torch.float64).sum(-1) + e0 + self.baseline(m, N)
        return f


# ---------------------------------------------------------------------------------------------- evaluation
def energy_fields_count(model: MuModel, spins: torch.Tensor, mu, *, create_graph: bool = False):
    """``(Omega [B], fields [B, N, 3], count [B], site_count [B, N] or None)`` at ``mu`` by one autograd pass:
    fields ``-dOmega/dS``, count ``N = -dOmega/dmu``; with a per-site ``mu [B, N]`` (BP) also ``n_i``.
    ``create_graph`` keeps the graph (training); otherwise everything is detached."""
    with torch.enable_grad():
        s = spins if spins.requires_grad else spins.detach().requires_grad_(True)
        m = model._mu(mu, s).detach().clone().requires_grad_(True)
        energy = model(s, m)
        gs, gm = torch.autograd.grad(energy.sum(), [s, m], create_graph=create_graph)
    per_site = -gm if m.dim() == 2 else None
    count = per_site.sum(-1) if per_site is not None else -gm
    if not create_graph:
        energy, gs, count = energy.detach(), gs.detach(), count.detach()
        per_site = per_site.detach() if per_site is not None else None
    return energy, -gs, count, per_site


def count_and_slope(f, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``N = -dOmega/dmu`` and ``dN/dmu = -d2 Omega/dmu2`` ``[B]`` (float64, detached) of ``f(mu) -> Omega [B]``
    by a double backward (the concavity check of a trained model; the canonical solve uses secants instead)."""
    with torch.enable_grad():
        m = mu.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(m).sum(), m, create_graph=True)
        n = -g
        if n.requires_grad:
            (dn,) = torch.autograd.grad(n.sum(), m, allow_unused=True)
            dn = torch.zeros_like(m) if dn is None else dn
        else:
            dn = torch.zeros_like(m)
    return n.detach().to(torch.float64), dn.detach().to(torch.float64)


def solve_count(count, target: float, window: tuple[float, float], mu_start: torch.Tensor, *,
                slope_start: torch.Tensor | None = None, slope_verified: bool = False, tol: float = COUNT_TOL,
                max_iter: int = 100) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Per configuration, the ``mu*`` in ``window`` with ``N(mu*) = target`` to ``|N - target| <= tol target``.

    ``count(mu [B]) -> N [B]``: the count only, no second derivative (a double backward through a message-passing
    network in float64 costs about 2.5 evaluations); a ``count`` that returns ``(N, dN/dmu)`` gets Newton's method
    with that slope instead (``benchmarks/bench_canonical.py`` compares the two). Safeguarded secant: each evaluation shrinks a bracket ``[a, b]``
    (``N(a) < target < N(b)`` as far as evaluated, starting from the window); the step is Newton's with the slope
    of the last two evaluations (the first with ``slope_start``, e.g. the previous call's ``dN/dmu``; none: bisection),
    taken when the slope is positive and the step lands strictly inside the bracket, else the bracket is bisected.
    Starts at ``mu_start`` (the previous call's ``mu*``: warm start).

    Returns ``(mu*, N(mu*), dN/dmu, evaluations)``. ``dN/dmu`` is the secant of the last two evaluations; a
    configuration that converged at its first evaluation keeps ``slope_start`` if ``slope_verified`` (it was measured
    by the previous call), else one more evaluation at ``mu* + h`` measures it. Raises :class:`NearsightError` when
    the window does not reach the target, the solve does not converge, or ``dN/dmu <= 0`` at ``mu*``.
    """
    lo, hi = float(window[0]), float(window[1])
    mu = mu_start.detach().to(torch.float64).clamp(lo, hi).clone()
    B = mu.shape[0]
    a, b = torch.full_like(mu, lo), torch.full_like(mu, hi)
    done = torch.zeros(B, dtype=torch.bool, device=mu.device)
    slope = (torch.full_like(mu, math.nan) if slope_start is None
             else slope_start.detach().to(device=mu.device, dtype=torch.float64).expand(B).clone())
    measured = torch.full_like(done, bool(slope_verified and slope_start is not None))
    n_out = torch.zeros_like(mu)
    atol = tol * abs(float(target))
    width_floor = 4 * torch.finfo(torch.float64).eps * max(abs(lo), abs(hi), 1.0)
    prev_mu = prev_n = None
    for it in range(1, max_iter + 1):
        n = count(mu)
        if isinstance(n, tuple):                              # an exact dN/dmu with the count: Newton proper
            n, exact = n
            slope, measured = torch.where(done, slope, exact), torch.ones_like(measured)
        elif prev_mu is not None:                             # the secant of this and the previous evaluation
            dm = mu - prev_mu
            moved = ~done & (dm != 0)
            slope = torch.where(moved, (n - prev_n) / torch.where(moved, dm, torch.ones_like(dm)), slope)
            measured = measured | moved
        r = n - target
        ok = ~done & (r.abs() <= atol)
        n_out = torch.where(ok, n, n_out)
        done = done | ok
        if bool(done.all()):
            break
        low = r < 0                                           # too few electrons: mu* lies above
        a = torch.where(~done & low, torch.maximum(a, mu), a)
        b = torch.where(~done & ~low, torch.minimum(b, mu), b)
        newton = mu - r / slope
        good = (slope > 0) & (newton > a) & (newton < b) & torch.isfinite(newton)
        step = torch.where(good, newton, 0.5 * (a + b))
        prev_mu, prev_n = mu, n
        mu = torch.where(done, mu, step)
        if bool(((b - a) <= width_floor)[~done].any()):
            break
    if not bool(done.all()):
        _fail(lambda m: _count_only(count(m)), target, (lo, hi), mu, done, n, tol)
    if not bool(measured.all()):                              # converged at the first evaluation: measure dN/dmu
        h = 1e-5 * (hi - lo)
        probe = torch.where(measured, mu, torch.where(mu + h <= hi, mu + h, mu - h))
        n_p = _count_only(count(probe))
        it += 1
        slope = torch.where(measured, slope, (n_p - n_out) / torch.where(measured, torch.ones_like(mu), probe - mu))
    bad = ~(slope > 0)
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise NearsightError(f"the learned count is not increasing in mu at mu* = {float(mu[k]):.6g} (configuration "
                             f"{k}: dN/dmu = {float(slope[k]):.3g} <= 0): the learned grand potential is not concave "
                             f"in mu there, so the canonical solve is ill-posed; retrain with more mu-window data or a "
                             f"larger lambda_count")
    return mu, n_out, slope, it


def _count_only(out):
    return out[0] if isinstance(out, tuple) else out


def _fail(count, target, window, mu, done, n, tol) -> None:
    k = int((~done).nonzero()[0])
    lo, hi = window
    n_edge = [float(count(torch.full_like(mu, e))[k]) for e in (lo, hi)]
    if not n_edge[0] <= target <= n_edge[1]:
        raise NearsightError(f"no chemical potential in the model's trained window [{lo:g}, {hi:g}] gives "
                             f"N_e = {target:g} electrons on configuration {k}: N ranges from {n_edge[0]:.6g} to "
                             f"{n_edge[1]:.6g} there. Choose a filling inside that range, or label and train over a "
                             f"mu_window that covers this filling")
    raise NearsightError(f"the canonical mu solve did not converge on configuration {k}: |N - N_e| = "
                         f"{abs(float(n[k]) - target):.3g} > {tol:g} N_e at mu = {float(mu[k]):.12g} (the learned count "
                         f"is not monotone in mu there); retrain with more mu-window data or a larger lambda_count")


def evaluate_canonical(model: MuModel, spins: torch.Tensor, n_electrons: float, mu_start: torch.Tensor, *,
                       slope_start: torch.Tensor | None = None, tol: float = COUNT_TOL):
    """Canonical evaluation of one batch: ``(F [B], fields [B, N, 3], mu* [B], N [B], dN/dmu [B], evaluations)``
    with ``F = Omega(mu*) + mu* N_e`` and the fields ``-dOmega/dS`` at ``mu*`` (module docstring).

    ``slope_start``: the previous call's ``dN/dmu`` (warm start; otherwise the baseline's ``chi_ref N`` is the first
    guess and the slope is measured). BP: the descriptor is evaluated once and only its head is iterated (Newton with
    the head's exact ``dN/dmu``, a double backward through the MLP alone), the fields come from one more backward at
    ``mu*``. Message passing: every evaluation is the whole network, so each returns
    the count and the fields together (one backward to ``mu`` and the spins) and the fields of the evaluation at
    ``mu*`` are kept: no evaluation after the solve."""
    ne = float(n_electrons)
    B, N = spins.shape[:2]
    guess = (torch.full((B,), model.chi_ref * N, dtype=torch.float64, device=spins.device)
             if slope_start is None else slope_start)
    with torch.enable_grad():
        s = spins.detach().requires_grad_(True)
        f = model.energy_function(s)
        if model.family == "bp":       # the MLP head alone is iterated: its exact dN/dmu is cheap (Newton proper)
            def count(mu):
                return count_and_slope(lambda x: f(x, detached=True), mu)
            mu, n, slope, iters = solve_count(count, ne, model.window, mu_start, slope_start=guess,
                                              slope_verified=slope_start is not None, tol=tol)
            omega = f(mu)
            (g,) = torch.autograd.grad(omega.sum(), s)
            return omega.detach() + mu * ne, -g.detach(), mu, n, slope, iters
        records = []

        def count(mu):
            m = mu.detach().clone().requires_grad_(True)
            omega = f(m)
            gs, gm = torch.autograd.grad(omega.sum(), [s, m])
            records.append((mu.detach().clone(), omega.detach(), gs.detach()))
            return (-gm).detach().to(torch.float64)
        mu, n, slope, iters = solve_count(count, ne, model.window, mu_start, slope_start=guess,
                                          slope_verified=slope_start is not None, tol=tol)
    # the evaluation at each configuration's mu*: the last one at exactly that mu (converged configurations are
    # evaluated again at their mu* while the others iterate, and a slope probe moves only the unmeasured ones)
    omega, grad = torch.empty_like(mu), torch.empty_like(records[0][2])
    found = torch.zeros_like(mu, dtype=torch.bool)
    for m_r, o_r, g_r in reversed(records):
        take = ~found & (m_r == mu)
        omega, found = torch.where(take, o_r.to(omega.dtype), omega), found | take
        grad = torch.where(take[:, None, None], g_r, grad)
        if bool(found.all()):
            break
    return omega + mu * ne, -grad, mu, n, slope, iters


def evaluate_grand(model: MuModel, spins: torch.Tensor, mu: torch.Tensor):
    """Grand-canonical evaluation at ``mu [B]``: ``(Omega [B], fields [B, N, 3], N [B])``."""
    e, h, n, _ = energy_fields_count(model, spins, mu)
    return e, h, n


def count_slopes(model: MuModel, spins: torch.Tensor, grid) -> torch.Tensor:
    """``dN/dmu [len(grid), B]`` at each ``mu`` of ``grid`` (the concavity check of a trained model's Omega)."""
    with torch.enable_grad():
        f = model.energy_function(spins.detach())
        out = [count_and_slope(lambda x: f(x, detached=True),
                               torch.full((spins.shape[0],), float(m), dtype=torch.float64, device=spins.device))[1]
               for m in grid]
    return torch.stack(out)
