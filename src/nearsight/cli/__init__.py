"""The ``nearsight`` command: a thin registry over the library.

Each command lives in its own module with ``add_parser(subparsers)`` (which sets ``func``); registering a
command is adding its module name to ``COMMANDS``. Bad input surfaces as one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import NearsightError

COMMANDS = ["fields", "simulate", "generate", "locality", "train", "models"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nearsight", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except NearsightError as exc:
        print(f"nearsight {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nearsight {args.command}: interrupted (a resumable run continues with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
