"""The shipped configs form a complete pipeline: every dataset a training config names has a configs/data file
that makes it, and every relabel source / driver model it needs is itself made by a config (no cycles)."""
import glob
import importlib.util
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def test_every_training_config_can_be_regenerated_from_configs():
    spec = importlib.util.spec_from_file_location("train_shipped", os.path.join(ROOT, "examples", "train_shipped.py"))
    ts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ts)
    makers, trainers = ts.data_configs(), ts.train_configs()

    def needs_dataset(path, chain):
        maker = makers.get(os.path.normpath(path))
        assert maker is not None, f"{chain}: no configs/data file makes {path}"
        cfg = _load(maker)
        assert cfg["out"] == path
        if cfg.get("source"):
            needs_dataset(cfg["source"], chain + (maker,))
        if cfg.get("driver", "").endswith(".pt"):
            trainer = trainers.get(os.path.normpath(cfg["driver"]))
            assert trainer is not None, f"{maker}: no configs/train file writes the driver {cfg['driver']}"
            assert trainer not in chain, f"circular: {chain + (trainer,)}"
            needs_training(trainer, chain + (maker,))

    def needs_training(path, chain):
        cfg = _load(path)
        for d in list(cfg["datasets"]) + list(cfg.get("val_datasets") or []):
            needs_dataset(d, chain + (path,))

    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "train", "*.yaml")))
    assert paths
    for p in paths:
        needs_training(p, ())
