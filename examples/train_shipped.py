"""Regenerate a shipped model from one config: its ED data, its training, and (with --install) the packaged file.

    python examples/train_shipped.py triangular-120 [--install]

Reads ``configs/train/NAME.yaml``. Every dataset it names (training and held-out) that is missing is generated
first with ``nearsight generate`` from the ``configs/data/*.yaml`` whose ``out`` is that path (single-threaded
ED; the generation resumes block by block if interrupted). A data config that relabels another dataset
(``source``) needs that dataset first; one with a ``driver`` (an ML model that integrates the quenches, whose
frames ED labels) needs that model: if its file is missing, the ``configs/train/*.yaml`` that writes it is
trained first, the same way (a first-round model). Then ``nearsight train`` runs (it resumes from its
checkpoint). ``--install`` copies the model file and its card into ``src/nearsight/ml/models/`` so it loads by
name; the report ``NAME.md`` beside it is written by ``examples/validate_model.py --report``.
"""
import argparse
import functools
import glob
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def configs(kind: str) -> dict:
    """``configs/KIND/*.yaml`` (``kind``: data or train): absolute path -> parsed config, read once."""
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", kind, "*.yaml"))):
        with open(path) as f:
            out[path] = yaml.safe_load(f)
    return out


def model_file(cfg: dict) -> str:
    """The model file a training config writes: ``OUT/NAME.pt``."""
    return os.path.join(cfg["out"], (cfg.get("name") or os.path.basename(cfg["out"])) + ".pt")


def plan(cfg_path: str, missing_only: bool = True) -> list[tuple[str, str]]:
    """The steps that train ``cfg_path``, each after what it needs: ``("generate", data config)`` for a dataset
    (after the dataset it relabels, ``source``, and the training of the model that drives its quenches,
    ``driver``) and ``("train", training config)``, the last one ``cfg_path`` itself. With ``missing_only`` a
    dataset or driver model that exists is taken as it is; otherwise every step is listed."""
    makers = {os.path.normpath(c["out"]): p for p, c in configs("data").items()}
    trainers = {os.path.normpath(model_file(c)): p for p, c in configs("train").items()}
    steps: list[tuple[str, str]] = []

    def check_cycle(path, chain):
        if path in chain:
            sys.exit(f"circular dependency: {' -> '.join(chain + (path,))}")

    def need_dataset(path, chain):
        if missing_only and os.path.exists(path):
            return
        maker = makers.get(os.path.normpath(path))
        if maker is None:
            sys.exit(f"dataset {path!r} is missing and no configs/data/*.yaml has out: {path}")
        check_cycle(maker, chain)
        dcfg = configs("data")[maker]
        if dcfg.get("source"):
            need_dataset(dcfg["source"], chain + (maker,))
        driver = dcfg.get("driver")
        if driver and driver.endswith(".pt") and not (missing_only and os.path.exists(driver)):
            trainer = trainers.get(os.path.normpath(driver))
            if trainer is None:
                sys.exit(f"{maker} is driven by {driver!r}, and no configs/train/*.yaml writes that model")
            need_training(trainer, chain + (maker,))
        if ("generate", maker) not in steps:
            steps.append(("generate", maker))

    def need_training(path, chain):
        check_cycle(path, chain)
        cfg = configs("train")[path]
        for d in list(cfg["datasets"]) + list(cfg.get("val_datasets") or []):
            need_dataset(d, chain + (path,))
        if ("train", path) not in steps:
            steps.append(("train", path))

    need_training(os.path.abspath(cfg_path), ())
    return steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="model name: configs/train/NAME.yaml")
    ap.add_argument("--install", action="store_true", help="copy the trained model into the package")
    a = ap.parse_args()
    os.chdir(ROOT)
    cfg_path = os.path.join("configs", "train", f"{a.name}.yaml")
    if not os.path.exists(cfg_path):
        sys.exit(f"no training config {cfg_path!r}; available: "
                 f"{', '.join(sorted(os.path.basename(p)[:-5] for p in glob.glob('configs/train/*.yaml')))}")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}   # single-threaded ED
    for action, path in plan(cfg_path):
        print(f"{action}: {os.path.relpath(path, ROOT)}", flush=True)
        subprocess.run(["nearsight", action, path], check=True, env=env if action == "generate" else None)
    if a.install:
        model = model_file(configs("train")[os.path.abspath(cfg_path)])
        dest = os.path.join("src", "nearsight", "ml", "models")
        os.makedirs(dest, exist_ok=True)
        for src in (model, model[:-3] + ".card.json"):
            shutil.copy2(src, os.path.join(dest, os.path.basename(src)))
        print(f"installed {os.path.basename(model)[:-3]} into {dest}/")


if __name__ == "__main__":
    main()
