"""HDF5 trajectories: an interrupted run resumes exactly; files are complete or absent; datasets validated."""
import os

import h5py
import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError, SDModel
from nearsight.dynamics import run_llg
from nearsight.datasets.generate import generate_dataset
from nearsight.electrons import EDProvider
from nearsight.electrons.classical import HeisenbergProvider
from nearsight.io import read_dataset, write_dataset
from nearsight.trajectory import read_trajectory
from nearsight.states import make_state


def test_interrupted_run_resumes_bit_for_bit(tmp_path):
    lat = Lattice("square", 4, 4)
    p = HeisenbergProvider(lat, 1.0, (0, 0, 0.2))
    s0 = make_state("random", lat, seed=3, batch=2)
    kw = dict(steps=60, dt=0.05, alpha=0.3, kT=0.4, seed=11, every=7, progress=False)
    full = run_llg(p, s0, out=str(tmp_path / "full.h5"), **kw)
    part = tmp_path / "part.h5"
    run_llg(p, s0, out=str(part), stop_after=25, **kw)  # emulate a crash after 25 steps
    assert not part.exists() and (tmp_path / "part.h5.partial").exists()
    with pytest.raises(NearsightError, match="--resume"):
        run_llg(p, s0, out=str(part), **kw)
    run_llg(p, s0, out=str(part), resume=True, **kw)
    assert part.exists() and not (tmp_path / "part.h5.partial").exists()
    a, attrs = read_trajectory(str(tmp_path / "full.h5"))
    b, _ = read_trajectory(str(part))
    assert np.array_equal(a["step"], b["step"]) and list(a["step"]) == [0, 7, 14, 21, 28, 35, 42, 49, 56, 60]
    assert np.array_equal(a["spins"], b["spins"]) and np.array_equal(a["energy"], b["energy"])
    assert torch.equal(torch.as_tensor(b["spins"][-1]), full.spins)
    assert attrs["alpha"] == 0.3 and attrs["provider"] == "heisenberg" and attrs["seed"] == 11


def test_frames_after_checkpoint_are_dropped_on_resume(tmp_path):
    """A frame written but not checkpointed (crash between the two) is discarded, not duplicated."""
    lat = Lattice("square", 2, 2)
    p = HeisenbergProvider(lat, 0.0, (0, 0, 1.0))
    s0 = make_state("random", lat, seed=1)
    kw = dict(steps=20, dt=0.05, alpha=0.1, every=5, progress=False)
    out = str(tmp_path / "t.h5")
    run_llg(p, s0, out=out, stop_after=10, **kw)
    with h5py.File(out + ".partial", "a") as f:  # a stray frame beyond the checkpoint (killed before committing it)
        for k in ("spins", "energy", "time", "step", "fields"):
            f[k][3] = 7
    run_llg(p, s0, out=out, resume=True, **kw)
    arr, _ = read_trajectory(out)
    assert list(arr["step"]) == [0, 5, 10, 15, 20]


def test_dataset_roundtrip_and_errors(tmp_path):
    path = str(tmp_path / "d.h5")
    s = make_state("random", Lattice("square", 2, 2), batch=3)
    write_dataset(path, s, s * 0.5, np.arange(3.0), attrs={"J": 2.0, "lattice": "square", "B": [0.0, 0.0, 1.0]})
    arr, attrs = read_dataset(path)
    assert np.array_equal(arr["spins"], s) and attrs["J"] == 2.0 and attrs["B"] == [0.0, 0.0, 1.0]
    with h5py.File(str(tmp_path / "nofields.h5"), "w") as f:
        f["spins"] = s
        f["energy"] = np.zeros(3)
    with pytest.raises(NearsightError, match="lacks fields"):
        read_dataset(str(tmp_path / "nofields.h5"))
    (tmp_path / "corrupt.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(NearsightError, match="corrupt"):
        read_dataset(str(tmp_path / "corrupt.h5"))
    with pytest.raises(NearsightError, match="does not exist"):
        read_dataset(str(tmp_path / "missing.h5"))
    with pytest.raises(NearsightError, match="disagree"):
        write_dataset(str(tmp_path / "bad.h5"), s, s[:2], np.zeros(3))
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "bad.h5.tmp").exists()


def test_generate_labels_are_exact_ed(tmp_path):
    lat = Lattice("triangular", 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, filling=0.25, kT=0.01))
    out = str(tmp_path / "d.h5")
    generate_dataset(ed, out, kTs=[0.01, 0.05], replicas=2, steps=20, every=10, skip=10, progress=False)
    arr, attrs = read_dataset(out)
    assert arr["spins"].shape == (8, 16, 3)  # 2 temperatures x 2 replicas x frames at steps 10, 20
    assert sorted(set(arr["trajectory"])) == [0, 1, 2, 3]
    assert attrs["J"] == 2.0 and attrs["filling"] == 0.25 and attrs["kT"] == 0.01 and attrs["provider"] == "ed"
    r = ed(arr["spins"])
    assert np.allclose(r.fields.numpy(), arr["fields"], atol=1e-12)
    assert np.allclose(r.energy.numpy(), arr["energy"], atol=1e-10)
    assert not os.path.exists(out + ".parts")


def test_generate_with_a_driver_labels_the_drivers_frames_exactly(tmp_path):
    """A driver integrates the quenches; the kept frames are exactly the driver's trajectory (same seeds) and carry
    exact ED labels; a driver on another lattice is refused."""
    from nearsight.electrons.classical import HeisenbergProvider
    lat = Lattice("triangular", 4, 4)
    ed = EDProvider(lat, SDModel(J=2.0, filling=0.25, kT=0.01))
    drv = HeisenbergProvider(lat, J_H=0.5)
    out = str(tmp_path / "d.h5")
    generate_dataset(ed, out, kTs=[0.02], replicas=2, steps=20, every=10, seed=3, driver=drv, label_batch=3,
                     progress=False)
    arr, attrs = read_dataset(out)
    assert arr["spins"].shape == (6, 16, 3) and attrs["driver_provider"] == drv.name
    r = ed(arr["spins"])
    assert np.allclose(r.fields.numpy(), arr["fields"], atol=1e-12)
    assert np.allclose(r.energy.numpy(), arr["energy"], atol=1e-10)
    own = str(tmp_path / "h.h5")  # the driver labelling itself: the same configurations
    generate_dataset(drv, own, kTs=[0.02], replicas=2, steps=20, every=10, seed=3, progress=False)
    assert np.array_equal(read_dataset(own)[0]["spins"], arr["spins"])
    with pytest.raises(NearsightError, match="same lattice"):
        generate_dataset(ed, str(tmp_path / "x.h5"), kTs=[0.02], replicas=1, steps=2, every=1,
                         driver=HeisenbergProvider(Lattice("triangular", 6, 6), J_H=0.5), progress=False)


def test_relabel_keeps_configurations_and_gives_the_new_providers_exact_labels(tmp_path):
    from nearsight.datasets.generate import relabel_dataset
    lat = Lattice("square", 4, 4)
    src = str(tmp_path / "src.h5")
    generate_dataset(EDProvider(lat, SDModel(J=6.0, mu=-4.4, kT=0.01)), src, kTs=[0.02], replicas=2, steps=10,
                     every=5, progress=False)
    hot = EDProvider(lat, SDModel(J=6.0, mu=-4.4, kT=0.1))
    out = relabel_dataset(hot, src, str(tmp_path / "hot.h5"), label_batch=4, progress=False)
    a, at = read_dataset(src)
    b, bt = read_dataset(out)
    assert np.array_equal(a["spins"], b["spins"]) and np.array_equal(a["trajectory"], b["trajectory"])
    assert np.array_equal(a["time"], b["time"]) and bt["kT"] == 0.1 and bt["source_kT"] == 0.01
    assert bt["source"] == src and bt["steps"] == at["steps"]
    r = hot(a["spins"])
    assert np.allclose(r.fields.numpy(), b["fields"], atol=1e-12)
    assert not np.allclose(a["fields"], b["fields"], atol=1e-6)  # the electronic temperature does change them
    with pytest.raises(NearsightError, match="source's lattice"):
        relabel_dataset(EDProvider(Lattice("square", 6, 6), SDModel(J=6.0, mu=-4.4, kT=0.1)), src,
                        str(tmp_path / "x.h5"), progress=False)


def test_reuse_returns_a_finished_run_of_the_same_settings_and_refuses_others(tmp_path):
    """``run_llg(reuse=True)``: a finished file of exactly these settings is returned untouched; the same file asked
    for with another provider (or seed) is refused, naming the difference. The study ensembles go through it, so
    a study rerun with another model does not silently reuse the old model's trajectories."""
    from nearsight.analysis.study import run_ensemble
    lat = Lattice("square", 4, 4)
    s0 = make_state("random", lat, seed=3, batch=2)
    kw = dict(steps=12, dt=0.05, alpha=0.3, kT=0.1, seed=11, every=4, progress=False)
    out = str(tmp_path / "t.h5")
    first = run_llg(HeisenbergProvider(lat, 1.0), s0, out=out, **kw)
    stamp = os.stat(out).st_mtime_ns
    again = run_llg(HeisenbergProvider(lat, 1.0), s0, out=out, reuse=True, **kw)
    assert again.steps_done == 0 and torch.equal(again.spins, first.spins) and os.stat(out).st_mtime_ns == stamp
    with pytest.raises(NearsightError, match=r"finished run with other settings \(J_H is 2.0 now but 1.0"):
        run_llg(HeisenbergProvider(lat, 2.0), s0, out=out, reuse=True, **kw)
    with pytest.raises(NearsightError, match=r"seed is 12 now but 11"):
        run_llg(HeisenbergProvider(lat, 1.0), s0, out=out, reuse=True, **{**kw, "seed": 12})
    cfg = {"replicas_per_file": 2, "seed": 5, "dt": 0.05, "alpha": 0.3, "bath_kT": 0.1, "initial": "random",
           "scheme": "heun", "name": "t"}
    logs = []
    paths, _ = run_ensemble(HeisenbergProvider(lat, 1.0), lat, cfg, str(tmp_path / "runs"), "ml", replicas=4,
                            steps=8, every=4, log=logs.append)
    run_ensemble(HeisenbergProvider(lat, 1.0), lat, cfg, str(tmp_path / "runs"), "ml", replicas=4, steps=8, every=4,
                 log=logs.append)
    assert sum(line.strip().startswith("reuse ") for line in logs) == 2 and len(paths) == 2
    with pytest.raises(NearsightError, match="J_H is 2.0 now but 1.0"):
        run_ensemble(HeisenbergProvider(lat, 2.0), lat, cfg, str(tmp_path / "runs"), "ml", replicas=4, steps=8,
                     every=4, log=logs.append)
