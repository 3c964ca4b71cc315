"""The one factory from a spec to a provider (nearsight.providers): every solver kind gives exactly the provider built
by hand, a driven model (dw-strip) runs from a spec and from the command line, bad specs are one-line errors."""
import numpy as np
import pytest
import torch

from nearsight import Lattice, NearsightError, SDModel
from nearsight.cli import main
from nearsight.electrons import AnisotropyProvider, EDProvider, HeisenbergProvider, KPMProvider, NEGFProvider
from nearsight.fields import SumProvider
from nearsight.lattice import Strip
from nearsight.ml.cards import load_card
from nearsight.ml.driven import GeneralizedMLProvider
from nearsight.ml.provider import MLProvider
from nearsight.providers import build_provider, geometry_of, model_of
from nearsight.states import random_spins

SQ4 = {"lattice": "square", "size": 4, "J": 2.0, "mu": 0.1, "kT": 0.1, "B": "0,0,0.2"}
MODEL4 = SDModel(J=2.0, mu=0.1, kT=0.1, B=(0.0, 0.0, 0.2))


def _same(a, b, spins) -> bool:
    ra, rb = a.compute(spins), b.compute(spins)
    return torch.equal(ra.fields, rb.fields) and torch.equal(ra.energy, rb.energy)


@pytest.mark.parametrize("spec, by_hand", [
    ({**SQ4}, lambda: EDProvider(Lattice("square", 4), MODEL4)),
    ({**SQ4, "solver": "ed", "t2": None, "device": "cpu"}, lambda: EDProvider(Lattice("square", 4), MODEL4)),
    ({**SQ4, "solver": "kpm", "moments": 64, "realizations": 1},
     lambda: KPMProvider(Lattice("square", 4), MODEL4, moments=64, realizations=1)),
    ({**SQ4, "solver": "negf", "size2": 2, "bias": 0.3, "wide_band": 0.5, "tol": 1e-8},
     lambda: NEGFProvider(Strip(4, 2), MODEL4, bias=0.3, wide_band=0.5, tol=1e-8)),
    ({"lattice": "triangular", "size": 3, "solver": "classical", "J_H": 0.5, "B": [0, 0, 1]},
     lambda: HeisenbergProvider(Lattice("triangular", 3), J_H=0.5, B=(0, 0, 1))),
    ({**SQ4, "anisotropy": 0.3},
     lambda: SumProvider(EDProvider(Lattice("square", 4), MODEL4), AnisotropyProvider(Lattice("square", 4), 0.3))),
    ({**SQ4, "lattice": Lattice("square", 4, 2)}, lambda: EDProvider(Lattice("square", 4, 2), MODEL4)),
], ids=["ed-default", "ed", "kpm", "negf", "classical", "anisotropy", "lattice-object"])
def test_each_solver_is_the_provider_built_by_hand(spec, by_hand, rng):
    p, ref = build_provider(spec), by_hand()
    assert type(p) is type(ref) and p.lattice.N == ref.lattice.N
    assert _same(p, ref, random_spins(p.lattice.N, rng, batch=2))


def test_a_shipped_conservative_model(rng):
    lat = Lattice("square", 16)
    p = build_provider({"lattice": "square", "size": 16, "solver": "ml", "model": "square-double-exchange",
                        "J": load_card("square-double-exchange")["J"]})
    assert isinstance(p, MLProvider)
    assert _same(p, MLProvider("square-double-exchange", lat), random_spins(lat.N, rng))


def test_the_driven_model_runs_on_the_square_lattice_read_as_a_strip(rng, tmp_path, capsys):
    card = load_card("dw-strip")
    Lx, Ly = card["geometry"]["Lx"], card["geometry"]["Ly"]
    p = build_provider({"lattice": "square", "size": Lx, "size2": Ly, "solver": "ml", "model": "dw-strip",
                        "bias": 0.3, "anisotropy": card["anisotropy"]["K"]})
    assert isinstance(p, SumProvider) and isinstance(p.parts[0], GeneralizedMLProvider)
    assert p.lattice == Strip(Lx, Ly) and p.conservative is False
    s = random_spins(Lx * Ly, rng)
    ref = GeneralizedMLProvider("dw-strip", bias=0.3)
    assert torch.equal(p.parts[0].compute(s).fields, ref.compute(s).fields)
    # the same from the command line
    np.save(tmp_path / "s.npy", s)
    args = ["fields", "--lattice", "square", "--size", str(Lx), "--size2", str(Ly), "--solver", "ml",
            "--model", "dw-strip", "--spins", str(tmp_path / "s.npy")]
    assert main([*args, "--bias", "0.3", "--out", str(tmp_path / "f.npz")]) == 0
    assert np.array_equal(np.load(tmp_path / "f.npz")["fields"], ref.compute(s).fields.numpy())
    capsys.readouterr()
    for extra, needle in ((["--out", str(tmp_path / "g.npz")], "driven model: its fields depend on the bias; "
                                                               "give --bias V"),
                          (["--bias", "0.3", "--lattice", "triangular", "--out", str(tmp_path / "g.npz")],
                           "give --lattice square")):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "g.npz").exists()


@pytest.mark.parametrize("spec, needle", [
    ({**SQ4, "solver": "tight-binding"}, "unknown solver 'tight-binding'"),
    ({**SQ4, "moment": 64}, "unknown provider key(s) moment"),
    ({**SQ4, "moments": 64}, "moments applies to solver='kpm' only (got solver='ed')"),
    ({**SQ4, "bias": 0.5}, "bias applies to solver='negf' or a driven ML model only"),
    ({**SQ4, "mu": None}, "needs the model: give J and one of mu / filling"),
    ({**SQ4, "lattice": None}, "give lattice={square,triangular} and size=L"),
    ({**SQ4, "lattice": "hexagonal"}, "lattice must be one of square, triangular or strip"),
    ({**SQ4, "B": "1,2"}, "B must be three finite numbers"),
    ({**SQ4, "lattice": Strip(4, 2)}, "a strip (open along x, between leads) is for solver='negf'"),
    ({**SQ4, "solver": "ml"}, "solver='ml' needs model=NAME_OR_PATH"),
    ({"lattice": "square", "size": 16, "solver": "ml", "model": "square-double-exchange", "bias": 0.1},
     "square-double-exchange is conservative"),
    ({"lattice": "square", "size": 16, "solver": "ml", "model": "square-double-exchange", "J": 1.0},
     "J=1 but the model has J="),
    ({"lattice": "square", "size": 16, "size2": 5, "solver": "ml", "model": "dw-strip"}, "give bias=V"),
])
def test_bad_specs_are_one_line_errors(spec, needle):
    with pytest.raises(NearsightError) as exc:
        build_provider(spec)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_flags_name_the_command_line_options():
    with pytest.raises(NearsightError, match="--probe-distance applies to --solver kpm only \\(got --solver ed\\)"):
        build_provider({**SQ4, "probe_distance": 4}, flags=True)
    with pytest.raises(NearsightError, match="give --J and one of --mu / --filling"):
        model_of({"J": 1.0}, flags=True)
    with pytest.raises(NearsightError, match="give --lattice"):
        geometry_of({"size": 4}, flags=True)
    assert geometry_of({"lattice": "strip", "size": 6, "size2": 3}) == Strip(6, 3)
