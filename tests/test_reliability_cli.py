"""Issue 20, the command line: one-line errors instead of tracebacks, one output policy, strict configs, the
batched fields contract, warnings for unstable or truncated settings, threads, provenance, --version, --help."""
import json
import os
import warnings

import h5py
import numpy as np
import pytest
import torch

from nearsight import Lattice, SDModel
from nearsight.cli import main
from nearsight.electrons import EDProvider
from nearsight.errors import NearsightError, NearsightWarning
from nearsight.io import read_dataset
from nearsight.trajectory import read_trajectory
from nearsight.states import make_state

PHYS = ["--lattice", "triangular", "--size", "4", "--J", "2", "--filling", "0.25", "--kT", "0.01"]
LAT = Lattice("triangular", 4, 4)


def _one_line_error(capsys, needle):
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("device,needle", [("tpu9", "not a torch device"), ("cuda", "cuda"), ("mps", "cpu or cuda")])
def test_bad_devices_are_one_line_errors(tmp_path, capsys, device, needle):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this torch has a GPU")
    np.save(tmp_path / "s.npy", make_state("random", LAT))
    assert main(["fields", *PHYS, "--device", device, "--spins", str(tmp_path / "s.npy"),
                 "--out", str(tmp_path / "f.npz")]) == 2
    _one_line_error(capsys, needle)


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, capsys):
    np.save(tmp_path / "s.npy", make_state("random", LAT))
    for out, needle in ((str(tmp_path), "is a directory"), ("/proc/nearsight-test.npz", "cannot write")):
        assert main(["fields", *PHYS, "--spins", str(tmp_path / "s.npy"), "--out", out]) == 2
        _one_line_error(capsys, needle)
    assert main(["simulate", *PHYS, "--steps", "2", "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "is a directory")
    assert main(["simulate", *PHYS, "--steps", "2", "--out", "/proc/t.h5"]) == 2
    _one_line_error(capsys, "cannot")


def test_fields_refuses_to_overwrite_unless_asked(tmp_path, capsys):
    np.save(tmp_path / "s.npy", make_state("random", LAT, seed=1))
    out = str(tmp_path / "f.npz")
    args = ["fields", *PHYS, "--spins", str(tmp_path / "s.npy"), "--out", out]
    assert main(args) == 0
    before = np.load(out)["energy"]
    np.save(tmp_path / "s.npy", make_state("random", LAT, seed=2))
    assert main(args) == 2
    _one_line_error(capsys, "--overwrite")
    assert np.load(out)["energy"] == before
    assert main([*args, "--overwrite"]) == 0 and np.load(out)["energy"] != before


def test_fields_batched_contract(tmp_path):
    """A stack [B, N, 3] gives energy [B] and fields [B, N, 3], row b equal to the single-configuration call."""
    s = make_state("random", LAT, seed=4, batch=2)
    np.save(tmp_path / "s.npy", s)
    assert main(["fields", *PHYS, "--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "f.npz")]) == 0
    out = np.load(tmp_path / "f.npz")
    assert out["energy"].shape == (2,) and out["fields"].shape == (2, 16, 3)
    ed = EDProvider(LAT, SDModel(J=2, filling=0.25, kT=0.01))
    for b in range(2):
        r = ed(s[b])
        assert np.isclose(out["energy"][b], float(r.energy), rtol=0, atol=1e-12)
        assert np.allclose(out["fields"][b], r.fields.numpy(), atol=1e-12)


@pytest.mark.parametrize("line,needle", [("seed: abc", "seed must be an integer"),
                                         ('save_fields: "false"', "save_fields must be true or false"),
                                         ("steps: 2.5", "steps must be an integer"),
                                         ("dt: fast", "dt must be a number"),
                                         ("B: [0, 0]", "B must be a list of 3")])
def test_config_values_are_type_checked(tmp_path, capsys, line, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lattice: triangular\nsize: 4\nJ: 2.0\nfilling: 0.25\nsteps: 2\n" + line + "\n")
    assert main(["simulate", str(cfg), "--out", str(tmp_path / "t.h5")]) == 2
    _one_line_error(capsys, needle)
    assert not os.path.exists(tmp_path / "t.h5.partial")


def test_config_paths_are_read_against_the_config_file(tmp_path, monkeypatch):
    d = tmp_path / "cfgdir"
    d.mkdir()
    np.save(d / "init.npy", make_state("random", LAT, seed=9))
    (d / "run.yaml").write_text("lattice: triangular\nsize: 4\nJ: 2.0\nfilling: 0.25\nsteps: 1\ninitial: init.npy\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["simulate", str(d / "run.yaml"), "--out", "t.h5"]) == 0
    arr, _ = read_trajectory("t.h5")
    assert np.array_equal(arr["spins"][0, 0], make_state("random", LAT, seed=9))


def test_replicas_must_match_a_batched_initial_file(tmp_path, capsys):
    np.save(tmp_path / "s.npy", make_state("random", LAT, batch=2))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"lattice: triangular\nsize: 4\nJ: 2.0\nfilling: 0.25\nsteps: 1\nreplicas: 5\n"
                   f"initial: {tmp_path / 's.npy'}\n")
    assert main(["simulate", str(cfg), "--out", str(tmp_path / "t.h5")]) == 2
    _one_line_error(capsys, "hold 2 replicas but replicas = 5")
    cfg.write_text(f"lattice: triangular\nsize: 4\nJ: 2.0\nfilling: 0.25\nsteps: 1\ninitial: {tmp_path / 's.npy'}\n")
    assert main(["simulate", str(cfg), "--out", str(tmp_path / "t.h5")]) == 0
    assert read_trajectory(str(tmp_path / "t.h5"))[0]["spins"].shape[1] == 2


def test_model_physics_clash_names_the_card(tmp_path, capsys):
    np.save(tmp_path / "s.npy", make_state("random", Lattice("triangular", 12, 12)))
    assert main(["fields", "--lattice", "triangular", "--size", "12", "--solver", "ml", "--model", "triangular-120",
                 "--J", "2", "--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "f.npz")]) == 2
    err = _one_line_error(capsys, "card")
    assert "J=2" in err and "exactly one of" not in err


def test_models_show_into_a_closed_pipe_is_quiet():
    """`nearsight models show NAME --json | head -c 10`: no BrokenPipeError traceback."""
    import subprocess
    import sys
    r = subprocess.run(f"{sys.executable} -m nearsight models show triangular-120 --json | head -c 10", shell=True,
                       capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert len(r.stdout) == 10 and "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr


def test_unstable_time_step_warns(tmp_path, capsys):
    assert main(["simulate", *PHYS, "--dt", "1000", "--steps", "1", "--out", str(tmp_path / "t.h5")]) == 0
    err = capsys.readouterr().err
    assert "warning: dt = 1000 turns the fastest spin" in err
    assert main(["simulate", *PHYS, "--dt", "0.05", "--steps", "1", "--out", str(tmp_path / "u.h5")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_kpm_moments_guards():
    from nearsight.electrons.kpm import KPMProvider
    lat, model = Lattice("triangular", 6, 6), SDModel(J=3, filling=0.5, kT=0.01)
    with pytest.raises(NearsightError, match=r"moments=1000000000 is beyond this machine: about .* GiB"):
        KPMProvider(lat, model, moments=1_000_000_000, probe_distance="exact")
    s = make_state("random", lat, seed=1)
    with pytest.warns(NearsightWarning, match="misses the occupation by an estimated"):
        KPMProvider(lat, model, moments=2, probe_distance="exact")(s)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NearsightWarning)
        k = KPMProvider(lat, model, probe_distance="exact")
        k(s)
    assert k.truncation_error < 1e-3


def test_kpm_truncation_warning_reaches_the_cli_as_one_line(tmp_path, capsys):
    np.save(tmp_path / "s.npy", make_state("random", LAT))
    assert main(["fields", *PHYS, "--solver", "kpm", "--moments", "2", "--spins", str(tmp_path / "s.npy"),
                 "--out", str(tmp_path / "f.npz")]) == 0
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(lines) == 1 and lines[0].startswith("nearsight fields: warning: KPM with moments=2")


# ------------------------------------------------------------------------------------------------ threads
def test_default_threads_count_usable_cores_and_respect_omp(monkeypatch):
    from nearsight import runtime
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(runtime, "usable_cores", lambda: len(os.sched_getaffinity(0)))
    assert runtime.default_threads()[0] == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 0.0, 0.0))      # one core kept busy by someone else
    assert runtime.default_threads()[0] == 3
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert runtime.default_threads()[0] == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert runtime.default_threads() == (2, "OMP_NUM_THREADS")
    assert runtime.worker_threads(4) == 1 and runtime.worker_threads(1) == 4


def test_threads_option_sets_torch_threads(tmp_path):
    old = torch.get_num_threads()
    try:
        np.save(tmp_path / "s.npy", make_state("random", LAT))
        assert main(["fields", *PHYS, "--threads", "1", "--spins", str(tmp_path / "s.npy"),
                     "--out", str(tmp_path / "f.npz")]) == 0
        assert torch.get_num_threads() == 1
        assert json.loads(str(np.load(tmp_path / "f.npz")["provenance"]))["threads"] == 1
        assert main(["fields", *PHYS, "--threads", "0", "--spins", str(tmp_path / "s.npy"),
                     "--out", str(tmp_path / "g.npz")]) == 2
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------- what a user expects
PROV = ("nearsight_version", "torch_version", "command_line", "created", "time_unit", "energy_unit")


def test_provenance_in_every_file(tmp_path):
    np.save(tmp_path / "s.npy", make_state("random", Lattice("triangular", 12, 12)))
    assert main(["fields", "--lattice", "triangular", "--size", "12", "--solver", "ml", "--model", "triangular-120",
                 "--spins", str(tmp_path / "s.npy"), "--out", str(tmp_path / "f.npz")]) == 0
    p = json.loads(str(np.load(tmp_path / "f.npz")["provenance"]))
    assert all(k in p for k in PROV) and p["time_unit"] == "hbar/t" and p["energy_unit"] == "t"
    out = str(tmp_path / "t.h5")
    assert main(["simulate", "--lattice", "triangular", "--size", "12", "--solver", "ml", "--model", "triangular-120",
                 "--steps", "1", "--out", out]) == 0
    attrs = read_trajectory(out)[1]
    assert all(k in attrs for k in PROV) and "simulate" in attrs["command_line"]
    from nearsight.ml.cards import shipped_models
    from nearsight.runtime import file_sha256
    assert attrs["model_path"] == "triangular-120.pt" and not os.path.isabs(attrs["model_path"])
    assert attrs["model_sha256"] == file_sha256(str(shipped_models()["triangular-120"]))
    ds = str(tmp_path / "d.h5")
    assert main(["generate", *PHYS, "--bath-kT", "0.02", "--replicas", "1", "--steps", "2", "--every", "1",
                 "--out", ds]) == 0
    assert all(k in read_dataset(ds)[1] for k in PROV)


def test_version_and_help_with_defaults(capsys):
    import nearsight
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and f"nearsight {nearsight.__version__}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    h = " ".join(capsys.readouterr().out.split())
    assert "time step (hbar/t) (default: 0.05)" in h and "LLG bath temperature (default: 0.0)" in h
    assert "(default: None)" not in h and "field provider (default: ed)" in h


def test_one_name_for_the_bath_temperature(tmp_path, capsys):
    ds = str(tmp_path / "d.h5")
    assert main(["generate", *PHYS, "--kTs", "0.02", "--replicas", "1", "--steps", "2", "--every", "1",
                 "--out", ds]) == 0
    assert "--kTs is deprecated; use --bath-kT" in capsys.readouterr().err
    assert list(read_dataset(ds)[1]["kTs"]) == [0.02]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lattice: triangular\nsize: 4\nJ: 2.0\nfilling: 0.25\nsteps: 2\nkT_llg: 0.03\n")
    assert main(["simulate", str(cfg), "--out", str(tmp_path / "t.h5")]) == 0
    assert "'kT_llg' is deprecated; call it 'bath_kT'" in capsys.readouterr().err
    assert read_trajectory(str(tmp_path / "t.h5"))[1]["kT_llg"] == 0.03
    cfg.write_text("lattice: triangular\nsize: 4\nJ: 2.0\nfilling: 0.25\nsteps: 2\nkT_llg: 0.03\nbath_kT: 0.1\n")
    assert main(["simulate", str(cfg), "--out", str(tmp_path / "u.h5")]) == 2
