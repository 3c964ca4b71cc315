"""The pipeline commands: ``nearsight generate SYSTEM --spec NAME``, ``nearsight validate``, ``nearsight compare``
and ``nearsight train-shipped`` on tiny data made here; bad input is one line on stderr before any work."""
import os
import shutil

import numpy as np
import pytest
import torch

from ml_data import quench_dataset
from nearsight import Lattice, NearsightError, SDModel
from nearsight.analysis.compare import compare
from nearsight.cli import main
from nearsight.descriptors import Descriptor
from nearsight.electrons import EDProvider
from nearsight.fields import transverse_rms_ratio
from nearsight.io import read_dataset, write_dataset
from nearsight.ml import MLProvider, SiteEnergyModel, SiteMLP
from nearsight.ml.cards import save_model
from nearsight.states import random_spins

L = 5


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A small untrained model of the ml_data physics (square, J = 6, n = 0.485, kT = 0.01) on 5x5."""
    torch.manual_seed(0)
    lat = Lattice("square", L)
    desc = Descriptor(lat, 2.0)
    head = SiteMLP(desc.n_features, [8], "silu")
    with torch.no_grad():
        x = desc(torch.as_tensor(random_spins(lat.N, np.random.default_rng(0), batch=4)))
        head.set_normalization(x.reshape(-1, desc.n_features).mean(0), x.reshape(-1, desc.n_features).std(0),
                               e_ref=-6.0, scale=0.1)
    model = SiteEnergyModel(desc, head, lat).to(torch.float64)
    card = {"name": "tiny", "lattice": "square", "t": 1.0, "t2": 0.0, "J": 6.0, "B": [0, 0, 0], "kT": 0.01,
            "filling": 0.485, "mu": None, "ensemble": "canonical", "cutoff": model.cutoff,
            "n_features": head.n_features, "network": head.shape(), "dtype": "float64",
            "descriptor": desc.config(), "energy_reference": -6.0,
            "training_data": {"provider": "ed", "lattice_sizes": [[L, L]], "n_frames": 0},
            "held_out": {"transverse_rms_ratio": 0.5, "split_time": 10.0,
                         "disordered": {"transverse_rms_ratio": 0.75, "n_frames": 3},
                         "ordered": {"transverse_rms_ratio": 0.25, "n_frames": 4}}}
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(str(path), model, card)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A quench (frames at t = 0, 0.1, ..., 0.4) and the same frames recorded as an ordered-start run."""
    d = tmp_path_factory.mktemp("data")
    q = quench_dataset(str(d / "q.h5"), L=L, n_traj=1, steps=8, every=2)
    arrays, attrs = read_dataset(q)
    o = str(d / "o.h5")
    write_dataset(o, arrays["spins"], arrays["fields"], arrays["energy"], trajectory=arrays["trajectory"],
                  time=arrays["time"], attrs={**attrs, "initial": "neel"})
    return q, o


def _one_line_error(capsys, rc, needle):
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------------------------------------------- validate
def test_validate_splits_by_kind_and_pools_over_files(model_path, data, tmp_path, capsys):
    q, o = data
    report = tmp_path / "r.md"
    assert main(["validate", "--model", model_path, "--data", q, o, "--split-time", "0.25", "--floor-draws", "2",
                 "--report", str(report)]) == 0
    out = capsys.readouterr().out
    arrays = read_dataset(q)[0]
    S, H, t = (torch.as_tensor(arrays[k]) for k in ("spins", "fields", "time"))
    pred = MLProvider(model_path, Lattice("square", L))(S).fields.detach()
    dis = t < 0.25
    # the quench: disordered = t < 0.25, ordered = the rest; the ordered-start file: every frame ordered
    want_dis = transverse_rms_ratio(pred[dis], H[dis], S[dis])
    want_all = transverse_rms_ratio(pred, H, S)
    want_ord = transverse_rms_ratio(torch.cat([pred[~dis], pred]), torch.cat([H[~dis], H]), torch.cat([S[~dis], S]))
    pooled = [line for line in out.splitlines() if line.startswith("held out, all files pooled")][0]
    assert f"disordered {100 * want_dis:.2f}%" in pooled and f"ordered {100 * want_ord:.2f}%" in pooled
    assert f"overall {100 * want_all:.2f}%" in pooled
    rows = [line.split() for line in out.splitlines() if line.startswith("o.h5")]
    assert [r[1] for r in rows] == ["all", "ordered"]                 # no disordered frame in an ordered-start file
    text = report.read_text()
    assert "nearsight validate --model" in text and "| q.h5 | disordered (t<0.25) (3 frames) |" in text


@pytest.mark.parametrize("argv, needle", [
    (["--data", "nope.h5"], "does not exist"),
    (["--floor-draws", "1"], "at least 2 frames"),
    (["--split-time", "-1"], "--split-time"),
    (["--report", "/proc/nope/r.md"], "does not exist"),
])
def test_validate_bad_input_is_one_line_before_work(model_path, data, capsys, argv, needle):
    base = {"--data": [data[0]], "--model": [model_path]}
    for k, v in zip(argv[::2], argv[1::2]):
        base[k] = [v]
    rc = main(["validate", *[x for k, v in base.items() for x in (k, *v)]])
    _one_line_error(capsys, rc, needle)
    assert capsys.readouterr().out == ""


def test_validate_unknown_model(data, capsys):
    _one_line_error(capsys, main(["validate", "--model", "no-such-model", "--data", data[0]]), "no-such-model")


# ----------------------------------------------------------------------------------------------------- compare
def test_compare_identical_dynamics_give_z_zero():
    """Paired, without bath noise, ED against ED: the same trajectories, so every difference and z is 0."""
    lat = Lattice("triangular", 4)
    model = SDModel(J=2.0, filling=0.25, kT=0.01)
    s = {"size": 4, "replicas": 2, "steps": 4, "every": 2, "dt": 0.05, "alpha": 0.5, "bath_kT": 0.0, "seed": 1}
    c = compare(EDProvider(lat, model), EDProvider(lat, model), model, lat, s, name="ED2", paired=True,
                log=lambda m: None)
    assert c.t.shape == (3,) and c.ed["nn"].shape == (3, 2)
    assert c.second[0] == "chi"
    for q in ("nn", "second"):
        assert np.array_equal(c.ed[q], c.tested[q]) and np.all(c.z(q) == 0)
    assert c.worst() == 0.0


def test_compare_on_the_square_lattice_uses_the_fm_site_fraction():
    """Square lattice: the second observable is the fraction of sites whose four bonds all exceed 0.5, checked
    against a direct count on the stored frames' spins (the ferromagnet: 1; random spins: about 0)."""
    from nearsight.analysis.compare import _second
    from nearsight.states import make_state
    lat = Lattice("square", 4)
    s = {"size": 4, "replicas": 2, "steps": 2, "every": 2, "dt": 0.05, "alpha": 0.5, "bath_kT": 0.0, "seed": 1}
    model = SDModel(J=6.0, filling=0.4375, kT=0.1)
    c = compare(EDProvider(lat, model), EDProvider(lat, model), model, lat, s, name="ED2", paired=True,
                log=lambda m: None)
    assert c.second == ("fm", "FM-site fraction") and c.ed["second"].shape == (2, 2)
    ferro = make_state("ferro", lat, batch=2)
    assert np.all(_second(ferro, lat) == 1.0)
    one = make_state("ferro", lat)
    one[5] = -one[5]                              # site 5 and its four neighbours lose the FM condition
    assert _second(one, lat) == (16 - 5) / 16


def test_compare_cli_runs_and_reuses_the_ed_cache(model_path, tmp_path, capsys):
    argv = ["compare", "--model", model_path, "--size", str(L), "--replicas", "2", "--steps", "4", "--every", "2",
            "--plot", str(tmp_path / "p.png"), "--ed-cache", str(tmp_path / "c" / "ed.npz")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "ED ensemble written" in out and "largest |difference|" in out and (tmp_path / "p.png").exists()
    assert main(argv + ["--paired"]) == 0            # ED starts and noise do not depend on --paired: cache reused
    assert "ED ensemble read from" in capsys.readouterr().out


def test_ed_cache_of_a_longer_run_serves_a_shorter_one_bit_for_bit(tmp_path):
    """The first frames of a cached longer ED run are the shorter run exactly (same starts, same noise per step);
    another `every`, or a step count that is not a multiple of it, is recomputed."""
    import numpy as np

    from nearsight.analysis.compare import ed_series, series
    from nearsight.electrons import EDProvider
    from nearsight.hamiltonian import SDModel
    from nearsight.lattice import Lattice
    from nearsight.states import make_state
    lat, model = Lattice("square", 4), SDModel(J=6.0, filling=0.5, kT=0.1)
    ed = EDProvider(lat, model)
    s0 = make_state("random", lat, seed=3, batch=2)
    base = {"dt": 0.05, "alpha": 0.5, "bath_kT": 0.005, "every": 2}
    run = lambda steps: series(ed, s0, {**base, "steps": steps}, lat, 7)          # noqa: E731
    key = lambda steps, every=2: {"physics": model.to_dict(), "seed": 3, "replicas": 2, "steps": steps,  # noqa: E731
                                  **base, "every": every}
    cache, logs = str(tmp_path / "ed.npz"), []
    ed_series(cache, key(6), lambda: run(6), logs.append)
    short = ed_series(cache, key(4), lambda: pytest.fail("recomputed a prefix of the cache"), logs.append)
    fresh = run(4)
    assert "first 3 frames" in logs[-1] and len(short[0]) == 3
    for a, b in zip(short, fresh):
        np.testing.assert_array_equal(a, b)
    calls = []
    ed_series(cache, key(4, every=1), lambda: calls.append(1) or run(4), logs.append)   # other `every`: recomputed
    assert calls == [1]


@pytest.mark.parametrize("argv, needle", [
    (["--replicas", "1"], "two replicas"),
    (["--steps", "0"], "--steps"),
    (["--plot", "/proc/x.png"], "cannot write"),
])
def test_compare_bad_input_is_one_line_before_work(model_path, capsys, argv, needle):
    rc = main(["compare", "--model", model_path, "--size", str(L), *argv])
    _one_line_error(capsys, rc, needle)


# ----------------------------------------------------------------------------------- generate --spec, train-shipped
SYSTEM = """root: ../..
data_dir: data
physics: {lattice: square, J: 6.0, filling: 0.485, kT: 0.01, solver: ed}
sampling: {dt: 0.05, alpha: 0.5}
specs:
  a: {size: 4, initial: random, bath_kT: [0.01], replicas: 1, steps: 4, every: 2, seed: 3}
  a01: {relabel: a, kT: 0.1}
"""


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "configs" / "systems").mkdir(parents=True)
    (tmp_path / "configs" / "train").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "configs" / "systems" / "s.yaml").write_text(SYSTEM)
    (tmp_path / "configs" / "train" / "m.yaml").write_text("datasets: [data/a01.h5]\nout: runs/m\n")
    return tmp_path


def test_generate_spec_equals_the_flat_config(checkout, monkeypatch):
    monkeypatch.chdir(checkout)
    sysf = os.path.join("configs", "systems", "s.yaml")
    assert main(["generate", sysf, "--spec", "a"]) == 0
    assert main(["generate", sysf, "--spec", "a01"]) == 0
    assert main(["generate", "--lattice", "square", "--size", "4", "--J", "6", "--filling", "0.485", "--kT", "0.01",
                 "--bath-kT", "0.01", "--replicas", "1", "--steps", "4", "--every", "2", "--seed", "3",
                 "--out", "flat.h5"]) == 0
    a, flat, a01 = (read_dataset(p) for p in ("data/a.h5", "flat.h5", "data/a01.h5"))
    for k in ("spins", "fields", "energy", "time"):
        assert np.array_equal(a[0][k], flat[0][k])
    assert np.array_equal(a01[0]["spins"], a[0]["spins"]) and a01[1]["kT"] == 0.1 and a01[1]["source"] == "data/a.h5"


def test_generate_spec_makes_the_system_data_dir_on_a_fresh_checkout(checkout, capsys, monkeypatch):
    """A fresh clone has no data/ (it is ignored): '--spec' writes into the system file's data_dir, so it makes it;
    an explicit --out into a missing directory is still a one-line error."""
    monkeypatch.chdir(checkout)
    os.rmdir("data")
    sysf = os.path.join("configs", "systems", "s.yaml")
    _one_line_error(capsys, main(["generate", sysf, "--spec", "a", "--out", "nowhere/a.h5"]), "does not exist")
    assert not os.path.exists("data") and not os.path.exists("nowhere")
    assert main(["generate", sysf, "--spec", "a"]) == 0
    assert read_dataset("data/a.h5")[0]["spins"].shape[1:] == (16, 3)


def test_train_shipped_plans_and_errors(checkout, capsys):
    assert main(["train-shipped", "m", "--root", str(checkout), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    sysf = os.path.join("configs", "systems", "s.yaml")
    assert out == [f"would run: nearsight generate {sysf} --spec a", f"would run: nearsight generate {sysf} --spec a01",
                   f"would run: nearsight train {os.path.join('configs', 'train', 'm.yaml')}"]
    _one_line_error(capsys, main(["train-shipped", "nope", "--root", str(checkout)]), "available: m")
    (checkout / "configs" / "train" / "m.yaml").write_text("datasets: [data/zz.h5]\nout: runs/m\n")
    _one_line_error(capsys, main(["train-shipped", "m", "--root", str(checkout)]), "no spec of")
    assert not os.path.exists(checkout / "runs")


def test_train_shipped_refuses_a_dataset_its_spec_no_longer_makes(checkout, capsys, monkeypatch):
    """An existing dataset is used as it is only if its spec makes the same now: a spec edited after its dataset
    was made (a seed, the labels' kT) stops train-shipped before any work, naming the dataset and the first
    difference; a relabelling of a stale dataset names the stale source and itself; with the source file gone, the
    relabelling is checked against what the source's spec makes now; restoring the spec clears it."""
    monkeypatch.chdir(checkout)
    sysf = os.path.join("configs", "systems", "s.yaml")
    assert main(["generate", sysf, "--spec", "a"]) == 0 and main(["generate", sysf, "--spec", "a01"]) == 0
    capsys.readouterr()
    monkeypatch.chdir(checkout.parent)                  # the check runs from the checkout, wherever it is called
    dry = ["train-shipped", "m", "--root", str(checkout), "--dry-run"]
    assert main(dry) == 0
    train = f"would run: nearsight train {os.path.join('configs', 'train', 'm.yaml')}"
    assert capsys.readouterr().out.splitlines() == [train]
    system = checkout / "configs" / "systems" / "s.yaml"
    for edit, needle in [(("kT: 0.1}", "kT: 0.2}"), "'data/a01.h5' was made with other settings than spec a01 of "
                          f"{sysf} gives now (kT is 0.2 now but 0.1 in the file); move 'data/a01.h5' away"),
                         (("seed: 3}", "seed: 4}"), "'data/a.h5' was made with other settings than spec a of "
                          f"{sysf} gives now (seed is 4 now but 3 in the file)")]:
        system.write_text(SYSTEM.replace(*edit))
        _one_line_error(capsys, main(dry), needle)
        _one_line_error(capsys, main(["train-shipped", "m", "--root", str(checkout)]), needle)
        assert not os.path.exists(checkout / "runs")
    _one_line_error(capsys, main(dry), "(seed is 4 now but 3 in the file); move 'data/a.h5' away to have it made "
                    "again, or restore the spec; 'data/a01.h5' was relabelled from it: move it away too")
    os.remove(checkout / "data" / "a.h5")   # the source gone: a01 is checked against what a's spec makes now
    _one_line_error(capsys, main(dry), "'data/a01.h5' was made with other settings than spec a01 of "
                    f"{sysf} gives now (seed is 4 now but 3 in the file)")   # a01 holds frames of a's old seed
    system.write_text(SYSTEM.replace("kT: 0.1}", "kT: 0.2}"))
    _one_line_error(capsys, main(dry), "(kT is 0.2 now but 0.1 in the file)")
    system.write_text(SYSTEM)
    capsys.readouterr()
    assert main(dry) == 0                   # a (not needed: a01 exists) is not made again
    assert capsys.readouterr().out.splitlines() == [train]


def test_a_driven_dataset_is_checked_against_its_spec_even_without_its_driver(checkout, model_path, monkeypatch):
    """A driven spec's dataset matches its spec (the driver by name and SHA-256); once the driver file is gone (the
    dataset no longer needs it) everything else is still compared, and nothing fails for the missing file."""
    from nearsight.cli.generate import spec_mismatch
    driver = checkout / "runs" / "d" / "d.pt"
    driver.parent.mkdir(parents=True)
    shutil.copy(model_path, driver)
    system = checkout / "configs" / "systems" / "s.yaml"
    driven = ("  b: {size: %d, driver: runs/d/d.pt, bath_kT: [0.01], replicas: 1, steps: 4, every: 2, seed: 7, "
              "mu_window: [-4.8, -3.5]}\n" % L)
    system.write_text(SYSTEM + driven)
    monkeypatch.chdir(checkout)
    sysf = os.path.join("configs", "systems", "s.yaml")
    assert main(["generate", sysf, "--spec", "b"]) == 0
    monkeypatch.chdir(checkout.parent)
    assert spec_mismatch(str(system), "b", str(checkout)) is None
    os.remove(driver)
    assert spec_mismatch(str(system), "b", str(checkout)) is None
    system.write_text(SYSTEM + driven.replace("steps: 4", "steps: 6"))
    assert spec_mismatch(str(system), "b", str(checkout)) == "steps is 6 now but 4 in the file"
    system.write_text(SYSTEM + driven.replace("runs/d/d.pt", "runs/e/e.pt"))       # another driver, also gone
    assert spec_mismatch(str(system), "b", str(checkout)) == "driver_model_path is 'e.pt' now but 'd.pt' in the file"
    monkeypatch.chdir(checkout)
    assert main(["generate", sysf, "--spec", "a"]) == 0                            # undriven; its spec now names
    system.write_text(SYSTEM.replace("seed: 3}", "seed: 3, driver: runs/e/e.pt}"))  # a driver not trained yet
    assert spec_mismatch(str(system), "a", str(checkout)) == "driver_model_path is 'e.pt' now but absent in the file"


def test_a_partial_comparison_keeps_a_model_file_checked_by_its_digest(model_path, tmp_path):
    """Compared on some keys only (a file it depends on is gone), a model file that is there is still compared by
    name and SHA-256: the same file matches (by any path), another file's weights under the same name do not."""
    from nearsight.datasets.generate import dataset_mismatch
    from nearsight.io import write_dataset
    z = np.zeros((1, 4, 3))
    z[..., 2] = 1.0
    path = str(tmp_path / "x.h5")
    write_dataset(path, z, z, np.zeros(1), attrs={"model_path": model_path, "seed": 1})
    copy = tmp_path / "other" / os.path.basename(model_path)
    copy.parent.mkdir()
    shutil.copy(model_path, copy)
    assert dataset_mismatch(path, {"model_path": str(copy)}, only_given=True) is None
    other = torch.load(model_path, weights_only=False)
    other["state_dict"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in other["state_dict"].items()}
    torch.save(other, copy)
    assert dataset_mismatch(path, {"model_path": str(copy)}, only_given=True).startswith("model_sha256 is")


def test_generate_system_file_needs_a_known_spec(checkout, capsys, monkeypatch):
    monkeypatch.chdir(checkout)
    sysf = os.path.join("configs", "systems", "s.yaml")
    _one_line_error(capsys, main(["generate", sysf]), "--spec NAME (one of a, a01)")
    _one_line_error(capsys, main(["generate", sysf, "--spec", "b"]), "has no spec 'b'")
    assert os.listdir("data") == []


@pytest.mark.parametrize("command", ["validate", "compare", "train-shipped", "generate"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "usage: nearsight " + command in capsys.readouterr().out


def test_shipped_configs_dry_run(capsys):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if shutil.which("git") is None or not os.path.isdir(os.path.join(root, "configs", "systems")):
        pytest.skip("not a checkout")
    assert main(["train-shipped", "triangular-120", "--root", root, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(os.path.join("configs", "train", "triangular-120.yaml"))


def test_models_prints_held_out_errors_by_kind(model_path, tmp_path, monkeypatch, capsys):
    from nearsight.ml import cards as cards_mod
    monkeypatch.setattr(cards_mod, "MODELS_DIR", tmp_path)
    shutil.copy(model_path, tmp_path / "tiny.pt")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "held-out |h_perp| error: disordered 75.0% / ordered 25.0% / overall 50.0%" in out
    old = torch.load(model_path, weights_only=False)        # a card from before the split: its own numbers, named
    old["card"]["held_out"] = {"transverse_rms_ratio": 0.5, "early_transverse_rms_ratio": 0.4,
                               "late_transverse_rms_ratio": 0.6, "early_late_split_time": 10.0}
    torch.save(old, tmp_path / "tiny.pt")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "overall 50.0%; this card predates" in out and "early 40.0% / late 60.0%" in out and "75.0" not in out


def test_interrupted_driven_generation_resumes_block_by_block(model_path, tmp_path, monkeypatch):
    """A dataset driven by a model file and cut off after its first block resumes from that block: the driver may
    be named by another path to the same file (the block keeps its name and SHA-256), and the result is the
    uninterrupted run's bit for bit; a driver file with other weights is refused."""
    from nearsight.datasets import generate as gen
    lat = Lattice("square", L)
    ed = EDProvider(lat, SDModel(J=6.0, filling=0.485, kT=0.01))
    kw = dict(kTs=[0.01, 0.05], replicas=2, steps=6, every=3, seed=5, label_batch=4, progress=False)
    full = gen.generate_dataset(ed, str(tmp_path / "full.h5"), driver=MLProvider(model_path, lat), **kw)
    real, calls = gen.run_llg, []

    def crash_in_second_block(*a, **k):
        calls.append(k["seed"])
        if len(calls) == 2:
            raise KeyboardInterrupt     # killed while integrating block 1
        return real(*a, **k)

    out = str(tmp_path / "d.h5")
    monkeypatch.setattr(gen, "run_llg", crash_in_second_block)
    with pytest.raises(KeyboardInterrupt):
        gen.generate_dataset(ed, out, driver=MLProvider(model_path, lat), **kw)
    assert os.path.exists(os.path.join(out + ".parts", "block000.h5")) and not os.path.exists(out)
    copy = tmp_path / "elsewhere" / "tiny.pt"
    copy.parent.mkdir()
    shutil.copy(model_path, copy)
    calls.clear()
    monkeypatch.setattr(gen, "run_llg", lambda *a, **k: calls.append(k["seed"]) or real(*a, **k))
    gen.generate_dataset(ed, out, driver=MLProvider(str(copy), lat), **kw)
    assert calls == [5 * 1000 + 1]                               # block 0 reused, only block 1 integrated
    (a, attrs), (b, _) = read_dataset(full), read_dataset(out)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert attrs["driver_model_path"] == "tiny.pt" and len(attrs["driver_model_sha256"]) == 64
    other = torch.load(model_path, weights_only=False)           # the same name, other weights
    other["state_dict"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in other["state_dict"].items()}
    torch.save(other, copy)
    with pytest.raises(KeyboardInterrupt):
        monkeypatch.setattr(gen, "run_llg", crash_in_second_block)
        calls.clear()
        gen.generate_dataset(ed, str(tmp_path / "e.h5"), driver=MLProvider(model_path, lat), **kw)
    with pytest.raises(NearsightError, match="made with other settings"):
        gen.generate_dataset(ed, str(tmp_path / "e.h5"), driver=MLProvider(str(copy), lat), **kw)


def test_quench_attrs_describe_a_driven_dataset_without_running_it(model_path, tmp_path):
    """What train-shipped compares an existing dataset with: the attributes a generation would write, computed
    without running it, match the dataset it wrote (a driver by name and SHA-256, wherever it lies), and name the
    first difference otherwise (another seed, a driver with other weights)."""
    from nearsight.datasets import generate as gen
    lat = Lattice("square", L)
    ed = EDProvider(lat, SDModel(J=6.0, filling=0.485, kT=0.01))
    kw = dict(kTs=[0.01], replicas=1, steps=4, every=2, seed=5)
    out = gen.generate_dataset(ed, str(tmp_path / "d.h5"), driver=MLProvider(model_path, lat), label_batch=4,
                               progress=False, mu_window=(-4.8, -3.5), **kw)
    copy = tmp_path / "elsewhere" / os.path.basename(model_path)
    copy.parent.mkdir()
    shutil.copy(model_path, copy)
    attrs = gen.quench_attrs(ed, driver=MLProvider(str(copy), lat), mu_window=(-4.8, -3.5), **kw)
    assert gen.dataset_mismatch(out, attrs) is None
    assert gen.dataset_mismatch(out, {**attrs, "seed": 6}) == "seed is 6 now but 5 in the file"
    no_window = gen.quench_attrs(ed, driver=MLProvider(str(copy), lat), **kw)     # labels at the filling instead
    assert gen.dataset_mismatch(out, no_window) == "filling is 0.485 now but absent in the file"
    other = torch.load(model_path, weights_only=False)
    other["state_dict"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in other["state_dict"].items()}
    torch.save(other, copy)
    diff = gen.dataset_mismatch(out, gen.quench_attrs(ed, driver=MLProvider(str(copy), lat), mu_window=(-4.8, -3.5),
                                                      **kw))
    assert diff.startswith("driver_model_sha256 is ")
