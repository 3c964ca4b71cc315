"""Training: split by trajectory, loss, schedules, checkpoints that resume, outputs, and an end-to-end run on
a tiny ED dataset whose held-out transverse-field error must fall well below a zero-field predictor's."""
from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from ml_data import PHYSICS, quench_dataset
from nearsight import Lattice, NearsightError
from nearsight.errors import NearsightWarning
from nearsight.io import read_dataset
from nearsight.electrons import EDProvider
from nearsight.hamiltonian import SDModel
from nearsight.ml import MLProvider, load_model
from nearsight.ml.cards import load_card
from nearsight.training import check_config, load_training_data, train
from nearsight.training.loss import loss_terms, ramp
from nearsight.training.train import lambda_at, lr_at

#: descriptor cutoff of the test models: the 6x6 training lattice holds disks up to radius 2.83
CUTOFF = 2.0
#: held-out threshold of the end-to-end test. 1.0 is the zero-field predictor (h_perp = 0) by definition, and
#: a model that learned nothing scores >= 1. With this data (8 training quenches of 6x6, 88 frames), cutoff 2 and
#: 12 epochs the measured held-out ratio was 0.35-0.48 over 3 seeds x 4 network variants (seed spread ~0.05);
#: the gap to the training ratio (~0.18) is the data limit of so small a set. 0.65 (more than 58% of the
#: transverse-field variance explained) sits > 3 spreads above the worst measured run and far below 1.
E2E_MAX_RATIO = 0.65


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    a = quench_dataset(str(d / "a.h5"), n_traj=8, steps=40, every=4, seed=1)   # 8 quenches x 11 frames
    b = quench_dataset(str(d / "b.h5"), n_traj=2, steps=40, every=4, seed=2)
    return [a, b]


def base_config(data, out, **over):
    cfg = {"datasets": data, "descriptor": {"cutoff": CUTOFF}, "hidden": [24, 24], "epochs": 12,
           "batch_size": 8, "lr": 5e-3, "val_fraction": 0.2, "seed": 0, "out": str(out), "progress": False}
    cfg.update(over)
    return cfg


# ----------------------------------------------------------------------------------------------- data
def test_split_keeps_whole_trajectories_apart(data):
    td = load_training_data(data, val_fraction=0.2, seed=0)
    tr = {int(t) for fs in td.train for t in fs.trajectory}
    va = {int(t) for fs in td.val for t in fs.trajectory}
    assert tr and va and not tr & va
    assert tr | va == set(range(10))                # ids of the two files made distinct (8 + 2 trajectories)
    assert len(va) == 2                              # round(0.2 * 10)
    s = td.summary()
    assert s["n_frames"] == 110 and s["lattice_sizes"] == [[6, 6]] and s["provider"] == "ed"
    assert td.physics["kT"] == 0.01 and td.physics["filling"] == 0.485 and td.physics["J"] == 6.0
    assert s["datasets"] == ["a.h5", "b.h5"] and set(s["val_datasets"]) <= {"a.h5", "b.h5"}


def test_summary_keeps_validation_sizes_and_files_apart(data, tmp_path):
    """The card must not claim training on the held-out lattice size or files."""
    from ml_data import quench_dataset
    big = quench_dataset(str(tmp_path / "big.h5"), n_traj=1, steps=8, every=4, seed=3, L=7)
    s = load_training_data(data, val_datasets=[big]).summary()
    assert s["lattice_sizes"] == [[6, 6]] and s["val_lattice_sizes"] == [[7, 7]]
    assert s["datasets"] == ["a.h5", "b.h5"] and s["val_datasets"] == ["big.h5"]


def test_explicit_validation_files_are_external(data):
    """val_datasets are the external held-out set; the internal validation split still comes from datasets."""
    td = load_training_data(data[:1], val_datasets=data[1:])
    assert sum(len(fs) for fs in td.external) == 22
    assert sum(len(fs) for fs in td.train) + sum(len(fs) for fs in td.val) == 88
    ext = {int(t) for fs in td.external for t in fs.trajectory}
    assert ext.isdisjoint({int(t) for fs in td.train + td.val for t in fs.trajectory})


# ----------------------------------------------------------------------------------------------- loss
def test_loss_ignores_the_longitudinal_field(rng):
    s = torch.as_tensor(rng.standard_normal((2, 5, 3)))
    s = s / s.norm(dim=-1, keepdim=True)
    h = torch.as_tensor(rng.standard_normal((2, 5, 3)))
    e = torch.zeros(2)
    total, f, _ = loss_terms(h + 3.0 * s, h, e, e, s, lam=1.0)   # differs only along each spin
    assert float(total) < 1e-28 and float(f) < 1e-28
    _, f, _ = loss_terms(h + torch.cross(s, h, dim=-1), h, e, e, s, lam=0.0)
    assert float(f) > 0.1


def test_energy_weight_ramp_and_lr_schedule():
    assert ramp(0, 0.0, 0.1, 10) == 0.0 and ramp(5, 0.0, 0.1, 10) == pytest.approx(0.05)
    assert ramp(10, 0.0, 0.1, 10) == ramp(50, 0.0, 0.1, 10) == pytest.approx(0.1)
    c = check_config({"datasets": ["x"], "epochs": 11, "lr": 1e-2, "lr_min_factor": 0.1})
    assert lr_at(c, 0) == pytest.approx(1e-2) and lr_at(c, 10) == pytest.approx(1e-3)
    assert lr_at(c, 5) == pytest.approx(0.55e-2)
    assert lambda_at(c, 5) == pytest.approx(0.1) and lambda_at(c, 0) == 0.0 and c["name"] == "model"


# ----------------------------------------------------------------------------------------- end to end
def _read_metrics(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_train_end_to_end_beats_the_zero_field_predictor(data, tmp_path):
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(base_config(data, tmp_path / "run", split_time=1.0)))
    from nearsight.cli import train as train_cmd
    p = argparse.ArgumentParser()
    train_cmd.add_parser(p.add_subparsers(dest="command"))
    args = p.parse_args(["train", str(cfg_path), "--no-progress"])
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert args.func(args) == 0
    report = json.loads(buf.getvalue())
    out = tmp_path / "run"
    assert report["model"] == str(out / "run.pt")
    for name in ("checkpoint.pt", "metrics.csv", "learning_curve.png", "parity.png", "run.pt", "run.card.json"):
        assert (out / name).exists(), name
    for png in ("learning_curve.png", "parity.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _read_metrics(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))
    first, last = float(rows[0]["train_transverse_rms_ratio"]), float(rows[-1]["train_transverse_rms_ratio"])
    assert last < first                                  # it learned
    model = load_model(report["model"])
    card = model.card
    held = card["held_out"]
    assert held["transverse_rms_ratio"] < E2E_MAX_RATIO
    assert held["transverse_rms_ratio"] == pytest.approx(report["held_out_transverse_rms_ratio"])
    assert {"disordered", "ordered", "energy_rmse_per_site", "internal"} <= set(held) and held["set"] == "internal"
    d, o = held["disordered"]["transverse_rms_ratio"], held["ordered"]["transverse_rms_ratio"]
    # the pooled squared ratio is a mean of the kinds' squared ratios weighted by their reference norms
    assert min(d, o) - 1e-12 <= held["transverse_rms_ratio"] <= max(d, o) + 1e-12
    assert held["disordered"]["n_frames"] + held["ordered"]["n_frames"] == held["n_frames"]
    assert card["kT"] == 0.01 and card["filling"] == 0.485 and card["J"] == 6.0 and card["lattice"] == "square"
    assert card["training_data"]["n_frames"] == 110 and card["training_data"]["provider"] == "ed"
    assert card["cutoff"] >= CUTOFF - 1e-9 and card["n_features"] == model.head.n_features

    # independent check of the held-out figure: ED on fresh quench frames the model never saw
    fresh = quench_dataset(str(tmp_path / "fresh.h5"), n_traj=2, steps=40, every=8, seed=7)
    from nearsight.io import read_dataset
    from nearsight.fields import transverse
    arr, _ = read_dataset(fresh)
    s, h_ref = torch.as_tensor(arr["spins"]), torch.as_tensor(arr["fields"])
    h = MLProvider(model, Lattice("square", 6)).compute(s).fields
    ratio = float(transverse(h - h_ref, s).norm() / transverse(h_ref, s).norm())
    assert ratio < E2E_MAX_RATIO
    # the model's energy tracks ED to a small fraction of the per-site energy spread
    e_ref = torch.as_tensor(arr["energy"])
    e = MLProvider(model, Lattice("square", 6)).compute(s).energy
    assert float(((e - e_ref) / 36).abs().max()) < 0.05


def test_resume_reproduces_an_uninterrupted_run(data, tmp_path):
    """Interrupted after 2 of 4 epochs and resumed: the same metrics and weights as one uninterrupted run
    (batch order is a function of seed and epoch; weights, Adam moments and history come from the checkpoint)."""
    full = train(base_config(data, tmp_path / "full", epochs=4))
    assert train(base_config(data, tmp_path / "part", epochs=4), stop_after=2) is None
    assert len(_read_metrics(tmp_path / "part" / "metrics.csv")) == 2
    assert not (tmp_path / "part" / "part.pt").exists()
    resumed = train(base_config(data, tmp_path / "part", epochs=4))
    a, b = _read_metrics(tmp_path / "full" / "metrics.csv"), _read_metrics(tmp_path / "part" / "metrics.csv")
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b):
        for k in ("train_loss", "val_transverse_rms_ratio", "val_energy_rmse_per_site"):
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-9, abs=1e-12), k
    wa, wb = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    for k in wa["state_dict"]:
        assert torch.allclose(wa["state_dict"][k], wb["state_dict"][k], rtol=1e-9, atol=1e-12)


def test_export_writes_the_checkpoint_model_and_leaves_the_run_untouched(data, tmp_path):
    """``export``: the model of a run in progress (its best weights so far), evaluated like a finished run's and
    marked on its card; the checkpoint and out directory are untouched, so the resumed run still equals an
    uninterrupted one; no checkpoint, or the run's own out directory, is a one-line error."""
    full = train(base_config(data, tmp_path / "full", epochs=3))
    assert train(base_config(data, tmp_path / "part", epochs=3), stop_after=1) is None
    ck_bytes = (tmp_path / "part" / "checkpoint.pt").read_bytes()
    path = train(base_config(data, tmp_path / "part", epochs=3), export=str(tmp_path / "peek"))
    assert path == str(tmp_path / "peek" / "part.pt") and not (tmp_path / "part" / "part.pt").exists()
    assert (tmp_path / "part" / "checkpoint.pt").read_bytes() == ck_bytes
    ck = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    best = ck["early_stopping"]["best_state"]
    got = torch.load(path, weights_only=True)["state_dict"]
    assert all(torch.equal(got[k], best[k]) for k in got)
    card = load_card(path)
    assert card["training"]["exported_from_checkpoint"] is True and card["training"]["epochs_done"] == 1
    assert card["training"]["epochs"] == 3 and 0 < card["held_out"]["transverse_rms_ratio"] < 1
    resumed = train(base_config(data, tmp_path / "part", epochs=3))
    wa, wb = torch.load(full, weights_only=True), torch.load(resumed, weights_only=True)
    assert all(torch.allclose(wa["state_dict"][k], wb["state_dict"][k], rtol=1e-9, atol=1e-12) for k in wa["state_dict"])
    assert "exported_from_checkpoint" not in load_card(resumed)["training"]
    with pytest.raises(NearsightError, match="no checkpoint .* to export"):
        train(base_config(data, tmp_path / "none", epochs=3), export=str(tmp_path / "x"))
    with pytest.raises(NearsightError, match="is the run's out directory"):
        train(base_config(data, tmp_path / "part", epochs=3), export=str(tmp_path / "part"))


def test_init_starts_from_a_model_file_and_checks_its_shape(data, tmp_path):
    """Fine-tuning (init): 0 epochs from a model reproduce its fields bit for bit (weights and normalization come
    from the file, not refitted); further epochs start from its error, not from scratch; another network shape or
    family is a one-line error before anything is written."""
    base = train(base_config(data, tmp_path / "base", epochs=3))
    same = train(base_config(data, tmp_path / "same", epochs=0, init=base))
    s = torch.as_tensor(np.random.default_rng(0).normal(size=(36, 3)))
    s = s / s.norm(dim=1, keepdim=True)
    lat = Lattice("square", 6)
    a, b = MLProvider(load_model(base), lat).compute(s), MLProvider(load_model(same), lat).compute(s)
    assert torch.equal(a.fields, b.fields) and torch.equal(a.energy, b.energy)
    assert json.load(open(tmp_path / "same" / "same.card.json"))["training"]["init"] == base
    scratch = _read_metrics(tmp_path / "base" / "metrics.csv")[0]
    tuned = _read_metrics(Path(train(base_config(data, tmp_path / "tuned", epochs=1, init=base))).parent
                          / "metrics.csv")[0]
    assert float(tuned["val_transverse_rms_ratio"]) < float(scratch["val_transverse_rms_ratio"])
    with pytest.raises(NearsightError, match="another network shape"):
        train(base_config(data, tmp_path / "wide", hidden=[32, 24], init=base))
    with pytest.raises(NearsightError, match="another descriptor"):
        train(base_config(data, tmp_path / "desc", descriptor={"cutoff": 2.2}, init=base))
    with pytest.raises(NearsightError, match="does not exist"):
        train(base_config(data, tmp_path / "none", init=str(tmp_path / "missing.pt")))
    assert all(_no_output(tmp_path / d) for d in ("wide", "desc", "none"))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_model_keeps_its_training_dtype(data, tmp_path, dtype):
    path = train(base_config(data, tmp_path / dtype, epochs=1, dtype=dtype))
    m = load_model(path)
    assert m.dtype == getattr(torch, dtype) and m.card["dtype"] == dtype
    res = MLProvider(m, m.lattice).compute(np.tile([0.0, 0.0, 1.0], (36, 1)))
    assert res.fields.dtype == torch.float64 and torch.isfinite(res.fields).all()


# ----------------------------------------------------------------------------------------------- bad input
def _no_output(out):
    return not out.exists() or not any(p.name != "checkpoint.pt" for p in out.iterdir())


def test_dataset_missing_fields(data, tmp_path):
    bad = tmp_path / "nofields.h5"
    with h5py.File(data[0], "r") as src, h5py.File(bad, "w") as dst:
        for k in ("spins", "energy", "trajectory"):
            dst.create_dataset(k, data=src[k][()])
        for k, v in src.attrs.items():
            dst.attrs[k] = v
    with pytest.raises(NearsightError, match="lacks fields"):
        train(base_config([str(bad)], tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_datasets_with_different_physics(data, tmp_path):
    other = quench_dataset(str(tmp_path / "j4.h5"), n_traj=2, steps=8, every=4, physics={**PHYSICS, "J": 4.0})
    with pytest.raises(NearsightError, match="different physics.*J"):
        train(base_config([data[0], other], tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_single_trajectory_cannot_be_split(tmp_path):
    one = quench_dataset(str(tmp_path / "one.h5"), n_traj=1, steps=8, every=4)
    with pytest.raises(NearsightError, match="single trajectory"):
        train(base_config([one], tmp_path / "out"))


def test_dataset_without_label_physics(data, tmp_path):
    bad = tmp_path / "nokT.h5"
    with h5py.File(data[0], "r") as src, h5py.File(bad, "w") as dst:
        for k in src:
            dst.create_dataset(k, data=src[k][()])
        for k, v in src.attrs.items():
            if k != "kT":
                dst.attrs[k] = v
    with pytest.raises(NearsightError, match="does not record kT"):
        train(base_config([str(bad)], tmp_path / "out"))


def test_corrupt_checkpoint_is_a_clear_error_and_nothing_is_written(data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(NearsightError, match="checkpoint .* is corrupt"):
        train(base_config(data, out))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]


def test_checkpoint_from_other_settings(data, tmp_path):
    train(base_config(data, tmp_path / "run", epochs=1))
    with pytest.raises(NearsightError, match=r"different settings \(hidden is \[8\] now but \[24, 24\] in the "
                                             r"checkpoint\)"):
        train(base_config(data, tmp_path / "run", epochs=1, hidden=[8]))


def test_resume_refuses_datasets_whose_arrays_changed(data, tmp_path):
    """A checkpoint records a digest of its datasets' arrays: resumed on a dataset made again with the same content
    (new provenance) it goes on; on changed labels it is refused before anything is written; a checkpoint from
    before the digests resumes with a one-line warning and records them."""
    from nearsight.io import write_dataset
    copy = [str(tmp_path / f"d{i}.h5") for i in range(len(data))]
    for src, dst in zip(data, copy):
        shutil.copy(src, dst)
    out = tmp_path / "run"
    assert train(base_config(copy, out, epochs=3), stop_after=1) is None
    arrays, attrs = read_dataset(copy[0])
    extra = {k: v for k, v in arrays.items() if k not in ("spins", "fields", "energy", "trajectory", "time", "kT_llg")}

    def rewrite(fields):
        write_dataset(copy[0], arrays["spins"], fields, arrays["energy"], trajectory=arrays["trajectory"],
                      time=arrays["time"], kT_llg=arrays["kT_llg"], attrs=attrs, extra=extra)

    rewrite(arrays["fields"] * (1 + 1e-9))
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(NearsightError, match=f"dataset\\(s\\) '{copy[0]}' changed since the checkpoint"):
        train(base_config(copy, out, epochs=3), stop_after=1)
    assert (out / "checkpoint.pt").read_bytes() == before
    rewrite(arrays["fields"])                                 # the same content again, other provenance
    assert train(base_config(copy, out, epochs=3), stop_after=1) is None
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 2 and set(ck["data_sha256"]) == set(copy)
    del ck["data_sha256"]
    torch.save(ck, out / "checkpoint.pt")
    with pytest.warns(NearsightWarning, match="predates the recording of its datasets' digests"):
        assert train(base_config(copy, out, epochs=3)) is not None
    assert torch.load(out / "checkpoint.pt", weights_only=True)["data_sha256"]


def test_more_epochs_resume_only_where_no_schedule_depends_on_them(data, tmp_path):
    """Resumed with more epochs, a run with the cosine schedule (or the energy-weight ramp over half the epochs)
    would follow neither schedule: refused, naming why. A constant learning rate with a fixed ramp extends: its
    first epochs are the shorter run's and the extension equals an uninterrupted longer run."""
    cosine = dict(lr_schedule="cosine", lambda_ramp_epochs=2)
    train(base_config(data, tmp_path / "cos", epochs=1, **cosine))
    with pytest.raises(NearsightError, match="epochs is 2 now but 1 in the checkpoint: the cosine learning rate "
                                             "decays to its floor at the last epoch, so the resumed run"):
        train(base_config(data, tmp_path / "cos", epochs=2, **cosine))
    ramp = dict(lr_schedule="constant", lambda_ramp_epochs=None)        # only the ramp depends on epochs: named alone
    train(base_config(data, tmp_path / "ramp", epochs=1, **ramp))
    with pytest.raises(NearsightError, match=r"1 in the checkpoint: the energy weight ramps over half the epochs "
                                             r"\(lambda_ramp_epochs: null\), so the resumed run"):
        train(base_config(data, tmp_path / "ramp", epochs=2, **ramp))
    fixed = dict(lr_schedule="constant", lambda_ramp_epochs=2)
    train(base_config(data, tmp_path / "const", epochs=1, **fixed))
    extended = train(base_config(data, tmp_path / "const", epochs=2, **fixed))
    whole = train(base_config(data, tmp_path / "whole", epochs=2, **fixed))
    a, b = (torch.load(p, weights_only=True)["state_dict"] for p in (extended, whole))
    assert all(torch.allclose(a[k], b[k], rtol=1e-9, atol=1e-12) for k in a)


@pytest.mark.parametrize("over, match", [
    ({"epoch": 3}, "unknown training config key"), ({"dtype": "float16"}, "dtype must be one of"),
    ({"lr_schedule": "step"}, "lr_schedule must be one of"), ({"activation": "relu"}, "activation must be one of"),
    ({"descriptor": 3.0}, "descriptor must be a mapping"),
    ({"descriptor": {"cutoff": 2.0, "bogus": 1}}, "unknown descriptor option"),
    ({"descriptor": {"cutoff": 4.0}}, "too small for cutoff 4"),
    ({"datasets": []}, "no datasets"), ({"batch_size": 0}, "batch_size"),
])
def test_bad_config(data, tmp_path, over, match):
    with pytest.raises(NearsightError, match=match):
        train(base_config(data, tmp_path / "out", **over))
    assert _no_output(tmp_path / "out")


def test_ml_provider_drives_llg(data, tmp_path):
    """The trained model is a provider like any other: a short LLG run from its fields keeps unit spins and,
    with damping at kT = 0, lowers the model's energy monotonically (up to O(dt^3) per step).

    Regression: the float32 model of this test has descriptor features that vanish identically (cutoff 2);
    standardizing them by a float32-roundoff spread once made the energy jump by ~0.05 per step."""
    from nearsight.dynamics import run_llg
    path = train(base_config(data, tmp_path / "run", epochs=2))
    prov = MLProvider(load_model(path), Lattice("square", 6))
    s0 = np.random.default_rng(0).standard_normal((36, 3))
    s0 /= np.linalg.norm(s0, axis=1, keepdims=True)
    res = run_llg(prov, s0, steps=20, dt=0.05, alpha=0.5, every=1, progress=False)
    e = np.array([float(x[0]) for x in res.energies])
    assert np.all(np.diff(e) < 1e-9)
    assert float((res.spins.norm(dim=-1) - 1).abs().max()) < 1e-12
    ed = EDProvider(Lattice("square", 6), SDModel(**PHYSICS))  # same physics as the card
    assert prov.describe()["J"] == ed.model.J and prov.describe()["filling"] == ed.model.filling
