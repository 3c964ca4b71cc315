"""The CLI is a thin layer: the fields contract, simulate with config + flags, clear one-line errors."""
import json
import os

import numpy as np
import pytest

from nearsight import Lattice, SDModel
from nearsight.cli import main
from nearsight.electrons import EDProvider
from nearsight.io import read_dataset
from nearsight.trajectory import read_trajectory
from nearsight.states import make_state

PHYS = ["--lattice", "triangular", "--size", "4", "--J", "2", "--filling", "0.25", "--kT", "0.01"]


def test_fields_contract(tmp_path):
    lat = Lattice("triangular", 4, 4)
    s = make_state("random", lat, seed=4)
    np.save(tmp_path / "s.npy", s)
    assert main(["fields", *PHYS, "--solver", "ed", "--B", "0,0,0.1", "--spins", str(tmp_path / "s.npy"),
                 "--out", str(tmp_path / "f.npz")]) == 0
    out = np.load(tmp_path / "f.npz")
    assert out["energy"].shape == () and out["energy"].dtype == np.float64 and out["fields"].shape == (16, 3)
    ref = EDProvider(lat, SDModel(J=2, filling=0.25, kT=0.01, B=(0, 0, 0.1)))(s)
    assert np.isclose(out["energy"], float(ref.energy), rtol=0, atol=1e-12)
    assert np.allclose(out["fields"], ref.fields.numpy(), atol=1e-12)


@pytest.mark.parametrize("mutate,needle", [
    (lambda s: 1.5 * s, "unit vectors"),
    (lambda s: s[:, :2], "shape"),
    (lambda s: np.where(np.arange(16)[:, None] == 0, np.nan, s), "NaN"),
])
def test_fields_bad_spins_write_nothing(tmp_path, capsys, mutate, needle):
    np.save(tmp_path / "s.npy", mutate(make_state("random", Lattice("triangular", 4, 4))))
    rc = main(["fields", *PHYS, "--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "f.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "f.npz").exists()


def test_bad_parameters_are_one_line_errors(tmp_path, capsys):
    np.save(tmp_path / "s.npy", make_state("random", Lattice("triangular", 4, 4)))
    cases = [(["--filling", "1.5"], "filling"), (["--kT", "-1"], "kT")]
    for extra, needle in cases:
        args = ["fields", "--lattice", "triangular", "--size", "4", "--J", "2", "--filling", "0.25",
                "--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "f.npz"), *extra]
        assert main(args) == 2
        assert needle in capsys.readouterr().err
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    assert main(["fields", *PHYS, "--spins", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "f.npz")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["simulate", *PHYS, "--steps", "5", "--dt", "0", "--out", str(tmp_path / "t.h5")]) == 2
    assert "dt" in capsys.readouterr().err and not (tmp_path / "t.h5.partial").exists()
    with pytest.raises(SystemExit):  # argparse rejects an unknown lattice with its own usage message
        main(["fields", "--lattice", "kagome", "--size", "4", "--spins", "x", "--out", "y"])


def test_simulate_config_flags_override_and_resume(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("lattice: triangular\nsize: 4\nJ: 2.0\nfilling: 0.25\nkT: 0.01\nsteps: 40\ndt: 0.05\n"
                   "alpha: 0.5\nbath_kT: 0.01\nreplicas: 2\nevery: 10\ninitial: random\nseed: 3\n")
    out = str(tmp_path / "t.h5")
    assert main(["simulate", str(cfg), "--steps", "30", "--out", out, "--plots", str(tmp_path / "plots")]) == 0
    arr, attrs = read_trajectory(out)
    assert arr["spins"].shape == (4, 2, 16, 3) and attrs["steps"] == 30 and attrs["kT_llg"] == 0.01
    assert os.path.exists(tmp_path / "plots" / "maps.png")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lattice: triangular\nsize: 4\nJ: 2.0\nfilling: 0.25\nstepz: 3\n")
    assert main(["simulate", str(bad), "--out", str(tmp_path / "u.h5")]) == 2


def test_simulate_refuses_plots_inside_the_trajectory_path(tmp_path, capsys):
    """A plots directory at or under the trajectory path would make the final rename of the trajectory fail after
    the whole run; it is refused before any work, with the fix."""
    out = str(tmp_path / "run")
    rc = main(["simulate", *PHYS, "--steps", "2", "--out", out, "--plots", str(tmp_path / "run" / "plots")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "inside the trajectory file" in err and len(err.splitlines()) == 1
    assert not os.path.exists(out)


def test_generate_relabels_a_source_dataset(tmp_path, capsys):
    src, out = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    common = ["--lattice", "square", "--size", "4", "--J", "6", "--mu", "-4.4"]
    assert main(["generate", *common, "--kT", "0.01", "--bath-kT", "0.02", "--replicas", "1", "--steps", "4",
                 "--every", "2", "--out", src]) == 0
    assert main(["generate", *common, "--kT", "0.1", "--source", src, "--out", out]) == 0
    a, b = read_dataset(src), read_dataset(out)
    assert np.array_equal(a[0]["spins"], b[0]["spins"]) and b[1]["kT"] == 0.1 and b[1]["source"] == src
    assert main(["generate", *common, "--source", src, "--driver", "triangular-120", "--out", out + "2"]) == 2
    assert "not both" in capsys.readouterr().err
