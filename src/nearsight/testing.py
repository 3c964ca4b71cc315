"""The field-provider contract as reusable tests, and the property checks it is built from.

Every provider (ED, KPM, NEGF, the ML families, the driven model, the classical terms, sums of them, and any future
one) promises the same things, and :class:`ProviderContract` checks them through the public
:meth:`~nearsight.fields.FieldProvider.compute` only:

* **gradient** — ``h = -dE/dS`` by finite differences, for any small displacement of the 3-vectors (``"full"``) or
  along the unit sphere (``"tangent"``: the transverse part, all that moves a spin; the check for a driven model
  whose ``energy`` is the potential of one named part of its fields);
* **global O(3)** — ``E(RS) = E(S)`` and ``h(RS) = R h(S)`` for proper rotations, and **time reversal**
  ``E(-S) = E(S)``, ``h(-S) = -h(S)`` (the two together are O(3)); the contract fixtures use ``B = 0``;
* **lattice symmetries** — the generators of the space group: on a periodic lattice the translations ``a1``, ``a2``
  and (``L1 = L2``) the rotation C4 / C6 about a site and a mirror, which generate C4v / C6v; on a strip (open
  along ``x``, periodic along ``y``) the ``y`` translation, the mirror ``y -> -y`` and the mirror
  ``x -> Lx-1-x``, which under bias also reverses the bias. Equivariance under generators is equivariance
  under the group;
* **locality** — for a model with a receptive radius (``field_radius``, ``2 x cutoff`` for the ML models):
  spins farther than it from a site do not change that site's field;
* **batched == unbatched**.

A check that does not apply to a provider is named in ``not_applicable`` with the reason; it is then reported as
skipped with that reason (``unittest.SkipTest``, which pytest honours), so the exception is visible in every run.

Use (pytest collects the inherited ``test_*`` methods of a class named ``Test...``)::

    from nearsight.testing import ProviderContract

    class TestMyProviderContract(ProviderContract):
        tol_fields = 1e-10          # and why: what sets the rounding of this provider
        def make_provider(self):
            return MyProvider(Lattice("square", 4), ...)

The functions below (finite differences, rotations, lattice permutations, locality) are also usable on their own;
each returns a worst-case deviation, and the caller asserts it against a tolerance it justifies.
"""
from __future__ import annotations

import unittest

import numpy as np

# the field-provider interface (import it from its one home)
from .fields import FieldProvider

# ------------------------------------------------------------------------------------------- building blocks


def random_orthogonal(rng: np.random.Generator, improper: bool = False) -> np.ndarray:
    """A random 3x3 rotation (det +1), or an improper one (det -1) when ``improper``."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return -q if improper else q


def symmetry_permutations(geometry) -> dict[str, np.ndarray]:
    """Site permutations ``perm`` (spins ``S'[perm[i]] = S[i]``) of the generators of a geometry's symmetries.

    Periodic lattice: ``translate_a1``, ``translate_a2`` and, when ``L1 = L2``, the rotation about site 0 (C4 on
    the square lattice, C6 on the triangular: in integer coordinates ``n1 a1 + n2 a2`` it maps ``a1 -> a2``,
    ``a2 -> a2 - a1``) and a mirror (the diagonal, ``n1 <-> n2``). Strip (``kind == "strip"``): ``translate_y``,
    ``mirror_y`` (``y -> -y``) and ``mirror_x`` (``x -> Lx-1-x``, a symmetry only together with ``bias -> -bias``).
    """
    x, y = geometry.xy[:, 0], geometry.xy[:, 1]
    if geometry.kind == "strip":
        ops = {"translate_y": (x, y + 1), "mirror_y": (x, -y), "mirror_x": (geometry.L1 - 1 - x, y)}
    else:
        ops = {"translate_a1": (x + 1, y), "translate_a2": (x, y + 1)}
        if geometry.L1 == geometry.L2:
            if geometry.kind == "square":
                ops["rotate_C4"] = (-y, x)
            else:
                ops["rotate_C6"] = (-y, x + y)
            ops["mirror_diagonal"] = (y, x)
    return {k: np.asarray(geometry.index(*v)) for k, v in ops.items()}


def permute(spins: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """``out[..., perm[i], :] = spins[..., i, :]``: move every site's vector with its site."""
    out = np.empty_like(spins)
    out[..., perm, :] = spins
    return out


def tile(spins: np.ndarray, small, big) -> np.ndarray:
    """Periodic continuation of a configuration of ``small`` onto ``big`` (sizes must be multiples)."""
    x, y = big.xy[:, 0], big.xy[:, 1]
    return spins[..., small.index(x, y), :]


def _unit(rng: np.random.Generator, shape) -> np.ndarray:
    v = rng.standard_normal(shape)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------------------- checks


def batched_vs_single(provider: FieldProvider, spins: np.ndarray) -> float:
    """Max |difference| between a batched evaluation and one-by-one evaluations (energy and fields)."""
    res = provider.compute(spins)
    worst = 0.0
    for b in range(len(spins)):
        one = provider.compute(spins[b])
        worst = max(worst, float((res.energy[b] - one.energy).abs()), float((res.fields[b] - one.fields).abs().max()))
    return worst


def rotation_deviation(provider: FieldProvider, spins: np.ndarray, R: np.ndarray) -> tuple[float, float]:
    """(|E(RS) - E(S)|, max |h(RS) - R h(S)|): the energy is invariant and the fields co-rotate. ``R = -1`` is
    time reversal."""
    a = provider.compute(spins)
    b = provider.compute(spins @ R.T)
    h_rot = a.fields.cpu().numpy() @ R.T
    return (float(np.abs(b.energy.cpu().numpy() - a.energy.cpu().numpy()).max()),
            float(np.abs(b.fields.cpu().numpy() - h_rot).max()))


def symmetry_deviation(provider: FieldProvider, spins: np.ndarray, perm: np.ndarray,
                       image: FieldProvider | None = None) -> tuple[float, float]:
    """(|E'(gS) - E(S)|, max |h'(gS) - g h(S)|) for a site permutation ``g``; ``E'``, ``h'`` from ``image`` (the
    provider the operation maps ``provider`` to, e.g. at the reversed bias; default: the same provider)."""
    a = provider.compute(spins)
    b = (image or provider).compute(permute(spins, perm))
    return (float(np.abs(b.energy.cpu().numpy() - a.energy.cpu().numpy()).max()),
            float(np.abs(b.fields.cpu().numpy() - permute(a.fields.cpu().numpy(), perm)).max()))


def locality_change(provider: FieldProvider, spins: np.ndarray, site: int, radius: float, rng: np.random.Generator
                    ) -> tuple[float, float]:
    """Replace every spin farther than ``radius`` from ``site`` by a random one; return
    (max |change of h_site|, max |change of h_j| over all sites), the second for scale: the replacement must
    change fields somewhere, or the check says nothing."""
    far = provider.lattice.distances_from(site) > radius + 1e-9
    if not far.any():
        raise AssertionError(f"no site is farther than {radius} from site {site} on {provider.lattice!r}: take a "
                             f"larger lattice for the locality check")
    new = spins.copy()
    new[far] = _unit(rng, (int(far.sum()), 3))
    diff = np.abs(provider.compute(spins).fields.cpu().numpy() - provider.compute(new).fields.cpu().numpy()).max(-1)
    return float(diff[site]), float(diff.max())


def fd_gradient_error(provider: FieldProvider, spins: np.ndarray, rng: np.random.Generator, step: float = 5e-7,
                      n_dirs: int = 3) -> float:
    """Largest mismatch of the central difference of ``E`` along random 3-vector displacements ``d`` (one random
    unit vector per site, not tangent) and ``-sum_i h_i . d_i``, relative to ``sum_i |h_i . d_i|`` (the size of the
    terms, which a sum of random signs cannot make small): ``h = -dE/dS`` in every direction, the part along
    ``S`` included.

    Through ``compute``, whose validation accepts ``| |S| - 1 | <= 1e-6``: the default step ``5e-7`` stays inside it.
    Truncation ``~ step^2 E'''`` is ~1e-13; rounding ``~ eps_64 |E| / step`` is ~3e-8 absolute for ``|E| ~ 100``,
    ~1e-9 relative for fields of order 0.1 on 100 sites. A field off by a factor ``1 + x`` shows as ``~ x / sqrt(N)``.
    """
    S = np.asarray(spins, dtype=np.float64)
    h = provider.compute(S).fields.cpu().numpy()
    worst = 0.0
    for _ in range(n_dirs):
        d = _unit(rng, S.shape)
        num = (float(provider.compute(S + step * d).energy) - float(provider.compute(S - step * d).energy)) / (2 * step)
        terms = (h * d).sum(-1)
        worst = max(worst, abs(num + float(terms.sum())) / max(float(np.abs(terms).sum()), 1e-300))
    return worst


def tangent_fd_error(provider: FieldProvider, spins: np.ndarray, rng: np.random.Generator, theta: float = 1e-4,
                     n_dirs: int = 4, fields: str | None = None) -> float:
    """Relative mismatch of ``dE/dtheta`` and ``-sum_i h_i . u_i`` when every spin turns by ``theta`` along a
    random tangent direction ``u_i`` (staying on the unit sphere): checks the transverse part of ``h`` (or of the
    extra named ``fields``) against the energy — valid for any provider whose energy is a potential of it.

    Central differences at ``theta`` and ``theta/2`` combined by Richardson extrapolation: the ``theta^2``
    truncation term cancels, leaving ``O(theta^4)``. Energies with structure on an angular scale ``a`` have
    fourth derivatives ~ ``a^-4``: the nearsight descriptor's reference floor ``eps = 0.02`` makes ``a`` small,
    measured ~2e-6 relative at ``theta = 1e-3``, so ``theta = 1e-4`` leaves ~1e-10, plus rounding
    ``~ eps_64 |E| / theta`` (~1e-10 for |E| ~ 100).
    """
    S = np.asarray(spins, dtype=np.float64)
    res = provider.compute(S)
    h = (res.fields if fields is None else res.extras[fields]).cpu().numpy()

    def central(u, t):
        plus = S * np.cos(t) + u * np.sin(t)
        minus = S * np.cos(t) - u * np.sin(t)
        return (float(provider.compute(plus).energy) - float(provider.compute(minus).energy)) / (2 * t)

    worst = 0.0
    for _ in range(n_dirs):
        u = rng.standard_normal(S.shape)
        u -= (u * S).sum(-1, keepdims=True) * S
        u /= np.linalg.norm(u, axis=-1, keepdims=True)
        num = (4 * central(u, theta / 2) - central(u, theta)) / 3
        ana = -float((h * u).sum())
        worst = max(worst, abs(num - ana) / max(abs(ana), 1e-12))
    return worst


# ----------------------------------------------------------------------------------------------- contract

_PROVIDERS: dict[type, tuple] = {}


class ProviderContract:
    """The contract every field provider passes; subclass it in a ``Test...`` class (module docstring).

    Set in the subclass: :meth:`make_provider` (a small instance: tiny lattice, ``B = 0``) and, where they
    differ from the defaults, the tolerances with the reason for each, ``gradient``, ``gradient_fields``,
    ``locality_radius``, ``not_applicable`` and :meth:`make_bias_reversed_provider`.
    """

    #: absolute tolerance on energies in exact identities (symmetries, batching)
    tol_energy: float = 1e-9
    #: absolute tolerance on fields in exact identities (symmetries, batching, locality)
    tol_fields: float = 1e-10
    #: relative tolerance of the finite-difference gradient checks
    tol_gradient: float = 1e-6
    #: "full": h = -dE/dS for any small 3-vector displacement; "tangent": along the unit sphere only
    gradient: str = "full"
    #: the output whose (transverse part) is -dE/dS: None for ``fields``, or the name of an extra
    gradient_fields: str | None = None
    #: receptive radius of a field; None: the provider's ``field_radius`` attribute
    locality_radius: float | None = None
    #: check name ("gradient", "time_reversal", "lattice_symmetry", "locality", ...) -> why it does not apply
    not_applicable: dict[str, str] = {}
    #: configurations per check and the seed they are drawn from
    n_configs: int = 2
    seed: int = 0

    def make_provider(self) -> FieldProvider:  # pragma: no cover - abstract
        raise NotImplementedError("a ProviderContract subclass defines make_provider()")

    def make_bias_reversed_provider(self) -> FieldProvider | None:
        """The same provider at the reversed bias (for a strip's ``x -> Lx-1-x`` mirror); None: no bias."""
        return None

    # -------------------------------------------------------------------------------------- helpers
    def _made(self) -> tuple[FieldProvider, FieldProvider | None]:
        key = type(self)
        if key not in _PROVIDERS:
            _PROVIDERS[key] = (self.make_provider(), self.make_bias_reversed_provider())
        return _PROVIDERS[key]

    @property
    def provider(self) -> FieldProvider:
        return self._made()[0]

    def _rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, salt])

    def _spins(self, rng: np.random.Generator, batch: int | None = None) -> np.ndarray:
        return _unit(rng, (batch or self.n_configs, self.provider.lattice.N, 3))

    def _skip_if_not_applicable(self, check: str) -> None:
        if check in self.not_applicable:
            raise unittest.SkipTest(f"{check} does not apply to {type(self).__name__}: {self.not_applicable[check]}")

    # ---------------------------------------------------------------------------------------- checks
    def test_contract_gradient(self):
        if "gradient" in self.not_applicable and self.provider.conservative:
            raise AssertionError("a conservative provider must pass the gradient check: h = -dE/dS is what "
                                 "conservative means")
        self._skip_if_not_applicable("gradient")
        rng = self._rng(1)
        s = self._spins(rng, 1)[0]
        assert self.gradient in ("full", "tangent"), self.gradient
        if self.gradient == "full":
            assert self.gradient_fields is None, "the full gradient check compares the fields themselves"
            err = fd_gradient_error(self.provider, s, rng)
            assert err < self.tol_gradient, f"h != -dE/dS along 3-vector displacements: relative error {err:.2e}"
        err = tangent_fd_error(self.provider, s, rng, n_dirs=2, fields=self.gradient_fields)
        assert err < self.tol_gradient, f"h_perp != -(dE/dS)_perp on the sphere: relative error {err:.2e}"

    def test_contract_global_rotation(self):
        """A random proper rotation; an improper one too where time reversal applies (O(3) = SO(3) x {1, -1})."""
        self._skip_if_not_applicable("global_rotation")
        rng = self._rng(2)
        s = self._spins(rng)
        for improper in (False, True) if "time_reversal" not in self.not_applicable else (False,):
            dE, dh = rotation_deviation(self.provider, s, random_orthogonal(rng, improper))
            assert dE < self.tol_energy and dh < self.tol_fields, (improper, dE, dh)

    def test_contract_time_reversal(self):
        """S -> -S: the energy is even, the fields odd."""
        self._skip_if_not_applicable("time_reversal")
        dE, dh = rotation_deviation(self.provider, self._spins(self._rng(3)), -np.eye(3))
        assert dE < self.tol_energy and dh < self.tol_fields, (dE, dh)

    def test_contract_lattice_symmetry(self):
        self._skip_if_not_applicable("lattice_symmetry")
        provider, reversed_bias = self._made()
        rng = self._rng(4)
        s = self._spins(rng)
        ops = symmetry_permutations(provider.lattice)
        assert ops, "no lattice symmetry to check"
        for name, perm in ops.items():
            image = reversed_bias if name == "mirror_x" else None
            dE, dh = symmetry_deviation(provider, s, perm, image)
            assert dE < self.tol_energy and dh < self.tol_fields, (name, dE, dh)

    def test_contract_locality(self):
        """Spins beyond the receptive radius of a site leave its field unchanged, while the same replacement
        changes fields elsewhere (so the check is not satisfied trivially)."""
        self._skip_if_not_applicable("locality")
        radius = self.locality_radius if self.locality_radius is not None else getattr(self.provider,
                                                                                         "field_radius", None)
        if radius is None:
            raise AssertionError(f"{type(self).__name__}: give locality_radius, or say in not_applicable why "
                                 f"locality does not apply")
        rng = self._rng(5)
        lat = self.provider.lattice
        site = int(lat.index(0, lat.L2 // 2)) if lat.kind == "strip" else 0
        change, scale = locality_change(self.provider, self._spins(rng, 1)[0], site, radius, rng)
        assert scale > 1e-6, f"replacing the far spins changed no field ({scale:.1e}): the check is empty"
        assert change < self.tol_fields, f"spins beyond {radius} changed the field on site {site} by {change:.2e}"

    def test_contract_batched_equals_unbatched(self):
        self._skip_if_not_applicable("batching")
        dev = batched_vs_single(self.provider, self._spins(self._rng(6), 3))
        assert dev < max(self.tol_energy, self.tol_fields), dev
