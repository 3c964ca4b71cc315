"""Model files and their cards.

A model file is one ``torch.save`` dictionary, readable with ``torch.load(..., weights_only=True)`` (no pickled
code is ever executed)::

    {"format": "nearsight-ml-model", "version": 1,
     "card": {...},                      # JSON-able: see below
     "descriptor": {...},                # Descriptor.config(): rebuilt on any lattice of the same kind
     "network": {"hidden": [...], "activation": "silu", "dtype": "float32", "n_features": F},
     "state_dict": {...}}                # the MLP weights and normalization buffers (SiteMLP)

The card (design: every saved model carries it) holds, flat at the top level, the physics the labels were made
with — ``lattice`` (kind), ``t``, ``t2``, ``J``, ``B``, ``kT`` (electronic temperature of the labels), exactly one
of ``filling`` / ``mu`` (the other ``None``), ``ensemble`` — and the model: ``cutoff`` (true receptive radius of
a site energy; a field ``h_i = -dE/dS_i`` sums over the site energies within it, so it sees ``field_radius`` =
2 cutoff),
``n_features``, ``network``, ``dtype``, ``descriptor``, ``energy_reference`` (per site), ``training_data``
(provider, lattice sizes, frame and trajectory counts), ``held_out`` (errors on trajectories never trained on),
``training`` (the schedule), and ``name``, ``created``, ``nearsight_version``.

Two model families share the format, told apart by the payload's ``"family"``: ``"bp"`` (the Behler–Parrinello
model above; a file without the key is BP — the shipped models) and ``"mpnn"`` (the message-passing network of
:mod:`nearsight.ml.mpnn`), whose payload holds ``"network": MPNNModel.config()`` (everything to rebuild it on any
lattice of its kind) and ``"state_dict"``: the whole network's weights and normalization, and no descriptor. Its card
names ``"family": "mpnn"`` and needs no ``n_features``.

**mu-conditioned models** (issue 22, :mod:`nearsight.ml.canonical`): trained on labels over a window of chemical
potentials, their network takes ``mu`` as one global input (BP: ``network["n_globals"] = 1``; MPNN:
``n_globals = 1`` in its config) and the card holds ``mu_window`` ([lo, hi] of the labels), ``mu_conditioned: true``
and ``mu_input`` (``mu0``, ``mu_scale``, ``n_ref``); ``filling`` / ``mu`` are then at most one *default* ensemble
(both may be None) and the model runs at any ``mu`` in the window or at any filling reached there.
:func:`load_model` returns such a model wrapped in :class:`~nearsight.ml.canonical.MuModel`.

Shipped models live in ``src/nearsight/ml/models/NAME.pt``; :func:`load_model` takes such a name or a path and
returns either family.

**The format registry.** :data:`FORMATS` maps a payload's ``"format"`` to a :class:`ModelFormat`: what kind of model
the file holds, the function that loads it, and how to read its card. This module registers the conservative format
above; the driven (generalized-potential) models of :mod:`nearsight.ml.driven` register theirs from
:mod:`nearsight.ml.driven.files` (imported by :mod:`nearsight.ml`, so always present). :func:`load_card` reads the
card of any registered kind; a loader given a file of another kind names the loader it needs.
"""
from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..descriptors import build_descriptor
from ..errors import NearsightError
from ..hamiltonian import field_vector
from ..io import atomic_path
from ..lattice import Lattice
from ..runtime import provenance
from .canonical import MuModel, check_mu_input
from .mpnn import MPNNModel, build_mpnn
from .network import SiteEnergyModel, SiteMLP, dtype_from_name

FORMAT, VERSION = "nearsight-ml-model", 1
MODELS_DIR = Path(__file__).resolve().parent / "models"
PHYSICS_KEYS = ("J", "t", "t2", "B", "kT", "mu", "filling")
REQUIRED_CARD_KEYS = ("lattice", "t", "J", "kT", "cutoff", "n_features", "dtype", "network", "training_data")
#: model families: payload["family"] (absent: "bp") -> the payload keys it needs
FAMILIES = {"bp": ("card", "descriptor", "network", "state_dict"), "mpnn": ("card", "network", "state_dict")}
MPNN_CARD_KEYS = tuple(k for k in REQUIRED_CARD_KEYS if k != "n_features")


@dataclass(frozen=True)
class ModelFormat:
    """One kind of model file: ``kind`` (in words, for messages), ``loader`` (the function that loads it, named in
    errors) and ``card`` (``(payload, where) -> the validated card``)."""

    kind: str
    loader: str
    card: Callable[[dict, str], dict]


#: payload["format"] -> its ModelFormat (module docstring)
FORMATS: dict[str, ModelFormat] = {}


def register_format(name: str, fmt: ModelFormat) -> None:
    FORMATS[name] = fmt


def card_keys(card) -> tuple:
    """The keys a card must hold: those of its family (``card['family']``, default ``'bp'``)."""
    return MPNN_CARD_KEYS if isinstance(card, dict) and card.get("family") == "mpnn" else REQUIRED_CARD_KEYS


# ------------------------------------------------------------------------------------------------ cards
def validate_card(card, where: str = "model card", *, required=None,
                  advice: str = "the model file is incompatible — retrain it with 'nearsight train'") -> dict:
    """``card`` is a dict holding every key of ``required`` (default ``REQUIRED_CARD_KEYS``) and exactly one of
    ``filling`` / ``mu`` (a mu-conditioned card: ``mu_window``, ``mu_input`` and at most one of them);
    otherwise a NearsightError naming what is missing, followed by ``advice``."""
    if not isinstance(card, dict):
        raise NearsightError(f"{where} is not a dictionary; the model file is incompatible — retrain it")
    missing = [k for k in (card_keys(card) if required is None else required) if k not in card]
    if is_mu_card(card):
        missing += [k for k in ("mu_window", "mu_input") if card.get(k) is None]
        if card.get("filling") is not None and card.get("mu") is not None:
            missing.append("at most one default of filling / mu")
    elif (card.get("filling") is None) == (card.get("mu") is None):
        missing.append("filling or mu (exactly one)")
    if missing:
        raise NearsightError(f"{where} lacks {', '.join(missing)}; {advice}")
    return card


def is_mu_card(card) -> bool:
    """The card of a mu-conditioned model (trained over a window of mu; runs at any mu or filling)."""
    return isinstance(card, dict) and bool(card.get("mu_conditioned"))


def _same(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def check_physics(card: dict, given: dict, *, source: str = "the given parameters") -> None:
    """Raise if any non-None physics parameter in ``given`` contradicts the card (the card is authoritative)."""
    name = card.get("name", "the model")
    problems = []
    mu_model = is_mu_card(card)
    for key in PHYSICS_KEYS:
        v = given.get(key)
        if v is None:
            continue
        if mu_model and key in ("mu", "filling"):
            continue                 # a mu-conditioned model runs at any mu / filling (checked by MLProvider)
        ref = card.get(key)
        if key == "B":
            ref_v = field_vector(ref if ref is not None else (0.0, 0.0, 0.0), "the card's B")
            if not all(_same(a, b) for a, b in zip(field_vector(v), ref_v)):
                problems.append(f"B={','.join(f'{x:g}' for x in field_vector(v))} but the model has "
                                f"B={','.join(f'{x:g}' for x in ref_v)}")
            continue
        if key in ("mu", "filling") and ref is None:
            other = "filling" if key == "mu" else "mu"
            problems.append(f"{key}={v:g} was given but the model's labels are at fixed {other}="
                            f"{card.get(other)!r} (it is not mu-conditioned: only a model trained over a mu_window "
                            f"runs at another mu or filling, docs/canonical.md)")
            continue
        if key in ("mu", "filling") and not _same(v, ref):
            problems.append(f"{key}={v:g} but the model has {key}={ref!r} (it is not mu-conditioned: only a model "
                            f"trained over a mu_window runs at another {key}, docs/canonical.md)")
            continue
        if ref is None:
            ref = 0.0 if key == "t2" else None
        if ref is None or not _same(v, ref):
            problems.append(f"{key}={v:g} but the model has {key}={ref!r}")
    if problems:
        raise NearsightError(f"{source} contradict the card of {name}: {'; '.join(problems)}. "
                             f"The physics of an ML model is fixed by its training labels; drop these parameters "
                             f"(they are read from the card) or choose a model trained at these parameters")


def physics_of(card: dict) -> dict:
    """The s-d model parameters recorded in a card (for :class:`nearsight.hamiltonian.SDModel`)."""
    return {k: card.get(k) for k in PHYSICS_KEYS}


def summary_line(name: str, card: dict) -> str:
    held = card.get("held_out") or {}
    err = held.get("transverse_rms_ratio")
    err_s = (f"  held-out |h_perp| error {100 * err:.1f}% (all held-out frames pooled; by kind of frame in the "
             f"model's report)" if err is not None else "")
    if card.get("kind") == "generalized":
        g = card.get("geometry") or {}
        lo, hi = (card.get("biases") or [None, None])[:2]
        return (f"{name:24s} {'strip':10s} J={card['J']:g} t={card['t']:g} mu={card['mu']:g} kT={card['kT']:g} "
                f"driven (NEGF), bias {lo:g}..{hi:g}, {g.get('Lx')}x{g.get('Ly')} cutoff={card.get('cutoff', 0):g} "
                f"{card.get('dtype', '')}{err_s}")
    ens = f"n={card['filling']:g}" if card.get("filling") is not None else (
        f"mu={card['mu']:g}" if card.get("mu") is not None else "")
    if is_mu_card(card):
        lo, hi = card["mu_window"][:2]
        ens = f"mu in [{lo:g},{hi:g}]" + (f" (default {ens})" if ens else "")
    sizes = (card.get("training_data") or {}).get("lattice_sizes") or []
    sz = ",".join(f"{a}x{b}" for a, b in sizes)
    net = f"F={card['n_features']}" if card.get("family", "bp") == "bp" else str(card["family"])
    return (f"{name:24s} {card['lattice']:10s} J={card['J']:g} t={card['t']:g} {ens} kT={card['kT']:g} "
            f"cutoff={card['cutoff']:g} {net} {card['dtype']} trained on {sz}{err_s}")


# ------------------------------------------------------------------------------------------- model files
def save_model(path: str, model: SiteEnergyModel | MPNNModel, card: dict) -> str:
    """Write the model file atomically (tmp + rename); returns ``path``. Either family; the card is stored with
    ``family`` set (``'bp'`` or ``'mpnn'``)."""
    family = getattr(model, "family", "bp")
    if isinstance(model, MuModel):
        card = {**card, "mu_conditioned": True, "mu_input": dict(model.mu_input)}
        model = model.base
    elif getattr(model, "n_globals", 0) and is_mu_card(card):
        raise NearsightError("a mu-conditioned card needs the model wrapped in MuModel (its mu_input)")
    if card.get("family", family) != family:
        raise NearsightError(f"the card says family {card['family']!r} but the model is {family!r}; fix the card")
    card = {**card, "family": family, "provenance": card.get("provenance") or provenance()}
    validate_card(card)
    if family == "mpnn":
        payload = {"format": FORMAT, "version": VERSION, "family": "mpnn", "card": card, "network": model.config(),
                   "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    else:
        head = model.head
        payload = {"format": FORMAT, "version": VERSION, "family": "bp", "card": card,
                   "descriptor": model.descriptor.config(),
                   "network": {"hidden": list(head.hidden), "activation": head.activation,
                               "dtype": card["dtype"], "n_features": head.n_features,
                               **({"n_globals": head.n_globals} if head.n_globals else {})},
                   "state_dict": {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def shipped_models() -> dict[str, Path]:
    """Shipped model names -> files (``src/nearsight/ml/models/*.pt``)."""
    if not MODELS_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(MODELS_DIR.glob("*.pt"))}


def resolve_model_path(name_or_path: str) -> Path:
    if not name_or_path:
        raise NearsightError("no model given: name a shipped model ('nearsight models' lists them) or a model file")
    p = Path(os.path.expanduser(str(name_or_path)))
    if p.is_file():
        return p
    ships = shipped_models()
    if str(name_or_path) in ships:
        return ships[str(name_or_path)]
    if p.suffix == ".pt" or os.sep in str(name_or_path):
        raise NearsightError(f"model file {str(name_or_path)!r} does not exist")
    names = ", ".join(ships) or "none"
    raise NearsightError(f"no shipped model named {name_or_path!r} (shipped: {names}); give a name from "
                         f"'nearsight models' or a path to a .pt file made by 'nearsight train'")


def torch_load_safely(path: str):
    """``torch.load(weights_only=True)`` with every failure turned into one clear NearsightError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NearsightError(f"model file {path!r} does not exist") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, AttributeError, TypeError,
            KeyError, IndexError) as exc:
        # torch.load's errors on truncated/garbage input vary by version; none of them is usable
        raise NearsightError(f"model file {path!r} is corrupt or not a torch file ({type(exc).__name__}); "
                             f"retrain it or restore it from the package") from None
    except Exception as exc:  # weights_only refusals (UnpicklingError) and anything else torch raises
        raise NearsightError(f"model file {path!r} cannot be loaded safely ({type(exc).__name__}: it holds "
                             f"objects other than tensors and plain data); only files written by "
                             f"'nearsight train' are accepted") from None


def read_model_file(path) -> dict:
    """The raw payload of a model file, checked for format and completeness (clear errors otherwise)."""
    path = str(path)
    return check_payload(torch_load_safely(path), path)


def check_payload(payload, path: str) -> dict:
    """A loaded conservative-model payload, checked for format and completeness (clear errors otherwise)."""
    other = FORMATS.get(payload.get("format")) if isinstance(payload, dict) else None
    if other is not None and payload.get("format") != FORMAT:
        raise NearsightError(f"{path!r} is a {other.kind} model; load it with {other.loader}")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise NearsightError(f"{path!r} is not a nearsight model file (format "
                             f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}); "
                             f"pass a file made by 'nearsight train'")
    if payload.get("version") != VERSION:
        raise NearsightError(f"model file {path!r} has format version {payload.get('version')!r}, this nearsight "
                             f"reads version {VERSION}; retrain the model with this version")
    family = payload.get("family", "bp")
    if family not in FAMILIES:
        raise NearsightError(f"model file {path!r} is of family {family!r}; this nearsight reads "
                             f"{', '.join(FAMILIES)} — update nearsight or retrain the model")
    missing = [k for k in FAMILIES[family] if k not in payload]
    if missing:
        raise NearsightError(f"model file {path!r} lacks {', '.join(missing)}; it is incompatible — retrain it")
    card = payload["card"]
    if isinstance(card, dict) and card.get("family", "bp") != family:
        raise NearsightError(f"model file {path!r} holds a {family!r} network but its card says family "
                             f"{card.get('family')!r}; the file is inconsistent — retrain it")
    validate_card(card if family == "bp" or not isinstance(card, dict) else {**card, "family": family},
                  f"the card in {path!r}")
    return payload


def model_from_payload(payload: dict, lattice=None, *, where: str = "model file") -> SiteEnergyModel | MPNNModel:
    """Rebuild the model (either family) on ``lattice`` (default: the smallest training lattice) from a payload."""
    card, net = payload["card"], payload["network"]
    if lattice is None:
        sizes = (card.get("training_data") or {}).get("lattice_sizes") or []
        L1, L2 = min(sizes, key=lambda s: s[0] * s[1]) if sizes else (None, None)
        if L1 is None:
            raise NearsightError(f"{where}: the card names no training lattice; pass a lattice explicitly")
        lattice = Lattice(card["lattice"], int(L1), int(L2))
    if lattice.kind != card["lattice"]:
        raise NearsightError(f"{where} was trained on the {card['lattice']} lattice and cannot be used on "
                             f"{lattice.kind!r}; choose a model trained on {lattice.kind!r}")
    if payload.get("family", "bp") == "mpnn":
        return _mu_wrap(_mpnn_from_payload(payload, lattice, where), card, where)
    dtype = dtype_from_name(net.get("dtype", card["dtype"]))
    try:
        head = SiteMLP(int(net["n_features"]), net["hidden"], net["activation"], int(net.get("n_globals", 0)))
        head.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise NearsightError(f"{where} is incompatible with this network ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); retrain it") from None
    try:
        desc = build_descriptor(payload["descriptor"], lattice)
    except NearsightError as exc:
        raise NearsightError(f"{where}: {exc}") from None
    except Exception as exc:
        raise NearsightError(f"{where}: its descriptor settings cannot be rebuilt ({type(exc).__name__}: "
                             f"{str(exc)[:200]}); the file is incompatible with this nearsight — retrain it") from None
    model = SiteEnergyModel(desc, head, lattice, card=card).to(dtype=dtype)
    model.requires_grad_(False)
    return _mu_wrap(model.eval(), card, where)


def _mu_wrap(model, card: dict, where: str):
    """A mu-conditioned card's network wrapped in :class:`MuModel`; other models as they are."""
    if not is_mu_card(card):
        return model
    if int(getattr(model, "n_globals", 0)) != 1:
        raise NearsightError(f"{where}: the card says mu-conditioned but the network takes "
                             f"{getattr(model, 'n_globals', 0)} global inputs (needs 1); the file is inconsistent")
    return MuModel(model, check_mu_input(card.get("mu_input"), f"{where}: mu_input")).eval()


def _mpnn_from_payload(payload: dict, lattice, where: str) -> MPNNModel:
    net = payload["network"]
    if not isinstance(net, dict):
        raise NearsightError(f"{where}: its network settings are not a dictionary; the file is incompatible — retrain it")
    try:
        model = build_mpnn(net, lattice, dtype_from_name(net.get("dtype", payload["card"]["dtype"])))
    except NearsightError as exc:
        raise NearsightError(f"{where}: {exc}") from None
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise NearsightError(f"{where} is incompatible with this network ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); retrain it") from None
    model.card = dict(payload["card"])
    model.requires_grad_(False)
    return model.eval()


def load_model(name_or_path: str, lattice=None) -> SiteEnergyModel | MPNNModel:
    """Load a shipped model (either family) by name or a model file by path, on ``lattice`` (default: its
    training lattice).

    The card is at ``model.card``. Corrupt, foreign or incompatible files raise :class:`NearsightError`.
    """
    path = resolve_model_path(name_or_path)
    payload = read_model_file(path)
    model = model_from_payload(payload, lattice, where=f"model {str(name_or_path)!r}")
    model.card.setdefault("name", path.stem)
    model.card["path"] = str(path)
    return model


def load_card(name_or_path: str) -> dict:
    """The card of a shipped model (by name) or a model file of any registered format (:data:`FORMATS`)."""
    path = resolve_model_path(name_or_path)
    payload = torch_load_safely(str(path))
    fmt = FORMATS.get(payload.get("format")) if isinstance(payload, dict) else None
    card = dict(fmt.card(payload, str(path)) if fmt is not None else check_payload(payload, str(path))["card"])
    card.setdefault("name", path.stem)
    card["path"] = str(path)
    return card


register_format(FORMAT, ModelFormat("conservative (Behler–Parrinello or message-passing)", "nearsight.ml.load_model",
                                    lambda payload, where: check_payload(payload, where)["card"]))
