"""Issue 20: kill `nearsight simulate` with SIGKILL and SIGINT at random moments, resume, and check nothing is
lost (a small version of ``benchmarks/fault_injection.py``; the full 100 + 100 kills are run by hand)."""
import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.slow
def test_random_kills_lose_nothing(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "fault_injection", os.path.join(HERE, "..", "benchmarks", "fault_injection.py"))
    fi = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fi)
    counts = fi.run(n=5, steps=60, seed=1, workdir=str(tmp_path), log=lambda s: None)
    for name, c in counts.items():
        assert c["delivered"] == 5, (name, c)
        assert c["lost"] == 0 and c["bad_exit"] == 0 and c.get("swallowed", 0) == 0, (name, c)
        assert c["runs_completed"] >= 1 and c["identical"] == c["runs_completed"], (name, c)
