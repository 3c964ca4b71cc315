"""Arguments shared by several commands, their translation into a provider spec (:mod:`nearsight.providers`
builds the provider), and the config file rules: keys are the long flag names, values are type-checked strictly,
relative paths are read against the config file's directory, flags given on the command line override the file."""
from __future__ import annotations

import argparse
import os

from ..errors import NearsightError, check_device, warn
from ..fields import FieldProvider
from ..io import check_writable, read_yaml
from ..lattice import LATTICES, Lattice
from ..providers import SOLVERS, SPEC_KEYS, build_provider, geometry_of
from ..runtime import configure_threads

PHYSICS_DEFAULTS = {"t": 1.0, "t2": 0.0, "kT": 0.0, "solver": "ed"}


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default: the parser's, or the command's DEFAULTS entry for options whose
    parser default is None (so that a config file can set them)."""

    def _get_help_string(self, action):
        help = action.help or ""
        if "%(default)" in help or not action.option_strings or action.default is argparse.SUPPRESS:
            return help
        shown = getattr(action, "shown_default", action.default)
        if shown is None or shown is False:
            return help
        return f"{help} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults (every command's parser is one, see ``cli.build_parser``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the new one's ``dest`` and warns (``new=`` names it)."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        warn(f"{option_string} is deprecated; use {self.new}")
        setattr(namespace, self.dest, values)


def show_defaults(p: argparse.ArgumentParser, defaults: dict) -> None:
    """Let ``--help`` show ``defaults[dest]`` for options whose parser default is None."""
    for a in p._actions:
        if a.default is None and a.dest in defaults and defaults[a.dest] is not None:
            a.shown_default = defaults[a.dest]


def add_physics_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Lattice and s-d model parameters (docs/conventions.md). With ``required=False`` they may come from a config."""
    g = p.add_argument_group("lattice and model")
    g.add_argument("--lattice", choices=LATTICES, required=required, default=None)
    g.add_argument("--size", type=int, required=required, default=None, help="L1 (and L2 unless --size2)")
    g.add_argument("--size2", type=int, default=None, help="L2 (default: L1)")
    g.add_argument("--t", type=float, default=None, help="nearest-neighbour hopping (the unit of energy)")
    g.add_argument("--t2", type=float, default=None, help="second-neighbour hopping")
    g.add_argument("--J", type=float, default=None, help="s-d coupling")
    ens = g.add_mutually_exclusive_group()
    ens.add_argument("--mu", type=float, default=None, help="chemical potential (grand canonical)")
    ens.add_argument("--filling", type=float, default=None, help="filling n = N_e/(2N) (canonical)")
    g.add_argument("--kT", type=float, default=None, help="electronic temperature (the LLG bath is --bath-kT)")
    g.add_argument("--B", type=str, default=None, help="Zeeman field BX,BY,BZ on the local spins")


def add_solver_args(p: argparse.ArgumentParser, *, solvers=SOLVERS) -> None:
    g = p.add_argument_group("field provider")
    g.add_argument("--solver", choices=solvers, default=None, help="field provider")
    g.add_argument("--moments", type=int, default=None, help="KPM: Chebyshev moments")
    g.add_argument("--probe-distance", type=int, default=None, help="KPM: colouring distance of probing vectors")
    g.add_argument("--vectors", type=int, default=None, help="KPM: use R random vectors instead of probing")
    g.add_argument("--realizations", type=int, default=None,
                   help="KPM: independent draws of the probing phases (cost x K, probing error / sqrt(K)); default: auto")
    g.add_argument("--model", type=str, default=None,
                   help="ML: shipped model name or path to a model file (a driven model, e.g. dw-strip, needs --bias)")
    g.add_argument("--bias", type=float, default=None,
                   help="NEGF or a driven ML model: bias V, leads at mu +- V/2 (square lattice read as a strip open "
                        "along x)")
    g.add_argument("--wide-band", type=float, default=None,
                   help="NEGF: wide-band leads with coupling GAMMA instead of the analytic semi-infinite leads")
    g.add_argument("--J-H", dest="J_H", type=float, default=None,
                   help="classical: Heisenberg exchange J_H, E = -J_H sum_<ij> S_i.S_j - B.sum_i S_i")
    g.add_argument("--anisotropy", type=float, default=None,
                   help="add a classical easy-axis anisotropy -K sum S_z^2 to any solver (holds domain walls)")
    g.add_argument("--device", type=str, default=None, help="torch device (cpu, cuda, cuda:N)")
    g.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the usable cores less those "
                        "other processes keep busy)")
    show_defaults(p, PHYSICS_DEFAULTS)


def provider_spec(cfg: dict) -> dict:
    """The provider keys of a command's settings (:data:`nearsight.providers.SPEC_KEYS`)."""
    return {k: cfg.get(k) for k in SPEC_KEYS}


def lattice_from(cfg: dict) -> Lattice:
    """The lattice of a command's settings (errors name the flags)."""
    return geometry_of(provider_spec(cfg), flags=True)


def provider_from(cfg: dict) -> FieldProvider:
    """The field provider of a command's settings: threads (``cfg['threads']``) and the device are settled first,
    before any work; then :func:`nearsight.providers.build_provider`, its errors naming the flags."""
    configure_threads(cfg.get("threads"))
    check_device(cfg.get("device"))
    return build_provider(provider_spec(cfg), flags=True)


PATH_KEYS = ("initial", "source", "driver", "model", "spins")


def load_config(path: str | None) -> dict:
    """A YAML config as a flat dict (keys with '-' read as '_'); a clear error if missing or malformed. Relative
    paths under :data:`PATH_KEYS` are read against the config file's directory (a path that exists only
    relative to the working directory is still found there, with a warning)."""
    if path is None:
        return {}
    cfg = read_yaml(path)
    cfg = {str(k).replace("-", "_"): v for k, v in cfg.items()}
    base = os.path.dirname(os.path.abspath(path))
    for k in PATH_KEYS:
        v = cfg.get(k)
        if isinstance(v, str) and _is_path(k, v) and not os.path.isabs(v):
            mine = os.path.join(base, v)
            if os.path.exists(mine) or not os.path.exists(v):
                cfg[k] = os.path.normpath(mine)
            elif os.path.abspath(v) != os.path.normpath(mine):
                warn(f"config {path!r}: {k} {v!r} exists only relative to the working directory; paths in a config "
                     f"are read relative to the config file: write {os.path.relpath(os.path.abspath(v), base)!r}")
    return cfg


def _is_path(key: str, value: str) -> bool:
    return key in ("source", "spins") or value.endswith((".npy", ".pt", ".h5"))


# keys whose value may also be a list of numbers in a config
LIST_KEYS = {"B": 3, "bath_kT": None, "radii": None}


def schema(p: argparse.ArgumentParser, defaults: dict) -> dict:
    """``key -> (kind, choices)`` of every option of ``p`` and every key of ``defaults`` (for config checking)."""
    out = {}
    for a in p._actions:
        if not a.option_strings or a.dest in ("help", "config", "version"):
            continue
        if a.nargs == 0:
            kind = "bool"
        else:
            kind = {int: "int", float: "float"}.get(a.type, "str")
            if isinstance(a.nargs, int) and a.nargs > 1:
                kind = f"list{a.nargs}:{kind}"
        out[a.dest] = (kind, tuple(a.choices) if a.choices else None)
    for k, v in defaults.items():
        if k not in out and v is not None:
            out[k] = ({bool: "bool", int: "int", float: "float"}.get(type(v), "str"), None)
    return out


def check_types(cfg: dict, types: dict, where: str) -> None:
    """Refuse a config value of the wrong type (``seed: abc``, ``save_fields: "false"``), naming key and type."""
    for k, v in cfg.items():
        if v is None or k not in types:
            continue
        kind, choices = types[k]
        if kind.startswith("list"):
            n, elem = kind[4:].split(":")
            ok = isinstance(v, (list, tuple)) and len(v) == int(n) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
            if not ok:
                raise NearsightError(f"{where}: {k} must be a list of {n} numbers, got {v!r}")
            continue
        if k in LIST_KEYS and kind == "str" and isinstance(v, (list, tuple)):
            n = LIST_KEYS[k]
            ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) and (n is None or len(v) == n)
            if not ok:
                raise NearsightError(f"{where}: {k} must be a list of {n or 'some'} numbers, got {v!r}")
            continue
        ok = {"bool": lambda x: isinstance(x, bool),
              "int": lambda x: isinstance(x, int) and not isinstance(x, bool),
              "float": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
              "str": lambda x: isinstance(x, str) or (k in LIST_KEYS and isinstance(x, (int, float))
                                                      and not isinstance(x, bool))}[kind](v)
        if not ok:
            want = {"bool": "true or false (unquoted)", "int": "an integer", "float": "a number",
                    "str": "a string"}[kind]
            raise NearsightError(f"{where}: {k} must be {want}, got {v!r} ({type(v).__name__})")
        if choices and v not in choices:
            raise NearsightError(f"{where}: {k} must be one of {', '.join(map(str, choices))}, got {v!r}")


def merged(args: argparse.Namespace, cfg: dict, defaults: dict, *, aliases: dict | None = None) -> dict:
    """defaults < config file < command-line flags that were given; unknown config keys and values of the wrong
    type are errors. ``aliases`` maps deprecated config keys to their names (used with a warning)."""
    cfg = dict(cfg)
    for old, new in (aliases or {}).items():
        if old in cfg:
            if cfg.get(new) is not None:
                raise NearsightError(f"config gives both {old} and {new}; {old} is the old name of {new}: keep {new}")
            warn(f"config key {old!r} is deprecated; call it {new!r}")
            cfg[new] = cfg.pop(old)
    hidden = {"func", "command", "config"}
    known = {k for k in vars(args) if not k.startswith("_")} | set(defaults)
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise NearsightError(f"unknown config key(s) {', '.join(unknown)}; known keys: "
                             f"{', '.join(sorted(k for k in known if k not in hidden))}")
    types = getattr(args, "_types", None)
    if types:
        check_types(cfg, types, "config")
    out = dict(defaults)
    out.update({k: v for k, v in cfg.items() if v is not None})
    out.update({k: v for k, v in vars(args).items() if v is not None and k not in hidden and not k.startswith("_")})
    out["_given"] = {k for k, v in cfg.items() if v is not None} | {
        k for k, v in vars(args).items() if v is not None and not k.startswith("_")}
    return out


def check_run_numbers(cfg: dict, bounds: dict) -> None:
    """Integer settings within bounds before any work: ``bounds = {key: minimum}``."""
    for k, lo in bounds.items():
        v = cfg.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
            raise NearsightError(f"--{k.replace('_', '-')} must be an integer >= {lo}, got {v!r}")


def output_path(path: str, overwrite: bool, flag: str = "--out") -> None:
    """One policy for every command's output: an existing file is refused unless ``--overwrite``; a directory or
    an unwritable place is refused before any work."""
    check_writable(path, flag)
    if os.path.exists(path) and not overwrite:
        raise NearsightError(f"{flag} {path!r} exists; choose another {flag}, or pass --overwrite to replace it")
