"""``nearsight models``: list the shipped ML models; ``nearsight models show NAME_OR_PATH [--json]``: a card."""
from __future__ import annotations

import json


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="list shipped ML models or show a model's card",
                              description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    ls = sub.add_parser("list", help="list the models shipped with the package (the default)")
    ls.add_argument("--json", action="store_true", help="one JSON object: name -> card")
    ls.set_defaults(func=list_models)
    show = sub.add_parser("show", help="print a model's card")
    show.add_argument("model", help="shipped model name or path to a .pt model file")
    show.add_argument("--json", action="store_true", help="the card as one JSON object")
    show.set_defaults(func=show_model)
    p.set_defaults(func=list_models, json=False)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def held_out_text(card: dict) -> str:
    """The held-out transverse-field error a card records, by kind of frame where the card has the split
    (disordered / ordered, nearsight.training.metrics); an older card's numbers are printed as what they are."""
    held = card.get("held_out") or {}
    overall = held.get("transverse_rms_ratio")
    if isinstance(held.get("disordered"), dict) and isinstance(held.get("ordered"), dict):
        d, o = (held[k].get("transverse_rms_ratio") if held[k].get("n_frames") else None
                for k in ("disordered", "ordered"))
        split = held.get("split_time")
        return (f"held-out |h_perp| error: disordered {_pct(d)} / ordered {_pct(o)} / overall {_pct(overall)}"
                + (f" (disordered: quench frames at t < {split:g})" if split is not None else ""))
    if overall is None:
        return ""
    if held.get("early_transverse_rms_ratio") is not None:
        return (f"held-out |h_perp| error: overall {_pct(overall)}; this card predates the disordered/ordered kinds "
                f"and holds early {_pct(held['early_transverse_rms_ratio'])} / late "
                f"{_pct(held.get('late_transverse_rms_ratio'))} (frames at t <= / > the median time "
                f"{held.get('early_late_split_time', float('nan')):.3g}); by kind of frame: the model's report")
    return f"held-out |h_perp| error: overall {_pct(overall)} (all held-out frames pooled; no split on this card)"


def list_models(args) -> int:
    from ..ml.cards import load_card, shipped_models, summary_line
    ships = shipped_models()
    cards = {name: load_card(str(path)) for name, path in ships.items()}
    if getattr(args, "json", False):
        print(json.dumps(cards))
        return 0
    if not cards:
        print("no models are shipped with this installation; train one with 'nearsight train CONFIG.yaml'")
    for name, card in cards.items():
        held = held_out_text(card)
        print(summary_line(name, {k: v for k, v in card.items() if k != "held_out"})   # the error: split, below
              + (f"\n{'':24s} {held}" if held else ""))
    return 0


def show_model(args) -> int:
    from ..ml.cards import load_card
    card = load_card(args.model)
    if args.json:
        print(json.dumps(card))
        return 0
    for k, v in card.items():
        print(f"{k:18s} {json.dumps(v) if isinstance(v, (dict, list)) else v}")
    return 0
