"""The ``nearsight`` command: a thin registry over the library.

Each command lives in its own module with ``add_parser(subparsers)`` (which sets ``func``); registering a
command is adding its module name to ``COMMANDS``. Bad input surfaces as one line on stderr and exit code 2; a
failed write as one line and exit code 1; Ctrl-C as one line saying where the run stopped and exit code 130.
Warnings are one line each. A Ctrl-C while the command starts up (imports) is held until they are done and then
ends it with one line, so it never lands inside an import.
"""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import warnings

COMMANDS = ["fields", "simulate", "generate", "locality", "train", "train_shipped", "validate", "compare", "models",
            "analyze", "study"]


def version_line() -> str:
    import torch

    from .. import __version__
    from ..runtime import git_revision
    rev = git_revision()
    return f"nearsight {__version__} (torch {torch.__version__}" + (f", git {rev}" if rev else "") + ")"


def build_parser() -> argparse.ArgumentParser:
    from .common import Parser
    parser = Parser(prog="nearsight", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=version_line())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    held = []
    if argv is None:                     # a real command line: hold Ctrl-C during the imports
        signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        from ..errors import NearsightError, NearsightWarning
        parser = build_parser()
    finally:
        if argv is None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        print("nearsight: interrupted while starting; nothing was done", file=sys.stderr)
        return 130
    name = "nearsight"

    def one_line(message, category, filename, lineno, file=None, line=None):
        kind = "warning" if issubclass(category, NearsightWarning) else category.__name__
        print(f"{name}: {kind}: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default", NearsightWarning)
        warnings.showwarning = one_line
        args = parser.parse_args(argv)
        name = f"nearsight {args.command}"
        from ..runtime import set_command_line
        set_command_line(["nearsight", *(sys.argv[1:] if argv is None else argv)])
        try:
            rc = int(args.func(args) or 0)
            sys.stdout.flush()
        except NearsightError as exc:
            print(f"{name}: error: {exc}", file=sys.stderr)
            rc = exc.exit_code
        except KeyboardInterrupt as exc:
            print(f"{name}: {exc or 'interrupted'}", file=sys.stderr)
            rc = 130
        except BrokenPipeError:          # `nearsight models show X --json | head`: the reader left; say nothing
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            rc = 141
    if argv is None:     # a real command line: the work is over and its exit status decided; a Ctrl-C now (during
        signal.signal(signal.SIGINT, signal.SIG_IGN)     # interpreter teardown) must not turn it into a traceback
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
