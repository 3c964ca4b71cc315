"""benchmarks/bench_mpnn.py times every shipped model of a lattice (mu-conditioned ones at fixed mu) and the mpnn
settings of training configs, one row each; a config of another family is refused in one line."""
import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def _module():
    spec = importlib.util.spec_from_file_location("bench_mpnn", os.path.join(ROOT, "benchmarks", "bench_mpnn.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_rows_for_shipped_models_and_training_configs(capsys):
    cfgs = [os.path.join(ROOT, "configs", "train", f"square-double-exchange-canonical{s}.yaml") for s in ("", "-wide")]
    _module().main(["--size", "12", "--lattices", "square", "--channels", "--repeat", "1", "--train",
                    "--config", *cfgs])
    rows = {r.split()[0] if r.split()[0].endswith(".yaml") else " ".join(r.split()[:2]): r.split()
            for r in capsys.readouterr().out.splitlines()[2:]}
    assert "MPNN square-double-exchange-canonical" in rows and "BP square-double-exchange" in rows
    # the configs' widths are what is timed: version 4 (8 / 4 channels, head 32-32) against the wide one (16 / 8, 64-64)
    v4, wide = (int(rows[os.path.basename(c)][2]) for c in cfgs)
    assert v4 == 28737 and wide == 114497
    assert all(float(x) > 0 for r in rows.values() for x in r[-2:])


def test_a_config_of_another_family_is_refused():
    bp = os.path.join(ROOT, "configs", "train", "square-double-exchange.yaml")
    with pytest.raises(SystemExit, match="not an mpnn training config"):
        _module().main(["--size", "12", "--lattices", "square", "--channels", "--repeat", "1", "--config", bp])
