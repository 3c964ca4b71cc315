"""``nearsight study CONFIG.yaml [--set key=value ...]``: a coarsening study from one config.

It runs an ensemble of ML-LLG quenches (``run_llg`` with an :class:`~nearsight.ml.provider.MLProvider`, replicas
batched ``replicas_per_file`` to a trajectory file, on ``device``), analyzes them (:func:`.pipeline.analyze`),
optionally runs the KPM-LLG comparison of early-time ``L(t)`` on a smaller lattice from the same initial states,
and writes ``summary.md`` (model and ensemble, lattice, the exponents with confidence intervals, the window,
``L / L_system``, the finite-size and model caveats) beside the curves and pictures in ``out``.

Finished trajectory files are reused when their settings match (a rerun only re-analyzes), interrupted ones
resumed; ``--set`` overrides any key, dotted for sections (``--set size=24 replicas=2 steps=300
analysis.n_boot=200 kpm_compare.enabled=true``), so a smoke run and the production run share one config.
"""
from __future__ import annotations

import copy
import json
import os
import time

import yaml

from ..errors import NearsightError
from ..io import read_yaml
from ..lattice import Lattice

RUN_KEYS = {"name", "description", "model", "device", "size", "replicas", "replicas_per_file", "initial", "steps",
            "every", "dt", "alpha", "bath_kT", "scheme", "seed", "out", "analysis", "reference", "kpm_compare",
            "threads"}
DEFAULTS = {"device": "cpu", "replicas_per_file": 8, "initial": "random", "scheme": "heun", "seed": 1,
            "dt": 0.05, "alpha": 0.5, "threads": None, "description": "", "reference": {}, "analysis": {},
            "kpm_compare": {"enabled": False}}
ANALYSIS_KEYS = {"order", "window", "max_fraction", "span", "t_min", "n_boot", "threshold", "movie", "export"}
KPM_KEYS = {"enabled", "size", "replicas", "steps", "every", "moments", "probe_distance", "realizations", "device"}


def parse_overrides(items) -> dict:
    """``["size=32", "analysis.n_boot=100"]`` -> nested dict, values read as YAML scalars."""
    out = {}
    for item in items or []:
        for part in str(item).split():
            if "=" not in part:
                raise NearsightError(f"--set takes KEY=VALUE items (e.g. size=32 replicas=2), got {part!r}")
            key, val = part.split("=", 1)
            node = out
            keys = key.strip().replace("-", "_").split(".")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = yaml.safe_load(val)
    return out


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def load_study(path: str, overrides=None) -> dict:
    """The config merged over the defaults and under the overrides, checked before any work."""
    cfg = read_yaml(path, "study config")
    cfg = _merge(_merge(DEFAULTS, cfg), parse_overrides(overrides))
    for keys, known, where in ((cfg, RUN_KEYS, ""), (cfg["analysis"], ANALYSIS_KEYS, "analysis."),
                               (cfg["kpm_compare"], KPM_KEYS, "kpm_compare.")):
        bad = sorted(set(keys) - known)
        if bad:
            raise NearsightError(f"unknown study key(s) {', '.join(where + b for b in bad)}; known: "
                                 f"{', '.join(sorted(where + k for k in known))}")
    for k in ("model", "size", "replicas", "steps", "every", "bath_kT", "out"):
        if cfg.get(k) is None:
            raise NearsightError(f"study config {path!r} lacks {k!r}")
    for k in ("size", "replicas", "replicas_per_file", "steps", "every"):
        if not isinstance(cfg[k], int) or cfg[k] < 1:
            raise NearsightError(f"study key {k!r} must be an integer >= 1, got {cfg[k]!r}")
    cfg["config_path"] = os.path.abspath(path)
    cfg["overrides"] = list(overrides or [])
    return cfg


def _threads(cfg):
    if cfg.get("threads"):
        import torch
        torch.set_num_threads(int(cfg["threads"]))


def run_ensemble(provider, lattice: Lattice, cfg: dict, rundir: str, tag: str, *, replicas: int, steps: int,
                 every: int, log=print) -> tuple[list, dict]:
    """Run (or reuse / resume) ``replicas`` quenches in files of ``replicas_per_file``; returns the paths and the
    timing (wall seconds, steps and site-steps of the work done in this call)."""
    from ..dynamics.run import run_llg
    from ..states import make_state
    os.makedirs(rundir, exist_ok=True)
    per = int(cfg["replicas_per_file"])
    paths, wall, site_steps = [], 0.0, 0
    for b, start in enumerate(range(0, replicas, per)):
        n = min(per, replicas - start)
        seed = int(cfg["seed"]) + 1000 * b
        path = os.path.join(rundir, f"{tag}_{b:03d}.h5")
        paths.append(path)
        spins0 = make_state(cfg["initial"], lattice, seed=seed, batch=n)
        # a finished file is reused only if made with these settings, the provider's included (else refused)
        done = os.path.exists(path)
        res = run_llg(provider, spins0, steps=steps, dt=cfg["dt"], alpha=cfg["alpha"], kT=cfg["bath_kT"],
                      scheme=cfg["scheme"], seed=seed, every=every, out=path, save_fields=False,
                      resume=os.path.exists(path + ".partial"), progress=True, reuse=True,
                      attrs={"initial": cfg["initial"], "study": cfg.get("name", "")})
        if done:
            log(f"  reuse {path}")
            continue
        wall += res.wall_time
        site_steps += res.steps_done * n * lattice.N
        log(f"  {path}: {res.steps_done} steps x {n} replicas of {lattice.N} sites in {res.wall_time:.1f} s "
            f"({1e6 * res.wall_time / max(res.steps_done * n * lattice.N, 1):.2f} us per site-step)")
    return paths, {"wall_s": wall, "site_steps": site_steps}


def _ml_provider(cfg, lattice, device):
    from ..ml.provider import MLProvider
    return MLProvider(cfg["model"], lattice, device=device)


def _kpm_provider(card, kc, lattice):
    from ..electrons.kpm import KPMProvider
    from ..hamiltonian import SDModel
    model = SDModel(J=card["J"], t=card.get("t", 1.0), t2=card.get("t2") or 0.0, B=tuple(card.get("B") or (0, 0, 0)),
                    kT=card.get("kT") or 0.0, mu=card.get("mu"), filling=card.get("filling"))
    kw = {k: kc[k] for k in ("moments", "probe_distance", "realizations") if kc.get(k) is not None}
    return KPMProvider(lattice, model, device=kc.get("device"), **kw)


def run_study(cfg: dict, log=print) -> dict:
    """Run, analyze, compare and summarize one study (see the module docstring)."""
    from ..ml.cards import load_card
    from .pipeline import analyze
    from .summary import kpm_comparison, write_summary
    _threads(cfg)
    card = load_card(cfg["model"])
    lattice = Lattice(card["lattice"], cfg["size"])
    out = cfg["out"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "study_config.json"), "w") as fh:
        json.dump({k: v for k, v in cfg.items()}, fh, indent=1, default=str)
    log(f"study {cfg.get('name')}: {cfg['model']} on {lattice!r}, {cfg['replicas']} replicas, {cfg['steps']} steps "
        f"(t = {cfg['steps'] * cfg['dt']:g}), device {cfg['device']}")
    t0 = time.perf_counter()
    provider = _ml_provider(cfg, lattice, cfg["device"])
    paths, timing = run_ensemble(provider, lattice, cfg, os.path.join(out, "runs"), "ml", replicas=cfg["replicas"],
                                 steps=cfg["steps"], every=cfg["every"], log=log)
    timing["run_total_s"] = time.perf_counter() - t0
    a = cfg["analysis"]
    t1 = time.perf_counter()
    res = analyze(paths, os.path.join(out, "analysis"), order=a.get("order", "auto"),
                  window=a.get("window") if a.get("window") not in (None, "auto") else None,
                  threshold=a.get("threshold"), n_boot=int(a.get("n_boot", 1000)), make_movie=a.get("movie", True),
                  export=a.get("export", True), max_fraction=float(a.get("max_fraction", 0.25)),
                  span=float(a.get("span", 8.0)), t_min=float(a.get("t_min", 0.0)))
    timing["analysis_s"] = time.perf_counter() - t1
    comparison = None
    kc = cfg["kpm_compare"]
    if kc.get("enabled"):
        comparison = kpm_comparison(cfg, card, kc, log=log)
    path = write_summary(cfg, card, res, timing, comparison)
    log(f"summary -> {path}")
    res.pop("result", None)
    return {"summary": path, "analysis": res, "timing": timing, "comparison": comparison}

