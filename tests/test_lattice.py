import numpy as np
import pytest

from nearsight import Lattice, NearsightError
from nearsight.lattice import Strip


@pytest.mark.parametrize("kind,z", [("square", 4), ("triangular", 6)])
def test_nearest_neighbours_and_shells(kind, z):
    lat = Lattice(kind, 8, 6)
    nb = lat.neighbors(1.0)
    assert nb.index.shape == (48, z)
    assert np.allclose(nb.distance, 1.0)
    # docs/conventions.md: the neighbours of (x,y) on the triangular lattice
    if kind == "triangular":
        expect = {(1, 0), (-1, 0), (0, 1), (0, -1), (1, -1), (-1, 1)}
        assert {tuple(o) for o in nb.offsets} == expect
    # neighbour relation is symmetric and site index is x + L1*y
    i = lat.index(3, 2)
    assert i == 3 + 8 * 2
    for j in nb.index[i]:
        assert i in nb.index[j]
    # shells: square 1, sqrt2, 2 ; triangular 1, sqrt3, 2
    radii = lat.neighbors(2.0).shell_radii
    want = [1, np.sqrt(2), 2] if kind == "square" else [1, np.sqrt(3), 2]
    assert np.allclose(radii, want)


def test_too_small_for_cutoff_is_clear_error():
    with pytest.raises(NearsightError, match="too small for cutoff"):
        Lattice("square", 6, 6).neighbors(3.0)
    Lattice("square", 7, 7).neighbors(3.0)
    assert Lattice("triangular", 4).min_size(3.0) == Lattice("triangular", 4).min_size(3.0)


def test_bad_lattice_input():
    with pytest.raises(NearsightError, match="unknown lattice"):
        Lattice("hexagonal", 4)
    with pytest.raises(NearsightError, match="size"):
        Lattice("square", 1)
    with pytest.raises(NearsightError, match="divisible by 3"):
        Lattice("triangular", 4).sublattice(3)


@pytest.mark.parametrize("kind", ["square", "triangular"])
def test_triangles_tile_and_are_counter_clockwise(kind):
    lat = Lattice(kind, 6, 6)
    tri = lat.triangles
    assert len(tri) == (2 if kind == "triangular" else 4) * lat.N
    # oriented area of each triangle (minimal-image displacements) is positive
    xy = lat.xy
    for t in tri[:50]:
        d1 = (xy[t[1]] - xy[t[0]] + 3) % 6 - 3
        d2 = (xy[t[2]] - xy[t[0]] + 3) % 6 - 3
        v1, v2 = d1 @ lat.a, d2 @ lat.a
        assert v1[0] * v2[1] - v1[1] * v2[0] > 0


def test_reciprocal_and_sublattices():
    lat = Lattice("triangular", 6, 6)
    assert np.allclose(lat.a @ lat.reciprocal.T, 2 * np.pi * np.eye(2))
    sub = lat.sublattice(3)
    nb = lat.neighbors(1.0).index
    assert np.all(sub[nb] != sub[:, None])  # 120-degree sublattices: neighbours always differ


def test_strip_geometry_and_distances():
    """A strip is open along x (no wrap: the far column is Lx-1 away) and periodic along y (minimal image)."""
    st = Strip(5, 4)
    assert (st.N, st.L1, st.L2, st.kind) == (20, 5, 4, "strip")
    d = st.distances_from(int(st.index(0, 0)))
    assert d[st.index(4, 0)] == 4.0 and d[st.index(0, 3)] == 1.0 and d[st.index(0, 2)] == 2.0
    assert np.isclose(d[st.index(3, 3)], np.hypot(3, 1))
    full = Lattice("square", 5, 4).distances_from(0)
    assert np.all(d >= full - 1e-12) and d[st.index(4, 0)] > full[st.index(4, 0)]   # the torus wraps, the strip not
    assert Strip.from_lattice(Lattice("square", 5, 4)) == st
    with pytest.raises(NearsightError, match="square lattice"):
        Strip.from_lattice(Lattice("triangular", 4))
    with pytest.raises(NearsightError, match="open strip"):
        st.index(5, 0)

