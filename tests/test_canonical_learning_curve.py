"""benchmarks/canonical_learning_curve.py reads canonical_ml_check.py's printed JSON stream (model and reference
sides), fits the log-log slope per family, and refuses a malformed point in one line."""
import csv
import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _module():
    spec = importlib.util.spec_from_file_location(
        "canonical_learning_curve", os.path.join(HERE, "..", "benchmarks", "canonical_learning_curve.py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def _check_output(path, model_err, ref_err):
    """What canonical_ml_check.py prints: one indented JSON object per dataset, with a progress line between."""
    objs = [{"reference": {"name": "ref", "field_ratio": ref_err * k}, "dataset": f"data/canon/{name}.h5",
             "mu_err_max": 0.01 * k, "field_ratio": model_err * k}
            for name, k in (("test16_canonical", 1.0), ("test16_puddle", 0.5))]
    path.write_text("\nlabels: 100%\n".join(json.dumps(o, indent=1) for o in objs))


def test_slopes_and_rows_follow_the_check_outputs(tmp_path):
    m = _module()
    # model error ~ frames^-0.5 exactly, reference ~ frames^-0.1
    for frames in (1000, 4000):
        _check_output(tmp_path / f"c{frames}.json", 0.1 * (frames / 1000) ** -0.5, 0.2 * (frames / 1000) ** -0.1)
    points = [f"{lab}:{f}:{tmp_path / f'c{f}.json'}:{side}" for f in (1000, 4000)
              for lab, side in (("mpnn", "model"), ("bp", "reference"))]
    out = str(tmp_path / "lc")
    assert m.main(sum((["--point", p] for p in points), ["--out", out])) == 0
    rows = list(csv.DictReader(open(out + ".csv")))
    assert len(rows) == 8 and os.path.getsize(out + ".png") > 0
    for lab, expect in (("mpnn", -0.5), ("bp", -0.1)):
        for ds in ("test16_canonical", "test16_puddle"):
            pts = [(int(r["frames"]), float(r["field_error"])) for r in rows if r["label"] == lab and r["dataset"] == ds]
            assert m.slope(pts) == pytest.approx(expect, abs=1e-12)
    mpnn = [r for r in rows if r["label"] == "mpnn" and r["frames"] == "4000"]
    assert [float(r["mu_err_max"]) for r in mpnn] == [0.01, 0.005]       # the model side carries mu*; bp has none
    assert all(r["mu_err_max"] == "" for r in rows if r["label"] == "bp")


def test_bad_points_are_refused_in_one_line(tmp_path):
    m = _module()
    (tmp_path / "empty.json").write_text("no json here\n")
    (tmp_path / "noref.json").write_text(json.dumps({"dataset": "x.h5", "field_ratio": 0.1}))
    cases = [("mpnn:12:f.json", "LABEL:FRAMES:FILE:SIDE"), ("mpnn:many:f.json:model", "LABEL:FRAMES:FILE:SIDE"),
             (f"mpnn:10:{tmp_path / 'empty.json'}:model", "no canonical_ml_check.py output"),
             (f"bp:10:{tmp_path / 'noref.json'}:reference", "has no reference side")]
    for point, msg in cases:
        with pytest.raises(SystemExit) as e:
            m.main(["--point", point, "--out", str(tmp_path / "x")])
        assert msg in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "x.csv").exists()
