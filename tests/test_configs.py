"""The shipped configs form a complete pipeline: for every training config, ``examples/train_shipped.py`` finds a
configs/data file for each dataset it needs, the dataset each of those relabels and a training config for each
driver model, with no cycle, and orders the steps so that everything is made before it is used."""
import glob
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_training_config_can_be_regenerated_from_configs():
    spec = importlib.util.spec_from_file_location("train_shipped", os.path.join(ROOT, "examples", "train_shipped.py"))
    ts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ts)
    data, train = ts.configs("data"), ts.configs("train")
    paths = sorted(glob.glob(os.path.join(ROOT, "configs", "train", "*.yaml")))
    assert paths
    for p in paths:
        steps = ts.plan(p, missing_only=False)          # exits (a test failure) on a missing maker or a cycle
        assert steps[-1] == ("train", p) and len(set(steps)) == len(steps)
        made = set()                                    # datasets and model files made by the steps so far
        for action, path in steps:
            cfg = data[path] if action == "generate" else train[path]
            needs = (list(cfg["datasets"]) + list(cfg.get("val_datasets") or []) if action == "train" else
                     [x for x in (cfg.get("source"), cfg.get("driver")) if x and x.endswith((".h5", ".pt"))])
            assert all(os.path.normpath(n) in made for n in needs), f"{path} runs before {needs}"
            made.add(os.path.normpath(cfg["out"] if action == "generate" else ts.model_file(cfg)))
