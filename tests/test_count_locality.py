"""benchmarks/count_locality.py: the Chebyshev site densities it uses agree with ED, site by site, on a different
configuration per row, and the count floor it reports vanishes when the radius covers the lattice and equals the
directly computed one otherwise."""
import importlib.util
import os

import numpy as np
import torch

from nearsight import Lattice, SDModel
from nearsight.electrons import EDProvider
from nearsight.io import write_dataset
from nearsight.states import random_spins

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _module():
    spec = importlib.util.spec_from_file_location("count_locality", os.path.join(ROOT, "benchmarks",
                                                                                 "count_locality.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_chebyshev_site_densities_match_ed_row_by_row():
    lat = Lattice("square", 6)
    model = SDModel(J=6.0, mu=-4.4, kT=0.1)
    S = random_spins(lat.N, np.random.default_rng(1), batch=lat.N)       # row i: its own configuration
    n = _module().site_densities(lat, model, S, -4.4, 1000)
    ed = EDProvider(lat, model).at_mu(torch.as_tensor(S), torch.full((lat.N,), -4.4, dtype=torch.float64))
    want = ed.extras["site_density"].numpy()[np.arange(lat.N), np.arange(lat.N)]
    assert np.abs(n - want).max() < 1e-10


def test_the_count_floor_vanishes_beyond_the_lattice_and_is_the_mean_density_change(tmp_path):
    m = _module()
    lat = Lattice("square", 6)
    model = SDModel(J=6.0, kT=0.1, mu=-4.4)
    rng = np.random.default_rng(2)
    S = random_spins(lat.N, rng, batch=4)
    r = EDProvider(lat, model).at_mu(torch.as_tensor(S), torch.full((4,), -4.4, dtype=torch.float64))
    path = str(tmp_path / "d.h5")
    write_dataset(path, S, r.fields.numpy(), r.energy.numpy(), trajectory=np.array([0, 0, 1, 1]),
                  time=np.array([0.0, 1.0, 0.0, 1.0]), kT_llg=np.zeros(4),
                  attrs={"lattice": "square", "L1": 6, "L2": 6, "J": 6.0, "t": 1.0, "t2": 0.0, "kT": 0.1,
                         "filling": 0.485},
                  extra={"mu": np.full(4, -4.4), "dn_dmu": np.full(4, 3.0),
                         "site_density": r.extras["site_density"].numpy()})
    out = m.frame_profile(path, 1, [10.0, 1.5], draws=2, moments=1000, seed=0)
    assert out["chebyshev_vs_ed_max"] < 1e-10
    assert out["far_from"]["frame"] == 3                     # the other trajectory, at the same time
    far, near = out["radii"]
    assert abs(far["count_err_per_site"]) < 1e-11 and far["site_change_rms"] < 1e-10   # the expansion error alone
    # R = 1.5: recompute draw by draw with ED, the same translations (the generator of frame_profile)
    g = np.random.default_rng(0 + 1)
    for _ in range(2):                                        # the R = 10 draws come first
        g.integers(6), g.integers(6)
    per = []
    for _ in range(2):
        far_spins = S[3][lat.shift((int(g.integers(6)), int(g.integers(6))))]
        mixed = np.stack([np.where((lat.distances_from(i) <= 1.5 + 1e-9)[:, None], S[1], far_spins)
                          for i in range(lat.N)])
        e = EDProvider(lat, model).at_mu(torch.as_tensor(mixed), torch.full((lat.N,), -4.4, dtype=torch.float64))
        per.append(e.extras["site_density"].numpy()[np.arange(lat.N), np.arange(lat.N)]
                   - r.extras["site_density"].numpy()[1])
    per = np.array(per)
    assert abs(near["count_err_per_site"] - per.mean()) < 1e-10
    assert abs(near["implied_mu_err"] - per.mean() / (3.0 / lat.N)) < 1e-8
    assert near["site_change_rms"] > 1e-3                     # a radius of 1.5 on random spins is not local
