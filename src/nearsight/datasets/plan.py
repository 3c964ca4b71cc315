"""The dependency planner of a shipped model: which datasets and models must be made, in which order.

A checkout holds ``configs/train/*.yaml`` (training configs; a dataset named in one is a path relative to the
checkout) and ``configs/systems/*.yaml`` (system files, :mod:`.systems`: each spec makes one dataset). To train
``configs/train/NAME.yaml`` every dataset it names (training and held-out) that is missing is generated first from
the spec that writes it; a spec that relabels another needs that dataset first, and one with a ``driver`` model
file (an ML model that integrates the quenches, whose frames the solver labels) needs that model: if the file is
missing, the training config that writes it is trained first, the same way. A training that fine-tunes
(``init: MODEL.pt``) needs its init model the same way. :func:`plan` lists the steps.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from functools import cached_property

from ..errors import NearsightError
from ..io import read_yaml
from .systems import System, load_system


@dataclass(frozen=True)
class Step:
    """``generate`` (``config``: a system file, ``spec``: its spec) or ``train`` (``config``: a training config)."""
    action: str
    config: str
    spec: str | None = None

    def argv(self) -> list[str]:
        """The ``nearsight`` arguments that perform the step."""
        return [self.action, self.config] + (["--spec", self.spec] if self.spec else [])

    def __str__(self) -> str:
        return " ".join(self.argv())


def model_file(cfg: dict) -> str:
    """The model file a training config writes: ``OUT/NAME.pt``."""
    return os.path.join(cfg["out"], (cfg.get("name") or os.path.basename(os.path.normpath(cfg["out"]))) + ".pt")


class Checkout:
    """The configs of a checkout at ``root``: its system files and training configs, read once."""

    def __init__(self, root: str = "."):
        self.root = os.path.abspath(root)

    def path(self, p: str) -> str:
        """A path of a config (relative to the checkout) as an absolute, normalized one."""
        return os.path.normpath(os.path.join(self.root, p))

    @cached_property
    def systems(self) -> dict[str, System]:
        return {p: load_system(p) for p in sorted(glob.glob(os.path.join(self.root, "configs", "systems", "*.yaml")))}

    @cached_property
    def trainings(self) -> dict[str, dict]:
        out = {}
        for p in sorted(glob.glob(os.path.join(self.root, "configs", "train", "*.yaml"))):
            cfg = read_yaml(p, what="training config")
            if not isinstance(cfg.get("out"), str):
                raise NearsightError(f"training config {p!r} names no out directory")
            out[p] = cfg
        return out

    @cached_property
    def makers(self) -> dict[str, tuple[str, str]]:
        """Absolute dataset path -> (system file, spec) that writes it."""
        out = {}
        for p, system in self.systems.items():
            for name in system.specs:
                ds = system.dataset(name)
                if ds in out:
                    raise NearsightError(f"two specs write {ds!r}: {out[ds][1]} ({out[ds][0]}) and {name} ({p})")
                out[ds] = (p, name)
        return out

    @cached_property
    def trainers(self) -> dict[str, str]:
        """Absolute model file -> the training config that writes it."""
        return {self.path(model_file(c)): p for p, c in self.trainings.items()}

    def training_config(self, name: str) -> str:
        p = os.path.join(self.root, "configs", "train", f"{name}.yaml")
        if not os.path.isfile(p):
            have = sorted(os.path.basename(q)[:-5] for q in self.trainings)
            raise NearsightError(f"no training config {os.path.relpath(p)!r}; available: "
                                 f"{', '.join(have) or 'none (is --root a nearsight checkout?)'}")
        return os.path.abspath(p)


def plan(checkout: Checkout, train_config: str, missing_only: bool = True, check=None) -> list[Step]:
    """The steps that train ``train_config`` (a path among ``checkout.trainings``), each after what it needs; the
    last one trains ``train_config`` itself. With ``missing_only`` a dataset or driver model that exists is taken
    as it is; otherwise every step is listed. ``check(system_file, spec)`` (e.g.
    :func:`nearsight.cli.generate.spec_mismatch`) is asked about every existing dataset that has a spec: a
    non-``None`` answer (how the dataset differs from what its spec makes now) is an error. Errors (a dataset no
    spec writes, a stale dataset, a driver no config trains, a circle) are raised before any step runs."""
    steps: list[Step] = []
    checked: set[str] = set()       # each dataset once (a source shared by several relabellings)

    def check_existing(path):
        maker = checkout.makers.get(path)
        if check is None or maker is None or path in checked:
            return
        checked.add(path)
        system = checkout.systems[maker[0]]
        source = system.spec(maker[1]).get("source")
        rel = os.path.relpath(path, checkout.root)
        if source and os.path.exists(src := os.path.normpath(os.path.join(system.root, source))):
            try:
                check_existing(src)         # a relabelling of a stale dataset is stale too: name both
            except NearsightError as exc:
                raise NearsightError(f"{exc}; {rel!r} was relabelled from it: move it away too") from None
        diff = check(*maker)
        if diff:
            raise NearsightError(f"dataset {rel!r} was made with other settings than spec {maker[1]} of "
                                 f"{os.path.relpath(maker[0], checkout.root)} gives now ({diff}); move {rel!r} "
                                 f"away to have it made again, or restore the spec")

    def check_cycle(key, chain):
        if key in chain:
            raise NearsightError(f"circular dependency: {' -> '.join(str(c) for c in chain + (key,))}")

    def need_dataset(path, chain):
        if missing_only and os.path.exists(path):
            check_existing(path)
            return
        maker = checkout.makers.get(path)
        if maker is None:
            raise NearsightError(f"dataset {os.path.relpath(path, checkout.root)!r} is missing and no spec of "
                                 f"configs/systems/*.yaml writes it")
        sys_path, spec = maker
        check_cycle(maker, chain)
        system = checkout.systems[sys_path]
        cfg = system.spec(spec)
        if cfg.get("source"):
            need_dataset(os.path.normpath(os.path.join(system.root, cfg["source"])), chain + (maker,))
        driver = cfg.get("driver")
        if isinstance(driver, str) and driver.endswith(".pt"):
            need_model(os.path.normpath(os.path.join(system.root, driver)), chain + (maker,),
                       f"spec {spec} of {sys_path} is driven by {driver!r}")
        step = Step("generate", sys_path, spec)
        if step not in steps:
            steps.append(step)

    def need_model(mpath, chain, who):
        if missing_only and os.path.exists(mpath):
            return
        trainer = checkout.trainers.get(mpath)
        if trainer is None:
            raise NearsightError(f"{who}, and no configs/train/*.yaml writes that model")
        need_training(trainer, chain)

    def need_training(path, chain):
        check_cycle(path, chain)
        cfg = checkout.trainings[path]
        init = cfg.get("init")
        if isinstance(init, str):           # fine-tuning: the init model is trained first
            need_model(checkout.path(init), chain + (path,),
                       f"{os.path.relpath(path, checkout.root)} starts from init {init!r}")
        for d in list(cfg.get("datasets") or []) + list(cfg.get("val_datasets") or []):
            need_dataset(checkout.path(d), chain + (path,))
        step = Step("train", path)
        if step not in steps:
            steps.append(step)

    need_training(os.path.abspath(train_config), ())
    return steps
