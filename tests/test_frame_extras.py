"""Trajectories keep the provider's per-frame numbers: ``mu`` and ``n_electrons`` of a canonical run (issue 22)."""
import numpy as np
import pytest
import torch

from nearsight import Lattice, SDModel
from nearsight.dynamics import run_llg
from nearsight.electrons import EDProvider
from nearsight.electrons.classical import HeisenbergProvider
from nearsight.trajectory import read_trajectory
from nearsight.states import make_state


def test_canonical_ed_run_records_mu_and_count_per_frame_and_resumes_exactly(tmp_path):
    lat = Lattice("square", 4, 4)
    model = SDModel(J=3.0, filling=0.375, kT=0.05)
    p = EDProvider(lat, model)
    s0 = make_state("random", lat, seed=2, batch=2)
    kw = dict(steps=12, dt=0.05, alpha=0.3, kT=0.05, seed=5, every=4, progress=False)
    full = str(tmp_path / "full.h5")
    run_llg(p, s0, out=full, **kw)
    a, attrs = read_trajectory(full)
    assert list(attrs["frame_extras"]) == ["dn_dmu", "mu", "n_electrons"]      # dn_dmu: ED at kT > 0
    assert a["dn_dmu"].shape == (4, 2) and (a["dn_dmu"] > 0).all()
    assert a["mu"].shape == a["energy"].shape == (4, 2)
    # every frame's count is the canonical one; mu is the one ED solved for those spins (recomputed here)
    assert np.allclose(a["n_electrons"], 0.375 * 2 * lat.N, rtol=0, atol=1e-8)
    for f in (0, 3):
        again = p.compute(torch.as_tensor(a["spins"][f]))
        assert np.allclose(a["mu"][f], again.extras["mu"].numpy(), rtol=0, atol=1e-12)
    assert np.ptp(a["mu"][:, 0]) > 0          # mu* moves with the spins in a canonical run
    # an interrupted canonical run resumes bit for bit, extras included
    part = str(tmp_path / "part.h5")
    run_llg(p, s0, out=part, stop_after=5, **kw)
    run_llg(p, s0, out=part, resume=True, **kw)
    b, _ = read_trajectory(part)
    for k in ("spins", "energy", "mu", "n_electrons", "dn_dmu"):
        assert np.array_equal(a[k], b[k]), k


def test_provider_without_per_replica_extras_writes_none(tmp_path):
    lat = Lattice("square", 2, 2)
    p = HeisenbergProvider(lat, 1.0, (0, 0, 0.2))
    out = str(tmp_path / "t.h5")
    run_llg(p, make_state("random", lat, seed=1), steps=4, dt=0.05, alpha=0.1, every=2, progress=False, out=out)
    a, attrs = read_trajectory(out)
    assert list(attrs.get("frame_extras", [])) == []
    assert set(a) == {"spins", "fields", "energy", "time", "step"}
