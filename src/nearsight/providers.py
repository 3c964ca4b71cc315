"""One factory from a spec to a field provider: what the command line, the examples and the benchmarks all call.

A spec is a flat dict (the keys of a command's config file; ``None`` means "not given")::

    geometry  lattice: square | triangular | strip (or a Lattice / Strip object), size, size2
    physics   J, t (1), t2 (0), B (0,0,0; three numbers or "BX,BY,BZ"), kT (0), mu | filling
    solver    ed (default) | kpm | negf | classical | ml
    options   kpm: moments, probe_distance, vectors, realizations   negf: bias, wide_band, tol   classical: J_H, B
              ml: model (a shipped name or a file; a driven model also needs bias)   any: anisotropy K, device

``ml`` takes the physics from the model's card: keys given in the spec are checked against it. A conservative model
runs on the periodic lattice; a driven (generalized-potential) model, like ``negf``, reads a square ``L1 x L2``
lattice as a strip open along x (or takes a Strip) and needs ``bias``. ``anisotropy: K`` adds a classical easy-axis
term ``-K sum S_z^2`` to any solver (:class:`~nearsight.fields.SumProvider`).

Errors are one line naming the offending key; ``flags=True`` names them as command-line flags (``--probe-distance``)
instead (the command line's spelling: this module is the one place where library messages know about flags).
"""
from __future__ import annotations

from .electrons import AnisotropyProvider, EDProvider, HeisenbergProvider, KPMProvider, NEGFProvider
from .errors import NearsightError
from .fields import FieldProvider, SumProvider
from .hamiltonian import SDModel, field_vector
from .lattice import LATTICES, Lattice, Strip
from .ml.cards import check_physics, is_mu_card, load_card, load_model
from .ml.driven import GeneralizedMLProvider, load_generalized
from .ml.provider import MLProvider

SOLVERS = ("ed", "kpm", "negf", "classical", "ml")
GEOMETRY_KEYS = ("lattice", "size", "size2")
PHYSICS_KEYS = ("J", "t", "t2", "B", "kT", "mu", "filling")
#: options that belong to one solver only (given with another: an error)
SOLVER_OPTIONS = {"moments": "kpm", "probe_distance": "kpm", "vectors": "kpm", "realizations": "kpm",
                  "wide_band": "negf", "tol": "negf", "J_H": "classical", "model": "ml"}
SPEC_KEYS = GEOMETRY_KEYS + PHYSICS_KEYS + ("solver", "bias", "anisotropy", "device") + tuple(SOLVER_OPTIONS)


class _Names:
    """How errors name a key: ``mu`` / ``solver='ed'`` (library), or ``--mu`` / ``--solver ed`` (``flags``)."""

    def __init__(self, flags: bool):
        self.flags = flags

    def __call__(self, key: str, value=None) -> str:
        if self.flags:
            flag = "--" + key.replace("_", "-")
            return flag if value is None else f"{flag} {value}"
        return key if value is None else f"{key}={value!r}"

    def ex(self, key: str, placeholder: str) -> str:
        """A key with a placeholder for its value: ``--size L`` / ``size=L``."""
        return f"--{key.replace('_', '-')} {placeholder}" if self.flags else f"{key}={placeholder}"


def _given(spec: dict) -> dict:
    if not isinstance(spec, dict):
        raise NearsightError(f"a provider spec is a dict of keys ({', '.join(SPEC_KEYS)}), got {type(spec).__name__}")
    return {k: v for k, v in spec.items() if v is not None}


def geometry_of(spec: dict, *, flags: bool = False) -> Lattice | Strip:
    """The lattice (or strip) of a spec: ``lattice`` a kind with ``size`` (and ``size2``), or a Lattice / Strip."""
    s, name = _given(spec), _Names(flags)
    geo = s.get("lattice")
    if isinstance(geo, (Lattice, Strip)):
        return geo
    if geo is None or s.get("size") is None:
        raise NearsightError(f"give {name.ex('lattice', '{' + ','.join(LATTICES) + '}')} and {name.ex('size', 'L')}")
    if geo == "strip":
        return Strip(s["size"], s.get("size2", 1))
    if geo not in LATTICES:
        raise NearsightError(f"{name('lattice')} must be one of {', '.join(LATTICES)} or strip, got {geo!r}")
    return Lattice(geo, s["size"], s.get("size2"))


def model_of(spec: dict, *, flags: bool = False) -> SDModel:
    """The s-d model of a spec's physics keys (defaults ``t = 1``, ``t2 = 0``, ``kT = 0``, ``B = 0``)."""
    s, name = _given(spec), _Names(flags)
    if s.get("J") is None or (s.get("mu") is None and s.get("filling") is None):
        raise NearsightError(f"solver {s.get('solver', 'ed')!r} needs the model: give {name('J')} and one of "
                             f"{name('mu')} / {name('filling')}")
    return SDModel(J=s["J"], t=s.get("t", 1.0), t2=s.get("t2", 0.0), B=field_vector(s.get("B", (0.0, 0.0, 0.0)),
                                                                                      name("B")),
                   kT=s.get("kT", 0.0), mu=s.get("mu"), filling=s.get("filling"))


def build_provider(spec: dict, *, flags: bool = False) -> FieldProvider:
    """The field provider a spec names (module docstring); one-line :class:`NearsightError` on a bad spec."""
    s, name = _given(spec), _Names(flags)
    unknown = sorted(set(s) - set(SPEC_KEYS))
    if unknown:
        raise NearsightError(f"unknown provider key(s) {', '.join(unknown)}; known: {', '.join(SPEC_KEYS)}")
    solver = s.get("solver", "ed")
    if solver not in SOLVERS:
        raise NearsightError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    for key, owner in SOLVER_OPTIONS.items():
        if key in s and solver != owner:
            raise NearsightError(f"{name(key)} applies to {name('solver', owner)} only (got {name('solver', solver)})")
    geometry = geometry_of(s, flags=flags)
    if solver == "ml":
        provider = _ml_provider(s, geometry, name)
    else:
        if "bias" in s and solver != "negf":
            raise NearsightError(f"{name('bias')} applies to {name('solver', 'negf')} or a driven ML model only "
                                 f"(got {name('solver', solver)})")
        if solver != "negf" and isinstance(geometry, Strip):
            raise NearsightError(f"solver {solver!r} runs on a periodic lattice; a strip (open along x, between "
                                 f"leads) is for {name('solver', 'negf')} and driven ML models")
        provider = _physics_provider(solver, s, geometry, name, flags)
    if "anisotropy" in s:
        return SumProvider(provider, AnisotropyProvider(provider.lattice, s["anisotropy"]))
    return provider


def _physics_provider(solver: str, s: dict, geometry, name: _Names, flags: bool) -> FieldProvider:
    if solver == "classical":
        return HeisenbergProvider(geometry, J_H=s.get("J_H", 0.0), B=field_vector(s.get("B", (0, 0, 0)), name("B")))
    model = model_of(s, flags=flags)
    if solver == "ed":
        return EDProvider(geometry, model, device=s.get("device"))
    if solver == "kpm":
        kw = {k: s[k] for k in ("moments", "probe_distance", "vectors", "realizations", "device") if k in s}
        return KPMProvider(geometry, model, **kw)
    kw = {"tol": s["tol"]} if "tol" in s else {}
    return NEGFProvider(geometry, model, bias=s.get("bias", 0.0), wide_band=s.get("wide_band"), **kw)


def _ml_provider(s: dict, geometry, name: _Names) -> FieldProvider:
    if not s.get("model"):
        raise NearsightError(f"{name('solver', 'ml')} needs {name.ex('model', 'NAME_OR_PATH')} (a shipped model listed "
                             f"by 'nearsight models', or a .pt file made by 'nearsight train')")
    card = load_card(s["model"])
    check_physics(card, s, source="options from the command line or config" if name.flags else "the spec's physics")
    if card.get("kind") == "generalized":
        lo, hi = (card.get("biases") or [None, None])[:2]
        trained = f" (trained on {lo:g}..{hi:g})" if lo is not None else ""
        if "bias" not in s:
            raise NearsightError(f"{card['name']} is a driven model: its fields depend on the bias; give "
                                 f"{name.ex('bias', 'V')}{trained}")
        if isinstance(geometry, Lattice):
            if geometry.kind != "square":
                raise NearsightError(f"{card['name']} is a driven model of a square strip; give "
                                     f"{name('lattice', 'square')} (read as a strip open along x, as for NEGF), "
                                     f"got {geometry.kind!r}")
            geometry = Strip.from_lattice(geometry)
        return GeneralizedMLProvider(load_generalized(card["path"], geometry), geometry, bias=s["bias"],
                                     device=s.get("device"))
    if "bias" in s:
        raise NearsightError(f"{name('bias')} applies to {name('solver', 'negf')} or a driven ML model only; "
                             f"{card['name']} is conservative")
    if isinstance(geometry, Strip):
        raise NearsightError(f"{card['name']} is a conservative model of a periodic lattice; a strip is for driven "
                             f"models")
    net = load_model(card["path"], geometry)
    if is_mu_card(card):
        return MLProvider(net, geometry, device=s.get("device"), mu=s.get("mu"), filling=s.get("filling"))
    return MLProvider(net, geometry, device=s.get("device"))
