"""Domain walls in a driven strip: the anisotropy that holds them, the sum of providers, the wall state and its
position, and the law that moves them — the spin-transfer torque equals the spin current the sample absorbs.

Tolerances: exact identities at 1e-12; NEGF quadrature at tol 1e-9 (its absolute error bound), asserted 1e-7.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError
from nearsight.analysis.walls import wall_position, wall_profile, wall_velocity
from nearsight.electrons import AnisotropyProvider, HeisenbergProvider, NEGFProvider
from nearsight.fields import SumProvider
from nearsight.hamiltonian import SDModel
from nearsight.io import read_dataset, write_dataset
from nearsight.lattice import Strip
from nearsight.states import domain_wall
from nearsight.testing import tangent_fd_error


def test_anisotropy_and_sum_are_gradients_and_add(rng):
    lat = Lattice("square", 4, 3)
    s = rng.standard_normal((lat.N, 3))
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    an = AnisotropyProvider(lat, 0.7, axis=(1.0, 1.0, 0.0))
    n = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
    r = an.compute(s)
    assert abs(float(r.energy) + 0.7 * ((s @ n) ** 2).sum()) < 1e-12
    assert tangent_fd_error(an, s, rng) < 1e-8
    he = HeisenbergProvider(lat, 1.3, (0.0, 0.0, 0.2))
    tot = SumProvider(he, an)
    rt = tot.compute(s)
    assert torch.allclose(rt.fields, he.compute(s).fields + r.fields, atol=1e-12, rtol=0)
    assert abs(float(rt.energy - he.compute(s).energy - r.energy)) < 1e-12
    assert tot.conservative and tangent_fd_error(tot, s, rng) < 1e-8
    assert tot.describe()["parts"] == "heisenberg,anisotropy"


def test_sum_with_a_driven_part_is_not_conservative_and_bad_input():
    st = Strip(4, 1)
    driven = NEGFProvider(st, SDModel(t=1.0, J=1.0, mu=0.0, kT=0.1), bias=0.5)
    assert SumProvider(driven, AnisotropyProvider(st, 0.1)).conservative is False
    with pytest.raises(NearsightError, match="same sites"):
        SumProvider(driven, AnisotropyProvider(Strip(5, 1), 0.1))
    with pytest.raises(NearsightError, match="field providers"):
        SumProvider(driven, "anisotropy")
    with pytest.raises(NearsightError, match="nonzero 3-vector axis"):
        AnisotropyProvider(st, 0.1, axis=(0, 0, 0))
    with pytest.raises(NearsightError, match="number K"):
        AnisotropyProvider(st, "strong")


def test_domain_wall_state_and_its_position():
    st = Strip(20, 3)
    s = domain_wall(st, 8.5, 1.5, phi=np.pi / 2)
    assert np.allclose(np.linalg.norm(s, axis=1), 1.0)
    m = wall_profile(s, 20, 3)
    assert m[0] > 0.99 and m[-1] < -0.99 and np.all(np.diff(m) < 0)
    mid = s[(st.xy[:, 0] == 8) | (st.xy[:, 0] == 9)]
    assert np.abs(mid[:, 0]).max() < 1e-12 and mid[:, 1].min() > 0.9          # a Bloch wall turns through +y
    # the profile is odd about x0 = 8.5, so the position is x0 exactly (up to the exp(-|x|/w) tails at the ends)
    assert abs(float(wall_position(s, 20, 3)) - 8.5) < 1e-3
    # a sharp wall between columns 4 and 5 sits at 4.5; the reversed wall (down on the left) the same
    sharp = np.where((st.xy[:, 0] <= 4)[:, None], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0])
    assert float(wall_position(sharp, 20, 3)) == 4.5 and float(wall_position(-sharp, 20, 3)) == 4.5
    # a batch of frames keeps the sign of the first frame (a wall crossing a column moves X continuously)
    frames = np.stack([domain_wall(st, x0, 1.5) for x0 in (6.0, 7.0, 8.0)])
    assert np.allclose(wall_position(frames, 20, 3), [6.0, 7.0, 8.0], atol=1e-3)
    with pytest.raises(NearsightError, match="width > 0"):
        domain_wall(st, 5.0, 0.0)
    with pytest.raises(NearsightError, match=r"expected \[..., 60, 3\]"):
        wall_position(s[:10], 20, 3)


def test_wall_velocity_fit():
    t = np.linspace(0, 10, 11)
    v, dv = wall_velocity(t, 3.0 - 0.25 * t)
    assert abs(v + 0.25) < 1e-12 and dv < 1e-12
    noisy = 3.0 - 0.25 * t + 0.01 * np.sin(7 * t)
    v, dv = wall_velocity(t, noisy)
    assert abs(v + 0.25) < 3 * dv + 1e-3 and dv > 0
    with pytest.raises(NearsightError, match=">= 3 points"):
        wall_velocity(t[:2], t[:2])


def test_spin_transfer_torque_is_the_absorbed_spin_current():
    """Angular momentum conservation in the biased steady state: the torque the electrons exert on the local
    spins, summed over the sample, equals the spin current the sample absorbs from the two leads. In the package's
    units (sigma-currents; LLG dS/dt = -S x h): sum_i (-S_i x h_i) = -(I^s_L + I^s_R)/2. This is what moves a
    wall: for a half metal the absorbed z-spin is twice the particle current, so dX/dt = -I/(2 Ly)."""
    st = Strip(12, 3)
    p = NEGFProvider(st, SDModel(t=1.0, J=3.0, mu=-3.0, kT=0.05), bias=0.6, wide_band=2.0, tol=1e-9)
    s = domain_wall(st, 5.5, 1.5, phi=0.4)
    r = p.compute(s)
    torque = -np.cross(s, r.fields.numpy()).sum(0)
    absorbed = r.extras["spin_current"].numpy().sum(0)
    assert np.abs(absorbed).max() > 0.1                                    # a real current, mostly z-polarized
    assert np.abs(torque + absorbed / 2).max() < 1e-7
    # half metal (majority band half filled, minority empty): the current is spin polarized along the domains
    I = float(r.extras["charge_current"][0])
    assert abs(absorbed[2] - 2 * I) < 0.05 * abs(I)


def test_dataset_extra_arrays_round_trip(tmp_path):
    S = np.tile([0.0, 0.0, 1.0], (4, 6, 1))
    write_dataset(str(tmp_path / "d.h5"), S, S, np.zeros(4), extra={"bias": np.arange(4.0)})
    arrays, _ = read_dataset(str(tmp_path / "d.h5"))
    assert np.array_equal(arrays["bias"], np.arange(4.0))
    with pytest.raises(NearsightError, match="first dimension 4"):
        write_dataset(str(tmp_path / "e.h5"), S, S, np.zeros(4), extra={"bias": np.arange(3.0)})
    with pytest.raises(NearsightError, match="new name"):
        write_dataset(str(tmp_path / "e.h5"), S, S, np.zeros(4), extra={"time": np.arange(4.0)})


def test_cli_simulate_a_driven_wall_and_flag_errors(tmp_path, capsys):
    """``nearsight simulate --solver negf --wide-band G --anisotropy K --initial wall`` runs NEGF-LLG of a wall
    (the electrons plus the classical anisotropy, one provider) and the wall moves against the electron flow, as
    the spin-transfer law says (dX/dt = -I/(2 Ly) for the half metal; test above)."""
    from nearsight.cli import main
    from nearsight.trajectory import read_trajectory
    out = str(tmp_path / "w.h5")
    args = ["simulate", "--lattice", "square", "--size", "8", "--size2", "3", "--J", "3", "--mu", "-3",
            "--kT", "0.05", "--solver", "negf", "--bias", "1.0", "--wide-band", "2", "--anisotropy", "0.005",
            "--initial", "wall", "--steps", "6", "--dt", "0.5", "--alpha", "0.2", "--every", "3", "--out", out]
    assert main(args) == 0
    arr, attrs = read_trajectory(out)
    assert attrs["parts"] == "negf,anisotropy" and attrs["K"] == 0.005 and attrs["wide_band"] == 2.0
    X = wall_position(arr["spins"][:, 0], 8, 3)
    assert X[0] == pytest.approx(3.5, abs=1e-3) and X[-1] < X[0] - 0.05
    capsys.readouterr()
    base = ["fields", "--lattice", "square", "--size", "6", "--J", "2", "--mu", "0", "--kT", "0.05",
            "--spins", str(tmp_path / "none.npy"), "--out", str(tmp_path / "f.npz")]
    for extra, needle in ((["--solver", "ed", "--wide-band", "2"], "negf only"),
                          (["--solver", "ed", "--realizations", "2"], "kpm only")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
