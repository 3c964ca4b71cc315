"""System files: one YAML per physical system with its physics once and its datasets as named sampling specs.

    # configs/systems/NAME.yaml
    root: ../..                 # paths below are relative to this directory (itself relative to this file)
    data_dir: data              # spec NAME writes DATA_DIR/NAME.h5
    physics: {lattice: square, J: 6.0, mu: -4.4, kT: 0.01, solver: ed}    # shared by every spec
    sampling: {dt: 0.05, alpha: 0.5}                                      # defaults of every sampled spec
    specs:
      sqde_quench: {size: 12, initial: random, bath_kT: [0.005], replicas: 2, steps: 1500, every: 50, seed: 11}
      sqde01_quench: {relabel: sqde_quench, kT: 0.1}      # the configurations of another spec, labelled anew

A spec holds ``size``, any sampling key of ``nearsight generate`` (``bath_kT``, ``replicas``, ``steps``, ``every``,
``skip``, ``dt``, ``alpha``, ``scheme``, ``seed``, ``initial``, ``noise``, ``driver``, ``mu_window``) and may
override a physics key (e.g. ``kT`` of the labels). ``relabel: SPEC`` makes it a relabelling: no dynamics, the
configurations of SPEC's dataset (its lattice size) labelled with this spec's physics. :func:`load_system` checks
the file and expands every spec into the flat config ``nearsight generate`` reads
(``nearsight generate configs/systems/NAME.yaml --spec SPEC``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import NearsightError
from ..io import read_yaml

TOP_KEYS = ("name", "root", "data_dir", "physics", "sampling", "specs")
PHYSICS_KEYS = ("lattice", "J", "t", "t2", "B", "kT", "mu", "filling", "solver", "moments", "probe_distance")
SAMPLING_KEYS = ("bath_kT", "replicas", "steps", "every", "skip", "dt", "alpha", "scheme", "seed", "initial",
                 "noise", "driver", "mu_window")
SPEC_KEYS = ("size", "relabel")
#: keys whose string value names a file, relative to the system's root
PATH_KEYS = ("source", "driver", "out")


def is_path(key: str, value) -> bool:
    return isinstance(value, str) and (key in ("source", "out") or value.endswith((".pt", ".h5")))


@dataclass
class System:
    """A parsed system file: ``specs`` maps each spec name to its expanded generation config, paths as written
    (relative to ``root``, an absolute directory)."""
    path: str
    name: str
    root: str
    specs: dict

    def spec(self, name: str) -> dict:
        if name not in self.specs:
            raise NearsightError(f"{self.path!r} has no spec {name!r}; its specs: {', '.join(self.specs)}")
        return dict(self.specs[name])

    def resolved(self, name: str, cwd: str | None = None) -> dict:
        """The spec's generation config with its file paths made usable from ``cwd`` (default: the working
        directory): relative to it where the file lies below it, else absolute."""
        cwd = os.path.abspath(cwd or os.getcwd())
        out = self.spec(name)
        for k in PATH_KEYS:
            if is_path(k, out.get(k)) and not os.path.isabs(out[k]):
                full = os.path.normpath(os.path.join(self.root, out[k]))
                rel = os.path.relpath(full, cwd)
                out[k] = full if rel.startswith("..") else rel
        return out

    def dataset(self, name: str) -> str:
        """The absolute path of the dataset spec ``name`` writes."""
        return os.path.normpath(os.path.join(self.root, self.spec(name)["out"]))


def _mapping(value, what: str, path: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NearsightError(f"{path!r}: {what} must be a mapping, got {value!r}")
    return {str(k): v for k, v in value.items()}


def load_system(path: str) -> System:
    """Read and check a system file (module docstring); every spec expanded. One-line errors name the file."""
    raw = read_yaml(path, what="system file", keys_hint="keys (physics, sampling, specs)")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise NearsightError(f"{path!r}: unknown key(s) {', '.join(unknown)}; a system file has {', '.join(TOP_KEYS)}")
    physics = _mapping(raw.get("physics"), "physics", path)
    sampling = _mapping(raw.get("sampling"), "sampling", path)
    specs = _mapping(raw.get("specs"), "specs", path)
    if not specs:
        raise NearsightError(f"{path!r} names no specs: give 'specs: {{NAME: {{size: ..., ...}}}}'")
    for what, block, keys in (("physics", physics, PHYSICS_KEYS), ("sampling", sampling, SAMPLING_KEYS)):
        bad = sorted(set(block) - set(keys))
        if bad:
            raise NearsightError(f"{path!r}: unknown {what} key(s) {', '.join(bad)}; known: {', '.join(keys)}")
    if "lattice" not in physics:
        raise NearsightError(f"{path!r}: physics must name the lattice")
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), str(raw.get("root") or ".")))
    data_dir = str(raw.get("data_dir") or ".")
    out: dict = {}

    def expand(name: str, chain: tuple) -> dict:
        if name in out:
            return out[name]
        if name in chain:
            raise NearsightError(f"{path!r}: specs relabel each other in a circle: {' -> '.join(chain + (name,))}")
        spec = _mapping(specs[name], f"spec {name!r}", path)
        bad = sorted(set(spec) - set(SPEC_KEYS + PHYSICS_KEYS + SAMPLING_KEYS))
        if bad:
            raise NearsightError(f"{path!r}: spec {name!r} has unknown key(s) {', '.join(bad)}; known: "
                                 f"{', '.join(SPEC_KEYS + PHYSICS_KEYS + SAMPLING_KEYS)}")
        cfg = {**physics, **{k: v for k, v in spec.items() if k in PHYSICS_KEYS}}
        source = spec.get("relabel")
        if source is not None:
            if source not in specs:
                raise NearsightError(f"{path!r}: spec {name!r} relabels {source!r}, which is not a spec of this file")
            src = expand(source, chain + (name,))
            sampled = sorted(k for k in spec if k in SAMPLING_KEYS and k not in ("mu_window", "seed"))
            if sampled:
                raise NearsightError(f"{path!r}: spec {name!r} relabels {source!r} and runs no dynamics: drop "
                                     f"{', '.join(sampled)}")
            if spec.get("size", src["size"]) != src["size"]:
                raise NearsightError(f"{path!r}: spec {name!r} relabels {source!r} (size {src['size']}) but gives "
                                     f"size {spec['size']}")
            cfg.update(source=src["out"], size=src["size"])
            cfg.update({k: spec[k] for k in ("mu_window", "seed") if k in spec})
        else:
            if "size" not in spec:
                raise NearsightError(f"{path!r}: spec {name!r} gives no size")
            cfg.update({"size": spec["size"], **sampling, **{k: v for k, v in spec.items() if k in SAMPLING_KEYS}})
        cfg["out"] = os.path.join(data_dir, f"{name}.h5").replace(os.sep, "/")
        out[name] = cfg
        return cfg

    for name in specs:
        expand(str(name), ())
    return System(os.path.abspath(path), str(raw.get("name") or os.path.basename(path).rsplit(".", 1)[0]), root,
                  {n: out[n] for n in specs})


def is_system_config(cfg: dict) -> bool:
    """Whether a config read as YAML is a system file (it has ``specs``)."""
    return isinstance(cfg, dict) and "specs" in cfg
