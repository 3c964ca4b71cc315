"""The learning-curve driver: a plan over variants x nested fractions, sharding, runs that write results on the
external held-out files (split by kind), and the collected CSV, slopes and plot."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from ml_data import quench_dataset
from nearsight import NearsightError
from nearsight.training.curves import main, plan, shard, slopes


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cdata")
    return ([quench_dataset(str(d / "a.h5"), n_traj=9, steps=24, every=6, seed=1)],
            [quench_dataset(str(d / "ext.h5"), n_traj=2, steps=24, every=6, seed=5, L=7)])


def test_plan_and_shards(files):
    base = {"datasets": files[0], "val_datasets": files[1]}
    runs = plan(base, "out", [0.5, 0.25, 1.0], {"a": {"hidden": [4]}, "b": {"hidden": [8]}}, device="cuda")
    assert [r["name"] for r in runs] == ["a_f0p25", "a_f0p5", "a_f1", "b_f0p25", "b_f0p5", "b_f1"]
    assert all(r["config"]["device"] == "cuda" and r["config"]["external_every"] == 0 for r in runs)
    parts = [shard(runs, f"{i}/4") for i in range(4)]
    assert sorted(r["name"] for p in parts for r in p) == sorted(r["name"] for r in runs)
    with pytest.raises(NearsightError, match="--only"):
        shard(runs, "4/4")
    with pytest.raises(NearsightError, match="val_datasets"):
        plan({"datasets": files[0]}, "out")


def test_slope_of_a_power_law():
    rows = [{"variant": "v", "n_train_trajectories": n, "external_all": 0.8 * n ** -0.5} for n in (2, 4, 8, 16)]
    assert slopes(rows)["v"] == pytest.approx(-0.5)


def test_driver_end_to_end(files, tmp_path):
    cfg = {"datasets": files[0], "val_datasets": files[1], "descriptor": {"cutoff": 2.0}, "hidden": [8],
           "epochs": 2, "batch_size": 8, "split_time": 0.6}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "variants.yaml").write_text(yaml.safe_dump({"bp-8": {"hidden": [8]}}))
    args = ["--config", str(tmp_path / "base.yaml"), "--out", str(tmp_path / "c"), "--variants",
            str(tmp_path / "variants.yaml"), "--fractions", "0.34", "1"]
    assert main(args + ["--only", "0/2"]) == 0 and main(args + ["--only", "1/2"]) == 0
    assert main(args + ["--collect"]) == 0
    with open(tmp_path / "c" / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_train_trajectories"]) for r in rows] == [3, 7]      # 9 - 2 validation; ceil(0.34 * 7)
    for r in rows:
        for k in ("external_all", "external_disordered", "external_ordered", "internal_all"):
            assert 0 < float(r[k]) < 10, k
        d, o, a = (float(r[f"external_{k}"]) for k in ("disordered", "ordered", "all"))
        assert min(d, o) <= a + 1e-12 and a <= max(d, o) + 1e-12
    fits = json.loads((tmp_path / "c" / "slopes.json").read_text())
    want = np.polyfit(np.log([3, 7]), np.log([float(r["external_all"]) for r in rows]), 1)[0]
    assert fits["all"]["bp-8"] == pytest.approx(want)
    assert (tmp_path / "c" / "curves.png").read_bytes()[:4] == b"\x89PNG"
