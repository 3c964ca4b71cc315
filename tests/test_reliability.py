"""Issue 20, data safety: full disks, crash-safe checkpoints, SIGINT, parameter-checked resume, output locks.

Each test reproduces one failure of the old writer (swallowed write errors, a checkpoint torn in place, a Ctrl-C
that was swallowed or tore the file, resume with other parameters, two writers on one file) and checks the fix.
"""
import errno
import os
import signal

import h5py
import numpy as np
import pytest

from nearsight import Lattice
from nearsight.cli import main
from nearsight.dynamics import run_llg
from nearsight.electrons.classical import HeisenbergProvider
from nearsight.errors import NearsightError, RunInterrupted, WriteFailed
from nearsight.trajectory import TrajectoryWriter, read_trajectory
from nearsight.states import make_state

PHYS = ["--lattice", "triangular", "--size", "4", "--J", "2", "--filling", "0.25", "--kT", "0.01"]
RUN = ["--steps", "12", "--every", "1", "--seed", "5", "--bath-kT", "0.05", "--replicas", "2"]
KEYS = ("spins", "fields", "energy", "time", "step")


def _same(a: str, b: str) -> bool:
    x, y = read_trajectory(a)[0], read_trajectory(b)[0]
    return all(np.array_equal(x[k], y[k]) for k in KEYS)


@pytest.fixture
def reference(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ref") / "ref.h5")
    assert main(["simulate", *PHYS, *RUN, "--out", out]) == 0
    return out


def _heisenberg(tmp_path):
    lat = Lattice("square", 4, 4)
    p = HeisenbergProvider(lat, 1.0, (0, 0, 0.2))
    s0 = make_state("random", lat, seed=3, batch=2)
    kw = dict(steps=30, dt=0.05, alpha=0.3, kT=0.4, seed=11, every=4, progress=False)
    return p, s0, kw


# ------------------------------------------------------------------------------------------- full disk
def test_full_disk_stops_with_one_line_and_resumes_after_space_is_freed(tmp_path, capsys, monkeypatch, reference):
    """A write that fails with ENOSPC mid-run (here: HDF5 writes after the 6th frame) stops the run with exit 1 and
    one line; the file is never renamed nor marked complete; once space is back, --resume finishes it exactly."""
    real = h5py.Dataset.__setitem__
    calls = {"n": 0}

    def failing(self, key, value):
        calls["n"] += 1
        if calls["n"] > 6 * 5:                         # 5 datasets per frame
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, key, value)

    out = str(tmp_path / "t.h5")
    monkeypatch.setattr(h5py.Dataset, "__setitem__", failing)
    rc = main(["simulate", *PHYS, *RUN, "--out", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and "No space left on device" in err[-1] and "--resume" in err[-1]
    assert not any("Traceback" in line for line in err)
    assert not os.path.exists(out) and os.path.exists(out + ".partial")
    with h5py.File(out + ".partial", "r") as f:
        assert not f.attrs["complete"]
    monkeypatch.setattr(h5py.Dataset, "__setitem__", real)
    assert main(["simulate", *PHYS, *RUN, "--out", out, "--resume"]) == 0
    assert _same(out, reference) and read_trajectory(out)[1]["complete"]


def test_a_disk_too_small_for_the_trajectory_is_refused_before_any_work(tmp_path):
    """A real OS write limit (RLIMIT_FSIZE stands in for a tiny filesystem): the space of the whole trajectory is
    reserved when the file is created, so the run fails at once, non-zero, and leaves no complete file."""
    import resource
    import subprocess
    import sys

    def small():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    out = str(tmp_path / "t.h5")
    r = subprocess.run([sys.executable, "-m", "nearsight", "simulate", *PHYS, "--steps", "400", "--every", "1",
                        "--out", out], preexec_fn=small, capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 1, r.stderr
    assert "not enough disk space" in r.stderr and "Traceback" not in r.stderr and "steps in" not in r.stdout
    assert not os.path.exists(out)


# ----------------------------------------------------------------------------------- crash-safe checkpoints
def test_a_kill_while_committing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    """The checkpoint is replaced atomically: if the process dies before the rename (here the rename fails), the
    previous checkpoint stays whole and matches its frames, and the resumed run equals an uninterrupted one."""
    p, s0, kw = _heisenberg(tmp_path)
    full = str(tmp_path / "full.h5")
    run_llg(p, s0, out=full, **kw)
    out = str(tmp_path / "t.h5")
    real, n = os.replace, {"k": 0}

    def dying(a, b):
        if b.endswith(".ckpt"):
            n["k"] += 1
            if n["k"] == 4:
                raise OSError(errno.EIO, "killed")
        return real(a, b)

    monkeypatch.setattr(os, "replace", dying)
    with pytest.raises(WriteFailed):
        run_llg(p, s0, out=out, **kw)
    monkeypatch.setattr(os, "replace", real)
    assert not os.path.exists(out + ".partial.ckpt.tmp")
    run_llg(p, s0, out=out, resume=True, **kw)
    assert _same(out, full)


def test_resume_verifies_the_checkpoint_against_the_last_frame(tmp_path, capsys):
    """A checkpoint that does not match the frames it claims (the old failure: attributes of step 75 with the
    spins of step 76) is refused with one line instead of silently shifting the trajectory."""
    p, s0, kw = _heisenberg(tmp_path)
    out = str(tmp_path / "t.h5")
    run_llg(p, s0, out=out, stop_after=9, **kw)
    with h5py.File(out + ".partial", "a") as f:
        f["spins"][2] = -f["spins"][2]              # the last committed frame (steps 0, 4, 8) changed
    with pytest.raises(NearsightError, match="does not match the frames"):
        run_llg(p, s0, out=out, resume=True, **kw)


def test_sigint_stops_at_a_step_with_a_checkpoint_and_resumes_exactly(tmp_path, capsys, reference):
    """Ctrl-C is never swallowed: the loop stops at the next step boundary, checkpoints that exact state, prints
    where and how to resume, exits 130; --resume then gives the uninterrupted trajectory bit for bit."""
    import nearsight.cli.simulate as sim
    out = str(tmp_path / "t.h5")
    real = sim.run_llg

    def interrupting(*a, **k):
        def ob(step, t, spins, res):
            if step == 7:
                os.kill(os.getpid(), signal.SIGINT)
        k["observers"] = [*k["observers"], ob]
        return real(*a, **k)

    sim.run_llg = interrupting
    try:
        rc = main(["simulate", *PHYS, *RUN, "--out", out])
    finally:
        sim.run_llg = real
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 130 and "interrupted at step 7" in err and "--resume" in err
    assert os.path.exists(out + ".partial") and not os.path.exists(out)
    assert main(["simulate", *PHYS, *RUN, "--out", out, "--resume"]) == 0
    assert _same(out, reference)


def test_sigint_between_frames_resumes_from_that_step(tmp_path):
    """An interrupt between frames (every = 4) checkpoints the state at that step, not at the last frame."""
    p, s0, kw = _heisenberg(tmp_path)
    full = str(tmp_path / "full.h5")
    run_llg(p, s0, out=full, **kw)
    out = str(tmp_path / "t.h5")

    class Kick:                              # a provider that raises SIGINT during the 11th evaluation
        def __init__(self):
            self.n = 0

        def __getattr__(self, k):
            return getattr(p, k)

        def compute(self, s):
            self.n += 1
            if self.n == 11:
                os.kill(os.getpid(), signal.SIGINT)
            return p.compute(s)

    with pytest.raises(RunInterrupted, match="interrupted at step"):
        run_llg(Kick(), s0, out=out, **kw)
    with h5py.File(out + ".partial", "r") as f:
        assert f.attrs["complete"] == False  # noqa: E712
    run_llg(p, s0, out=out, resume=True, **kw)
    assert _same(out, full)


# ------------------------------------------------------------------------------------ resume parameters
@pytest.mark.parametrize("change,name", [(["--dt", "0.02"], "dt"), (["--J", "2.5"], "J"), (["--seed", "6"], "seed"),
                                          (["--steps", "14"], "steps"), (["--alpha", "0.4"], "alpha")])
def test_resume_refuses_other_parameters_naming_them(tmp_path, capsys, change, name):
    out = str(tmp_path / "t.h5")
    import nearsight.cli.simulate as sim
    real = sim.run_llg
    sim.run_llg = lambda *a, **k: real(*a, **{**k, "stop_after": 3})
    try:
        assert main(["simulate", *PHYS, *RUN, "--out", out]) == 0
    finally:
        sim.run_llg = real
    assert os.path.exists(out + ".partial")
    capsys.readouterr()
    args = [*PHYS, *RUN, "--out", out, "--resume"]
    for i in range(0, len(change), 2):
        j = args.index(change[i]) if change[i] in args else None
        if j is None:
            args += change[i:i + 2]
        else:
            args[j + 1] = change[i + 1]
    assert main(["simulate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot resume" in err and f": {name} is" in err


# ------------------------------------------------------------------------------------------- one writer
@pytest.mark.parametrize("hdf5_locking", ["TRUE", "FALSE"])
def test_a_second_writer_is_told_the_path_is_in_use_and_by_whom(tmp_path, capsys, monkeypatch, hdf5_locking):
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", hdf5_locking)
    out = str(tmp_path / "t.h5")
    first = TrajectoryWriter(out, n_replicas=2, n_sites=16, attrs={"steps": 12, "every": 1})
    try:
        for extra in ([], ["--resume"], ["--overwrite"]):
            assert main(["simulate", *PHYS, *RUN, "--out", out, *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and "in use" in err and f"PID {os.getpid()}" in err
        assert os.path.exists(out + ".partial")          # the first run's file untouched
    finally:
        first.close()


def test_replicas_zero_is_refused_before_any_file(tmp_path, capsys):
    out = str(tmp_path / "t.h5")
    assert main(["simulate", *PHYS, "--replicas", "0", "--steps", "3", "--out", out]) == 2
    assert "replicas" in capsys.readouterr().err
    assert not os.listdir(tmp_path)
    assert main(["simulate", *PHYS, "--replicas", "1", "--steps", "3", "--out", out]) == 0


def test_existing_output_advice_is_not_circular(tmp_path, capsys):
    out = str(tmp_path / "t.h5")
    assert main(["simulate", *PHYS, "--steps", "2", "--out", out]) == 0
    assert main(["simulate", *PHYS, "--steps", "2", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "pass --resume" not in err
    assert main(["simulate", *PHYS, "--steps", "2", "--out", out, "--resume"]) == 2
    assert "finished run" in capsys.readouterr().err
    assert main(["simulate", *PHYS, "--steps", "2", "--out", out, "--overwrite"]) == 0


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_zero(tmp_path, capsys, reference):
    """Killed after the file was created but before anything was committed: --resume starts it again (with a
    warning) instead of refusing, and without --resume the empty leftover does not block a new run."""
    out = str(tmp_path / "t.h5")
    w = TrajectoryWriter(out, n_replicas=2, n_sites=16, attrs={"steps": 12, "every": 1})
    w._close_file()
    w._release()                         # as a SIGKILL leaves it: a .partial without a checkpoint
    assert os.path.exists(out + ".partial") and not os.path.exists(out + ".partial.ckpt")
    assert main(["simulate", *PHYS, *RUN, "--out", out, "--resume"]) == 0
    assert "warning:" in capsys.readouterr().err and _same(out, reference)
