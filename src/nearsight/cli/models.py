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
        print(summary_line(name, card))
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
