"""``nearsight analyze`` end to end on a short run, the main job's maps for a 120° system, and the study's
override mechanism."""
import json
import os

import numpy as np
import pytest

from nearsight import Lattice
from nearsight.analysis.export import read_ovf
from nearsight.analysis.plots import plot_trajectory
from nearsight.analysis.study import load_study, parse_overrides
from nearsight.cli import main
from nearsight.dynamics import run_llg
from nearsight.electrons.classical import HeisenbergProvider
from nearsight.trajectory import read_trajectory
from nearsight.states import make_state

STUDIES = os.path.join(os.path.dirname(__file__), "..", "configs", "studies")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two files of an antiferromagnetic Heisenberg quench on 12x12 (120° order forms), 2 replicas each."""
    d = tmp_path_factory.mktemp("runs")
    lat = Lattice("triangular", 12)
    paths = []
    for k in range(2):
        p = str(d / f"t{k}.h5")
        run_llg(HeisenbergProvider(lat, -1.0), make_state("random", lat, seed=k, batch=2), steps=60, dt=0.05,
                alpha=0.5, kT=0.01, seed=k, every=6, out=p, save_fields=False, progress=False)
        paths.append(p)
    return paths


def test_analyze_cli_ensemble_of_files(runs, tmp_path):
    out = tmp_path / "an"
    assert main(["analyze", *runs, "--out", str(out), "--order", "120", "--bootstrap", "50", "--threshold",
                 "0.5", "--no-movie"]) == 0
    fits = json.load(open(out / "fits.json"))
    assert fits["n_replicas"] == 4 and fits["order"] == "120" and fits["n_frames"] == 11
    for f in ("series.csv", "lengths.png", "local_slope.png", "sq_spin.png", "sq_domain.png", "snapshots.png",
              "clusters.csv", "cluster_sizes.png", "wall_orientation.png", "last_frame.vtk"):
        assert (out / f).exists(), f
    vals, head = read_ovf(str(out / "last_frame.ovf"))
    arr, _ = read_trajectory(runs[0])
    assert np.allclose(vals, arr["spins"][-1, 0])
    rows = np.genfromtxt(out / "series.csv", delimiter=",", names=True)
    assert len(rows) == 11 and np.all(rows["L_spin_moment"] > 0)


def test_analyze_cli_bad_input_is_one_line(runs, tmp_path, capsys):
    assert main(["analyze", runs[0], "--out", str(tmp_path / "a"), "--window", "5"]) == 2
    assert "--window" in capsys.readouterr().err
    assert main(["analyze", runs[0], "--out", str(tmp_path / "a"), "--order", "fm-afm"]) == 2
    assert "square" in capsys.readouterr().err


def test_movie_is_a_gif_without_ffmpeg(tmp_path):
    from nearsight.analysis.figures import movie
    lat = Lattice("triangular", 6)
    maps = np.random.default_rng(0).uniform(-1, 1, (3, lat.N))
    p = movie(lat, maps, [0.0, 1.0, 2.0], str(tmp_path / "m.mp4"), label="x")
    assert os.path.exists(p) and p.endswith((".gif", ".mp4"))
    from PIL import Image
    if p.endswith(".gif"):
        assert Image.open(p).n_frames == 3


def test_main_job_maps_show_the_120_domain_variable(runs, tmp_path):
    files = plot_trajectory(runs[0], str(tmp_path / "plots"), order="120")
    assert [os.path.basename(f) for f in files] == ["time_series.png", "maps.png"]


def test_study_overrides_and_checks(tmp_path):
    assert parse_overrides(["size=32 replicas=2", "analysis.n_boot=50"]) == {
        "size": 32, "replicas": 2, "analysis": {"n_boot": 50}}
    for name in ("chiral_coarsening.yaml", "phase_separation.yaml"):
        full = load_study(os.path.join(STUDIES, name))
        assert full["size"] >= 128 and full["replicas"] >= 8 and "device" in full
        small = load_study(os.path.join(STUDIES, name), ["size=24", "replicas=2", "steps=100"])
        assert (small["size"], small["replicas"], small["steps"]) == (24, 2, 100)
        assert small["analysis"] == full["analysis"]
    with pytest.raises(Exception, match="stepz"):
        load_study(os.path.join(STUDIES, "chiral_coarsening.yaml"), ["stepz=3"])
    with pytest.raises(Exception, match="replicas"):
        load_study(os.path.join(STUDIES, "chiral_coarsening.yaml"), ["replicas=0"])


@pytest.mark.slow
def test_study_smoke_end_to_end(tmp_path):
    """The chiral study from its config at smoke settings (about 40 s on one core)."""
    out = tmp_path / "s"
    assert main(["study", os.path.join(STUDIES, "chiral_coarsening.yaml"), "--set", "size=24", "replicas=2",
                 "steps=200", "every=20", f"out={out}", "analysis.n_boot=50", "analysis.t_min=1"]) == 0
    text = open(out / "summary.md").read()
    assert "triangular-tetrahedral" in text and "canonical" in text and "95% CI" in text
