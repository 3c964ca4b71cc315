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
import glob
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_configs() -> dict:
    """Dataset path -> the configs/data file that makes it."""
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "data", "*.yaml"))):
        with open(path) as f:
            cfg = yaml.safe_load(f)
        out[os.path.normpath(cfg["out"])] = path
    return out


def train_configs() -> dict:
    """Model file (OUT/NAME.pt) -> the configs/train file that writes it."""
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "train", "*.yaml"))):
        with open(path) as f:
            cfg = yaml.safe_load(f)
        name = cfg.get("name") or os.path.basename(cfg["out"])
        out[os.path.normpath(os.path.join(cfg["out"], name + ".pt"))] = path
    return out


def make_dataset(path: str, env: dict, seen: tuple) -> None:
    """Generate a missing dataset from its configs/data file, after what that file needs: the dataset it
    relabels (``source``) or the model that drives its quenches (``driver``, trained from configs/train)."""
    if os.path.exists(path):
        return
    maker = data_configs().get(os.path.normpath(path))
    if maker is None:
        sys.exit(f"dataset {path!r} is missing and no configs/data/*.yaml has out: {path}")
    with open(maker) as f:
        dcfg = yaml.safe_load(f)
    if dcfg.get("source"):
        make_dataset(dcfg["source"], env, seen + (maker,))
    driver = dcfg.get("driver")
    if driver and driver.endswith(".pt") and not os.path.exists(driver):
        trainer = train_configs().get(os.path.normpath(driver))
        if trainer is None:
            sys.exit(f"{maker} is driven by {driver!r}, which is missing, and no configs/train/*.yaml writes it")
        print(f"training the driver {driver} from {trainer}", flush=True)
        train(trainer, env, seen + (maker,))
    print(f"generating {path} from {maker}", flush=True)
    subprocess.run(["nearsight", "generate", maker], check=True, env=env)


def train(cfg_path: str, env: dict, seen: tuple = ()) -> dict:
    """Make every dataset ``cfg_path`` needs (and whatever those need), then train it."""
    if cfg_path in seen:
        sys.exit(f"circular dependency: {' -> '.join(seen + (cfg_path,))}")
    with open(cfg_path) as f:
        cfg = yaml.safe_load(f)
    for path in list(cfg["datasets"]) + list(cfg.get("val_datasets") or []):
        make_dataset(path, env, seen + (cfg_path,))
    subprocess.run(["nearsight", "train", cfg_path], check=True)
    return cfg


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
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cfg = train(cfg_path, env)
    if a.install:
        name = cfg.get("name") or os.path.basename(cfg["out"])
        dest = os.path.join("src", "nearsight", "ml", "models")
        os.makedirs(dest, exist_ok=True)
        for ext in (".pt", ".card.json"):
            shutil.copy2(os.path.join(cfg["out"], name + ext), os.path.join(dest, name + ext))
        print(f"installed {name} into {dest}/")


if __name__ == "__main__":
    main()
