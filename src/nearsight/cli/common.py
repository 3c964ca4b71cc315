"""Arguments shared by several commands, and the one place that turns them into a field provider."""
from __future__ import annotations

import argparse

from ..errors import NearsightError
from ..hamiltonian import SDModel
from ..lattice import LATTICES, Lattice

SOLVERS = ("ed", "kpm", "ml", "negf")


def parse_vector(text: str) -> tuple[float, float, float]:
    try:
        v = tuple(float(x) for x in str(text).split(","))
    except ValueError:
        raise NearsightError(f"--B must be three numbers BX,BY,BZ, got {text!r}") from None
    if len(v) != 3:
        raise NearsightError(f"--B must be three numbers BX,BY,BZ, got {text!r}")
    return v


def add_physics_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """Lattice and s-d model parameters (design.md §1). With ``required=False`` they may come from a config."""
    g = p.add_argument_group("lattice and model")
    g.add_argument("--lattice", choices=LATTICES, required=required, default=None)
    g.add_argument("--size", type=int, required=required, default=None, help="L1 (and L2 unless --size2)")
    g.add_argument("--size2", type=int, default=None, help="L2 (default: L1)")
    g.add_argument("--t", type=float, default=None, help="nearest-neighbour hopping (default 1)")
    g.add_argument("--t2", type=float, default=None, help="second-neighbour hopping (default 0)")
    g.add_argument("--J", type=float, default=None, help="s-d coupling")
    ens = g.add_mutually_exclusive_group()
    ens.add_argument("--mu", type=float, default=None, help="chemical potential (grand canonical)")
    ens.add_argument("--filling", type=float, default=None, help="filling n = N_e/(2N) (canonical)")
    g.add_argument("--kT", type=float, default=None, help="electronic temperature (default 0)")
    g.add_argument("--B", type=str, default=None, help="Zeeman field BX,BY,BZ on the local spins")


def add_solver_args(p: argparse.ArgumentParser, *, solvers=SOLVERS) -> None:
    g = p.add_argument_group("field provider")
    g.add_argument("--solver", choices=solvers, default=None, help="field provider (default ed)")
    g.add_argument("--moments", type=int, default=None, help="KPM: Chebyshev moments")
    g.add_argument("--probe-distance", type=int, default=None, help="KPM: colouring distance of probing vectors")
    g.add_argument("--vectors", type=int, default=None, help="KPM: use R random vectors instead of probing")
    g.add_argument("--realizations", type=int, default=None,
                   help="KPM: independent draws of the probing phases (cost x K, probing error / sqrt(K)); default: auto")
    g.add_argument("--model", type=str, default=None, help="ML: shipped model name or path to a model file")
    g.add_argument("--bias", type=float, default=None,
                   help="NEGF: bias V, leads at mu +- V/2 (square lattice read as a strip open along x)")
    g.add_argument("--wide-band", type=float, default=None,
                   help="NEGF: wide-band leads with coupling GAMMA instead of the analytic semi-infinite leads")
    g.add_argument("--anisotropy", type=float, default=None,
                   help="add a classical easy-axis anisotropy -K sum S_z^2 to any solver (holds domain walls)")
    g.add_argument("--device", type=str, default=None, help="torch device (cpu, cuda)")


def physics_from(cfg: dict) -> tuple[Lattice, SDModel | None]:
    """Lattice and model from a flat dict of the physics keys (missing model keys -> model None)."""
    if cfg.get("lattice") is None or cfg.get("size") is None:
        raise NearsightError("give --lattice {square,triangular} and --size L")
    lattice = Lattice(cfg["lattice"], cfg["size"], cfg.get("size2"))
    if cfg.get("J") is None:
        return lattice, None
    B = cfg.get("B")
    B = parse_vector(B) if isinstance(B, str) else tuple(B) if B is not None else (0.0, 0.0, 0.0)
    model = SDModel(J=cfg["J"], t=cfg.get("t") if cfg.get("t") is not None else 1.0,
                    t2=cfg.get("t2") or 0.0, B=B, kT=cfg.get("kT") or 0.0,
                    mu=cfg.get("mu"), filling=cfg.get("filling"))
    return lattice, model


def build_provider(cfg: dict, lattice: Lattice, model: SDModel | None):
    """The field provider named by ``cfg['solver']`` (ed, kpm, ml, negf) for this lattice and model, plus a
    classical easy-axis anisotropy ``-K sum S_z^2`` when ``cfg['anisotropy'] = K`` is given.

    ``negf`` reads a square ``L1 x L2`` lattice as a strip open along x (leads at both ends, bias ``cfg['bias']``,
    wide-band coupling ``cfg['wide_band']`` if given) and periodic along y."""
    provider = _electron_provider(cfg, lattice, model)
    if cfg.get("anisotropy") is not None:
        from ..electrons import AnisotropyProvider, SumProvider
        return SumProvider(provider, AnisotropyProvider(provider.lattice, cfg["anisotropy"]))
    return provider


def _electron_provider(cfg: dict, lattice: Lattice, model: SDModel | None):
    solver = cfg.get("solver") or "ed"
    if cfg.get("wide_band") is not None and solver != "negf":
        raise NearsightError(f"--wide-band applies to --solver negf only (got --solver {solver})")
    if cfg.get("realizations") is not None and solver != "kpm":
        raise NearsightError(f"--realizations applies to --solver kpm only (got --solver {solver})")
    if cfg.get("bias") is not None and solver != "negf":
        raise NearsightError(f"--bias applies to --solver negf only (got --solver {solver})")
    if solver == "ml":
        from ..ml.provider import provider_from_cli
        return provider_from_cli(cfg, lattice, model)
    if model is None:
        raise NearsightError(f"solver {solver!r} needs the model: give --J and one of --mu / --filling")
    if solver == "ed":
        from ..electrons.ed import EDProvider
        return EDProvider(lattice, model, device=cfg.get("device"))
    if solver == "kpm":
        from ..electrons.kpm import KPMProvider
        kw = {k: cfg[k] for k in ("moments", "probe_distance", "vectors", "realizations", "device")
              if cfg.get(k) is not None}
        return KPMProvider(lattice, model, **kw)
    if solver == "negf":
        from ..electrons.negf import NEGFProvider
        return NEGFProvider(lattice, model, bias=cfg.get("bias") or 0.0, wide_band=cfg.get("wide_band"))
    raise NearsightError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")


def load_config(path: str | None) -> dict:
    """A YAML config as a flat dict (keys with '-' read as '_'); a clear error if missing or malformed."""
    if path is None:
        return {}
    import os

    import yaml
    if not os.path.exists(path):
        raise NearsightError(f"config file {path!r} does not exist")
    try:
        with open(path) as fh:
            cfg = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise NearsightError(f"config file {path!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise NearsightError(f"config file {path!r} must be a mapping of keys to values")
    return {str(k).replace("-", "_"): v for k, v in cfg.items()}


def merged(args: argparse.Namespace, cfg: dict, defaults: dict) -> dict:
    """defaults < config file < command-line flags that were given; unknown config keys are an error."""
    known = set(vars(args)) | set(defaults)
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise NearsightError(f"unknown config key(s) {', '.join(unknown)}; known keys: "
                             f"{', '.join(sorted(k for k in known if k not in ('func', 'command', 'config')))}")
    out = dict(defaults)
    out.update({k: v for k, v in cfg.items() if v is not None})
    out.update({k: v for k, v in vars(args).items() if v is not None and k not in ("func", "command")})
    return out
