"""The file format of driven (generalized-potential) models, registered in :data:`nearsight.ml.cards.FORMATS`.

A model file is one ``torch.save`` dictionary (read with ``weights_only=True``)::

    {"format": "nearsight-generalized-model", "version": 1,
     "card": {...},          # kind: generalized, geometry {type: strip|periodic, Lx, Ly}, t, J, kT, mu|filling, ...
     "descriptor": {...},    # Descriptor.config()
     "settings": {...},      # GeneralizedPotentialModel.settings(): driven inputs, stencils, network sizes, dtype
     "state_dict": {"v.<k>": ..., "w.<k>": ..., "a.<k>": ..., ...}}   # the site networks, by head tag
"""
from __future__ import annotations

import os

import torch

from ... import __version__
from ...errors import NearsightError
from ...io import atomic_path
from ..cards import FORMATS, ModelFormat, register_format, resolve_model_path, torch_load_safely, validate_card
from ..network import SiteMLP, dtype_from_name, dtype_name
from .model import GeneralizedPotentialModel, geometry_from_info, head_tags_of, parse_stencils

FORMAT, VERSION, KIND = "nearsight-generalized-model", 1, "generalized"
REQUIRED_CARD_KEYS = ("kind", "geometry", "t", "J", "kT", "training_data")


def generalized_card(model: GeneralizedPotentialModel, **physics) -> dict:
    """A card for ``model``: ``kind: generalized``, its geometry and settings, and the given physics keys
    (``t, J, kT, mu`` or ``filling``, ``B``, ``biases`` trained on, ``training_data``, ``name``, ...)."""
    card = {"kind": KIND, "geometry": dict(model.geometry_info), "cutoff": model.cutoff,
            "n_features": int(model.descriptor.n_features), "inputs": model.settings(),
            "dtype": dtype_name(model.dtype), "nearsight_version": __version__}
    card.update(physics)
    card.setdefault("training_data", {})
    return card


def validate_generalized_card(card, where: str = "model card") -> dict:
    if isinstance(card, dict) and card.get("kind") != KIND:
        raise NearsightError(f"{where} has kind {card.get('kind')!r}, not {KIND!r}: it is not a generalized-potential "
                             f"(driven-field) model; conservative Behler–Parrinello models load with "
                             f"nearsight.ml.load_model")
    return validate_card(card, where, required=REQUIRED_CARD_KEYS, advice="give the physics of the labels "
                         "(generalized_card(model, t=..., J=..., kT=..., mu=...))")


def save_generalized(path: str, model: GeneralizedPotentialModel, card: dict) -> str:
    """Write the model file atomically; ``card`` must be a generalized card (:func:`generalized_card`)."""
    validate_generalized_card(card)
    payload = {"format": FORMAT, "version": VERSION, "card": card, "descriptor": model.descriptor.config(),
               "settings": model.settings(),
               "state_dict": {f"{tag}.{k}": t.detach().cpu().clone()
                              for tag, head in zip(model.head_tags, model.heads)
                              for k, t in head.state_dict().items()}}
    with atomic_path(str(path)) as tmp:
        torch.save(payload, tmp)
    return str(path)


def load_generalized(name_or_path: str, geometry=None) -> GeneralizedPotentialModel:
    """Load a generalized-potential model on ``geometry`` (default: the card's). Bad files raise NearsightError."""
    path = str(resolve_model_path(name_or_path))
    payload = torch_load_safely(path)
    fmt = payload.get("format") if isinstance(payload, dict) else None
    other = FORMATS.get(fmt)
    if other is not None and fmt != FORMAT:
        raise NearsightError(f"{path!r} is a {other.kind} model, not a {KIND!r} model; load it with {other.loader}")
    if fmt != FORMAT:
        raise NearsightError(f"{path!r} is not a nearsight generalized-potential model file (format {fmt!r})")
    if payload.get("version") != VERSION:
        raise NearsightError(f"model file {path!r} has version {payload.get('version')!r}; this nearsight reads "
                             f"{VERSION} — retrain it")
    card = validate_generalized_card(payload.get("card"), f"the card in {path!r}")
    st = payload.get("settings") or {}
    dtype = dtype_from_name(st.get("dtype", "float32"))
    try:
        stencils = parse_stencils(st.get("transfer_stencils") or bool(st.get("spin_transfer", False)))
        heads = []
        for tag in head_tags_of(stencils):
            h = SiteMLP(int(st["n_features"]), st["hidden"], st["activation"]).to(dtype)   # dtype first: no rounding
            h.load_state_dict({k[len(tag) + 1:]: t for k, t in payload["state_dict"].items()
                               if k.startswith(tag + ".")})
            heads.append(h)
        geometry = geometry_from_info(card["geometry"]) if geometry is None else geometry
        model = GeneralizedPotentialModel(geometry, payload["descriptor"], lead_scales=st["lead_scales"],
                                          polar=st["polar"], mirror_symmetric=st["mirror_symmetric"],
                                          column_range=int(st.get("column_range", 0)),
                                          spin_transfer=stencils, heads=tuple(heads),
                                          card=card)
    except NearsightError as exc:
        raise NearsightError(f"model {path!r}: {exc}") from None
    except (KeyError, TypeError, RuntimeError) as exc:
        raise NearsightError(f"model file {path!r} is incompatible ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200]}); retrain it") from None
    model = model.to(dtype=dtype)
    model.requires_grad_(False)
    model.card.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    model.card["path"] = path
    return model.eval()


register_format(FORMAT, ModelFormat("generalized-potential (driven, NEGF-trained; it needs a bias and a strip)",
                                    "nearsight.ml.load_generalized or GeneralizedMLProvider",
                                    lambda payload, where: validate_generalized_card(payload.get("card"),
                                                                                     f"the card in {where!r}")))
