"""``nearsight simulate`` under torchrun (issue 24): replicas over ranks and one lattice over ranks, spawned here.

Two CPU processes (gloo) launched by ``python -m torch.distributed.run``: the ensemble on 2 ranks equals the one on
1 rank bit for bit (per-replica noise streams), and a domain-decomposed run with global noise follows the
single-process ``nearsight simulate`` run (float32 model: summation order differs, so to rounding, 1e-7 here).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from nearsight.trajectory import read_trajectory

ARGS = ["--lattice", "square", "--size", "16", "--solver", "ml", "--model", "square-double-exchange", "--steps",
        "6", "--every", "3", "--bath-kT", "0.01", "--seed", "4", "--threads", "1"]


def _run(tmp_path, nproc, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pre = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] \
        if nproc else [sys.executable]
    r = subprocess.run([*pre, "-m", "nearsight", "simulate", *ARGS, *extra], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r


def test_replicas_over_ranks_equal_one_rank_bit_for_bit(tmp_path):
    out = _run(tmp_path, 2, "--replicas", "3", "--out", "two.h5")
    assert "on 2 ranks" in out.stdout
    _run(tmp_path, 1, "--replicas", "3", "--out", "one.h5")
    a, attrs = read_trajectory(str(tmp_path / "two.h5"))
    b, _ = read_trajectory(str(tmp_path / "one.h5"))
    assert a["spins"].shape == (3, 3, 256, 3) and attrs["parallel"] == "replicas"
    assert np.array_equal(a["spins"], b["spins"]) and np.array_equal(a["energy"], b["energy"])
    # an existing output is replaced only with --overwrite, by the writer's own policy (rank 0)
    _run(tmp_path, 2, "--replicas", "3", "--out", "one.h5", "--overwrite")
    c, _ = read_trajectory(str(tmp_path / "one.h5"))
    assert np.array_equal(c["spins"], a["spins"])


def test_decomposed_run_follows_the_single_process_run(tmp_path):
    _run(tmp_path, 2, "--replicas", "1", "--decompose", "--out", "dd.h5")
    _run(tmp_path, 0, "--replicas", "1", "--out", "single.h5")
    a, attrs = read_trajectory(str(tmp_path / "dd.h5"))
    b, _ = read_trajectory(str(tmp_path / "single.h5"))
    assert attrs["parallel"] == "strips" and attrs["noise_streams"] == "global"
    assert a["spins"].shape == b["spins"].shape
    assert np.abs(a["spins"] - b["spins"]).max() < 1e-7
    assert np.abs(a["spins"][-1] - a["spins"][0]).max() > 1e-2        # the spins did move


def test_decompose_outside_torchrun_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "nearsight", "simulate", *ARGS, "--decompose", "--out", "x.h5"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")})
    assert r.returncode != 0 and "torchrun" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_decompose_refuses_a_solver_without_cutoff(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "nearsight", "simulate", "--lattice", "square", "--size", "4", "--J", "2", "--mu",
                        "0", "--solver", "ed", "--steps", "2", "--decompose", "--out", "e.h5"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--decompose needs an ML model" in (r.stdout + r.stderr)


def test_train_under_torchrun_equals_one_process(tmp_path):
    """Data-parallel ``nearsight train`` on 2 ranks takes the single-process steps (float64, 3 epochs: the weights
    agree to reduction-order rounding; batch size 5 on 2 ranks leaves uneven shards, 1-frame batches empty ones)."""
    import yaml
    from ml_data import quench_dataset
    from nearsight.ml.cards import torch_load_safely

    data = quench_dataset(str(tmp_path / "d.h5"), n_traj=6, steps=20, every=4, seed=3)
    base = {"datasets": [data], "descriptor": {"cutoff": 2.0}, "hidden": [8, 8], "epochs": 3, "batch_size": 5,
            "lr": 1e-2, "dtype": "float64", "seed": 0, "progress": False, "val_fraction": 0.34, "name": "m"}
    weights = {}
    for nproc in (0, 2):
        out = tmp_path / f"run{nproc}"
        (tmp_path / f"c{nproc}.yaml").write_text(yaml.safe_dump({**base, "out": str(out)}))
        pre = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] \
            if nproc else [sys.executable]
        r = subprocess.run([*pre, "-m", "nearsight", "train", str(tmp_path / f"c{nproc}.yaml"), "--threads", "1"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        state = torch_load_safely(str(out / "m.pt"))["state_dict"]
        weights[nproc] = np.concatenate([v.double().numpy().ravel() for k, v in sorted(state.items())
                                         if v.dtype.is_floating_point])
    assert np.abs(weights[0] - weights[2]).max() < 1e-9 * np.abs(weights[0]).max()


def test_train_under_torchrun_refuses_the_descriptor_cache(tmp_path):
    """``cache_descriptors: true`` cannot be honoured by data-parallel training: a one-line error on every rank,
    before anything is written (it used to be ignored silently)."""
    import yaml
    from ml_data import quench_dataset

    data = quench_dataset(str(tmp_path / "d.h5"), n_traj=4, steps=8, every=4, seed=3)
    cfg = {"datasets": [data], "descriptor": {"cutoff": 2.0}, "hidden": [8, 8], "epochs": 1, "progress": False,
           "val_fraction": 0.25, "cache_descriptors": True, "out": str(tmp_path / "run"), "name": "m"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "nearsight", "train", str(tmp_path / "c.yaml"), "--threads", "1"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode != 0 and "does not use the descriptor cache" in r.stdout + r.stderr
    assert not (tmp_path / "run").exists()
