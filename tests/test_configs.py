"""The shipped configs: every one parses; the system files reproduce, spec by spec, the physics and sampling of
the 43 per-dataset files they replaced (configs/data/*.yaml and configs/curves/data/*.yaml, embedded below as they
were); and they form a complete pipeline: for every training config the planner of ``nearsight train-shipped``
finds a spec for each dataset it needs, the dataset each of those relabels and a training config for each driver
model, with no cycle, and orders the steps so that everything is made before it is used."""
import glob
import os

import pytest

from nearsight.cli import build_parser
from nearsight.cli.common import lattice_from, merged, provider_spec
from nearsight.providers import model_of
from nearsight.cli.generate import ALIASES, DEFAULTS, config_of
from nearsight.datasets.plan import Checkout, Step, model_file, plan
from nearsight.datasets.systems import load_system
from nearsight.errors import NearsightError
from nearsight.io import read_yaml
from nearsight.training import check_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = {"sqde": "square-double-exchange", "sqde01": "square-double-exchange", "tetra": "triangular-tetrahedral",
           "tetra01": "triangular-tetrahedral", "tri120": "triangular-120"}

#: every old per-dataset config file (name -> its parsed YAML), as it was before configs/systems/ replaced them
OLD = {
    'sqde01_ordered': {'source': 'data/sqde_ordered.h5', 'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4,
        'kT': 0.1, 'solver': 'ed', 'out': 'data/sqde01_ordered.h5'},
    'sqde01_quench': {'source': 'data/sqde_quench.h5', 'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4,
        'kT': 0.1, 'solver': 'ed', 'out': 'data/sqde01_quench.h5'},
    'sqde01_quench2': {'source': 'data/sqde_quench2.h5', 'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4,
        'kT': 0.1, 'solver': 'ed', 'out': 'data/sqde01_quench2.h5'},
    'sqde01_quench3': {'source': 'data/sqde_quench3.h5', 'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4,
        'kT': 0.1, 'solver': 'ed', 'out': 'data/sqde01_quench3.h5'},
    'sqde01_quench4': {'source': 'data/sqde_quench4.h5', 'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4,
        'kT': 0.1, 'solver': 'ed', 'out': 'data/sqde01_quench4.h5'},
    'sqde01_test_quench12': {'source': 'data/sqde_test_quench12.h5', 'lattice': 'square', 'size': 12, 'J': 6.0,
        'mu': -4.4, 'kT': 0.1, 'solver': 'ed', 'out': 'data/sqde01_test_quench12.h5'},
    'sqde01_val_ordered': {'source': 'data/sqde_val_ordered.h5', 'lattice': 'square', 'size': 16, 'J': 6.0,
        'mu': -4.4, 'kT': 0.1, 'solver': 'ed', 'out': 'data/sqde01_val_ordered.h5'},
    'sqde01_val_quench': {'source': 'data/sqde_val_quench.h5', 'lattice': 'square', 'size': 16, 'J': 6.0, 'mu': -4.4,
        'kT': 0.1, 'solver': 'ed', 'out': 'data/sqde01_val_quench.h5'},
    'sqde_ml1': {'driver': 'runs/square-double-exchange-round0/square-double-exchange-round0.pt',
        'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4, 'kT': 0.1, 'solver': 'ed', 'initial': 'random',
        'kTs': [0.005, 0.02], 'replicas': 64, 'steps': 1000, 'every': 50, 'skip': 50, 'dt': 0.05, 'alpha': 0.5,
        'seed': 101, 'out': 'data/sqde_ml1.h5'},
    'sqde_ml2': {'driver': 'runs/square-double-exchange-round0/square-double-exchange-round0.pt',
        'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4, 'kT': 0.1, 'solver': 'ed', 'initial': 'random',
        'kTs': [0.005, 0.02], 'replicas': 128, 'steps': 1200, 'every': 60, 'skip': 60, 'dt': 0.05, 'alpha': 0.5,
        'seed': 102, 'out': 'data/sqde_ml2.h5'},
    'sqde_ml3': {'driver': 'square-double-exchange', 'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4,
        'kT': 0.1, 'solver': 'ed', 'initial': 'random', 'kTs': [0.005, 0.02], 'replicas': 192, 'steps': 1200,
        'every': 60, 'skip': 60, 'dt': 0.05, 'alpha': 0.5, 'seed': 103, 'out': 'data/sqde_ml3.h5'},
    'sqde_ordered': {'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4, 'kT': 0.01, 'solver': 'ed',
        'initial': 'neel', 'noise': 0.3, 'kTs': [0.01, 0.04], 'replicas': 2, 'steps': 400, 'every': 20, 'dt': 0.05,
        'alpha': 0.5, 'seed': 12, 'out': 'data/sqde_ordered.h5'},
    'sqde_quench': {'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005], 'replicas': 2, 'steps': 1500, 'every': 50, 'dt': 0.05, 'alpha': 0.5,
        'seed': 11, 'out': 'data/sqde_quench.h5'},
    'sqde_quench2': {'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.01, 0.03], 'replicas': 3, 'steps': 1000, 'every': 10, 'dt': 0.05,
        'alpha': 0.5, 'seed': 15, 'out': 'data/sqde_quench2.h5'},
    'sqde_quench3': {'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005, 0.02, 0.05], 'replicas': 4, 'steps': 600, 'every': 20, 'dt': 0.05,
        'alpha': 0.5, 'seed': 31, 'out': 'data/sqde_quench3.h5'},
    'sqde_quench4': {'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005, 0.02], 'replicas': 16, 'steps': 1000, 'every': 50, 'dt': 0.05,
        'alpha': 0.5, 'seed': 41, 'out': 'data/sqde_quench4.h5'},
    'sqde_test_quench12': {'lattice': 'square', 'size': 12, 'J': 6.0, 'mu': -4.4, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005], 'replicas': 2, 'steps': 1200, 'every': 50, 'dt': 0.05, 'alpha': 0.5,
        'seed': 77, 'out': 'data/sqde_test_quench12.h5'},
    'sqde_val_ordered': {'lattice': 'square', 'size': 16, 'J': 6.0, 'mu': -4.4, 'kT': 0.01, 'solver': 'ed',
        'initial': 'neel', 'noise': 0.3, 'kTs': [0.02], 'replicas': 1, 'steps': 200, 'every': 20, 'dt': 0.05,
        'alpha': 0.5, 'seed': 22, 'out': 'data/sqde_val_ordered.h5'},
    'sqde_val_quench': {'lattice': 'square', 'size': 16, 'J': 6.0, 'mu': -4.4, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005], 'replicas': 1, 'steps': 1500, 'every': 100, 'dt': 0.05, 'alpha': 0.5,
        'seed': 21, 'out': 'data/sqde_val_quench.h5'},
    'tetra01_ordered': {'source': 'data/tetra_ordered.h5', 'lattice': 'triangular', 'size': 18, 'J': 2.0,
        'filling': 0.25, 'kT': 0.1, 'solver': 'ed', 'out': 'data/tetra01_ordered.h5'},
    'tetra01_ordered2': {'source': 'data/tetra_ordered2.h5', 'lattice': 'triangular', 'size': 18, 'J': 2.0,
        'filling': 0.25, 'kT': 0.1, 'solver': 'ed', 'out': 'data/tetra01_ordered2.h5'},
    'tetra01_quench': {'source': 'data/tetra_quench.h5', 'lattice': 'triangular', 'size': 18, 'J': 2.0,
        'filling': 0.25, 'kT': 0.1, 'solver': 'ed', 'out': 'data/tetra01_quench.h5'},
    'tetra01_quench2': {'source': 'data/tetra_quench2.h5', 'lattice': 'triangular', 'size': 18, 'J': 2.0,
        'filling': 0.25, 'kT': 0.1, 'solver': 'ed', 'out': 'data/tetra01_quench2.h5'},
    'tetra01_val_ordered': {'source': 'data/tetra_val_ordered.h5', 'lattice': 'triangular', 'size': 16, 'J': 2.0,
        'filling': 0.25, 'kT': 0.1, 'solver': 'ed', 'out': 'data/tetra01_val_ordered.h5'},
    'tetra01_val_quench': {'source': 'data/tetra_val_quench.h5', 'lattice': 'triangular', 'size': 16, 'J': 2.0,
        'filling': 0.25, 'kT': 0.1, 'solver': 'ed', 'out': 'data/tetra01_val_quench.h5'},
    'tetra_ml1': {'driver': 'runs/triangular-tetrahedral-round0/triangular-tetrahedral-round0.pt',
        'lattice': 'triangular', 'size': 18, 'J': 2.0, 'filling': 0.25, 'kT': 0.1, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005, 0.01], 'replicas': 64, 'steps': 1000, 'every': 50, 'skip': 50,
        'dt': 0.05, 'alpha': 0.5, 'seed': 201, 'out': 'data/tetra_ml1.h5'},
    'tetra_ml_ordered': {'driver': 'runs/triangular-tetrahedral-round0/triangular-tetrahedral-round0.pt',
        'lattice': 'triangular', 'size': 18, 'J': 2.0, 'filling': 0.25, 'kT': 0.1, 'solver': 'ed',
        'initial': 'tetrahedral', 'noise': 0.3, 'kTs': [0.01, 0.03], 'replicas': 32, 'steps': 600, 'every': 30,
        'dt': 0.05, 'alpha': 0.5, 'seed': 301, 'out': 'data/tetra_ml_ordered.h5'},
    'tetra_ordered': {'lattice': 'triangular', 'size': 18, 'J': 2.0, 'filling': 0.25, 'kT': 0.01, 'solver': 'ed',
        'initial': 'tetrahedral', 'noise': 0.3, 'kTs': [0.01, 0.04], 'replicas': 2, 'steps': 400, 'every': 20,
        'dt': 0.05, 'alpha': 0.5, 'seed': 12, 'out': 'data/tetra_ordered.h5'},
    'tetra_ordered2': {'lattice': 'triangular', 'size': 18, 'J': 2.0, 'filling': 0.25, 'kT': 0.01, 'solver': 'ed',
        'initial': 'tetrahedral', 'noise': 0.3, 'kTs': [0.005, 0.02], 'replicas': 2, 'steps': 400, 'every': 20,
        'dt': 0.05, 'alpha': 0.5, 'seed': 13, 'out': 'data/tetra_ordered2.h5'},
    'tetra_quench': {'lattice': 'triangular', 'size': 18, 'J': 2.0, 'filling': 0.25, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005], 'replicas': 2, 'steps': 1000, 'every': 25, 'dt': 0.05, 'alpha': 0.5,
        'seed': 11, 'out': 'data/tetra_quench.h5'},
    'tetra_quench2': {'lattice': 'triangular', 'size': 18, 'J': 2.0, 'filling': 0.25, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.01], 'replicas': 2, 'steps': 800, 'every': 20, 'dt': 0.05, 'alpha': 0.5,
        'seed': 14, 'out': 'data/tetra_quench2.h5'},
    'tetra_val_ordered': {'lattice': 'triangular', 'size': 16, 'J': 2.0, 'filling': 0.25, 'kT': 0.01, 'solver': 'ed',
        'initial': 'tetrahedral', 'noise': 0.3, 'kTs': [0.02], 'replicas': 1, 'steps': 200, 'every': 20, 'dt': 0.05,
        'alpha': 0.5, 'seed': 22, 'out': 'data/tetra_val_ordered.h5'},
    'tetra_val_quench': {'lattice': 'triangular', 'size': 16, 'J': 2.0, 'filling': 0.25, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005], 'replicas': 1, 'steps': 1000, 'every': 100, 'dt': 0.05, 'alpha': 0.5,
        'seed': 21, 'out': 'data/tetra_val_quench.h5'},
    'tri120_ordered': {'lattice': 'triangular', 'size': 12, 'J': 3.0, 'filling': 0.5, 'kT': 0.01, 'solver': 'ed',
        'initial': 120, 'noise': 0.3, 'kTs': [0.01, 0.04], 'replicas': 2, 'steps': 400, 'every': 20, 'dt': 0.05,
        'alpha': 0.5, 'seed': 12, 'out': 'data/tri120_ordered.h5'},
    'tri120_quench': {'lattice': 'triangular', 'size': 12, 'J': 3.0, 'filling': 0.5, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005], 'replicas': 2, 'steps': 1500, 'every': 50, 'dt': 0.05, 'alpha': 0.5,
        'seed': 11, 'out': 'data/tri120_quench.h5'},
    'tri120_quench2': {'lattice': 'triangular', 'size': 12, 'J': 3.0, 'filling': 0.5, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.01, 0.03], 'replicas': 3, 'steps': 1000, 'every': 10, 'dt': 0.05,
        'alpha': 0.5, 'seed': 15, 'out': 'data/tri120_quench2.h5'},
    'tri120_quench3': {'lattice': 'triangular', 'size': 12, 'J': 3.0, 'filling': 0.5, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005, 0.02, 0.05], 'replicas': 4, 'steps': 600, 'every': 20, 'dt': 0.05,
        'alpha': 0.5, 'seed': 31, 'out': 'data/tri120_quench3.h5'},
    'tri120_quench4': {'lattice': 'triangular', 'size': 12, 'J': 3.0, 'filling': 0.5, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.01, 0.03, 0.005], 'replicas': 4, 'steps': 600, 'every': 20, 'dt': 0.05,
        'alpha': 0.5, 'seed': 41, 'out': 'data/tri120_quench4.h5'},
    'tri120_val_ordered': {'lattice': 'triangular', 'size': 15, 'J': 3.0, 'filling': 0.5, 'kT': 0.01, 'solver': 'ed',
        'initial': 120, 'noise': 0.3, 'kTs': [0.02], 'replicas': 1, 'steps': 200, 'every': 20, 'dt': 0.05,
        'alpha': 0.5, 'seed': 22, 'out': 'data/tri120_val_ordered.h5'},
    'tri120_val_quench': {'lattice': 'triangular', 'size': 15, 'J': 3.0, 'filling': 0.5, 'kT': 0.01, 'solver': 'ed',
        'initial': 'random', 'kTs': [0.005], 'replicas': 1, 'steps': 1500, 'every': 100, 'dt': 0.05, 'alpha': 0.5,
        'seed': 21, 'out': 'data/tri120_val_quench.h5'},
    'sqde_lc_a': {'driver': 'src/nearsight/ml/models/square-double-exchange.pt', 'lattice': 'square', 'size': 12,
        'J': 6.0, 'mu': -4.4, 'kT': 0.1, 'solver': 'ed', 'initial': 'random', 'kTs': [0.005, 0.02], 'replicas': 128,
        'steps': 1000, 'every': 50, 'skip': 50, 'dt': 0.05, 'alpha': 0.5, 'seed': 201, 'out': 'data/sqde_lc_a.h5'},
    'sqde_lc_b': {'driver': 'src/nearsight/ml/models/square-double-exchange.pt', 'lattice': 'square', 'size': 12,
        'J': 6.0, 'mu': -4.4, 'kT': 0.1, 'solver': 'ed', 'initial': 'random', 'kTs': [0.005, 0.02], 'replicas': 128,
        'steps': 200, 'every': 10, 'skip': 10, 'dt': 0.05, 'alpha': 0.5, 'seed': 202, 'out': 'data/sqde_lc_b.h5'},
    'sqde_lc_ord': {'driver': 'src/nearsight/ml/models/square-double-exchange.pt', 'lattice': 'square', 'size': 12,
        'J': 6.0, 'mu': -4.4, 'kT': 0.1, 'solver': 'ed', 'initial': 'neel', 'noise': 0.3, 'kTs': [0.01, 0.04],
        'replicas': 32, 'steps': 400, 'every': 20, 'skip': 20, 'dt': 0.05, 'alpha': 0.5, 'seed': 203,
        'out': 'data/sqde_lc_ord.h5'},
}


def system_of(name: str) -> str:
    return os.path.join(ROOT, "configs", "systems", SYSTEMS[name.split("_")[0]] + ".yaml")


def test_system_files_reproduce_every_old_data_config_exactly():
    specs = {}       # the three systems that replaced configs/data/ (files added later are not migrations)
    for path in sorted({system_of(name) for name in OLD}):
        for name, cfg in load_system(path).specs.items():
            assert name not in specs, f"spec {name} defined twice"
            specs[name] = (path, cfg)
    assert set(specs) == set(OLD)
    for name, old in OLD.items():
        expect = {("bath_kT" if k == "kTs" else k): v for k, v in old.items()}
        if isinstance(expect.get("initial"), int):     # 'initial: 120' (the state's name, which the generator reads
            expect["initial"] = str(expect["initial"])  # as str(initial)) is now quoted: the CLI refuses an int there
        path, got = specs[name]
        assert path == system_of(name)
        assert got == expect, name
        assert all(type(got[k]) is type(v) for k, v in expect.items()), name     # 120 stays an int, 0.1 a float


def test_every_spec_parses_as_a_generate_config():
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "systems", "*.yaml"))):
        for name in load_system(path).specs:
            args = build_parser().parse_args(["generate", path, "--spec", name])
            cfg = merged(args, config_of(args), DEFAULTS, aliases=ALIASES)
            lattice, model = lattice_from(cfg), model_of(provider_spec(cfg), flags=True)
            assert cfg["out"].endswith(f"{name}.h5") and model is not None


def test_every_other_config_parses():
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "train", "*.yaml"))
                       + glob.glob(os.path.join(ROOT, "configs", "curves", "*.yaml"))):
        check_config(read_yaml(path))
    for path in glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True):
        assert isinstance(read_yaml(path), dict)


def test_every_training_config_can_be_regenerated_from_configs():
    co = Checkout(ROOT)
    paths = sorted(co.trainings)
    assert paths
    for p in paths:
        steps = plan(co, p, missing_only=False)           # raises on a missing maker or a cycle
        assert steps[-1] == Step("train", p) and len(set(steps)) == len(steps)
        made = set()                                      # datasets and model files made by the steps so far
        for step in steps:
            if step.action == "train":
                cfg = co.trainings[step.config]
                needs = [co.path(d) for d in list(cfg["datasets"]) + list(cfg.get("val_datasets") or [])]
                out = co.path(model_file(cfg))
            else:
                system = co.systems[step.config]
                cfg = system.spec(step.spec)
                needs = [os.path.normpath(os.path.join(system.root, x)) for x in (cfg.get("source"), cfg.get("driver"))
                         if isinstance(x, str) and x.endswith((".h5", ".pt"))]
                out = system.dataset(step.spec)
            assert all(n in made for n in needs), f"{step} runs before {needs}"
            made.add(out)


def _checkout(tmp_path, specs: str, datasets="[data/b.h5]"):
    (tmp_path / "configs" / "systems").mkdir(parents=True)
    (tmp_path / "configs" / "train").mkdir(parents=True)
    (tmp_path / "configs" / "systems" / "s.yaml").write_text(
        "root: ../..\ndata_dir: data\nphysics: {lattice: square, J: 1.0, mu: 0.0, kT: 0.1}\nspecs:\n" + specs)
    (tmp_path / "configs" / "train" / "m.yaml").write_text(f"datasets: {datasets}\nout: runs/m\n")
    return Checkout(str(tmp_path))


def test_planner_orders_relabel_and_driver_and_skips_what_exists(tmp_path):
    co = _checkout(tmp_path, "  a: {size: 4, driver: runs/r/r.pt, replicas: 1, steps: 2, every: 1}\n"
                             "  b: {relabel: a, kT: 0.2}\n")
    (tmp_path / "configs" / "train" / "r.yaml").write_text("datasets: [data/c.h5]\nout: runs/r\n")
    (tmp_path / "configs" / "systems" / "s.yaml").write_text(
        (tmp_path / "configs" / "systems" / "s.yaml").read_text() + "  c: {size: 4, replicas: 1, steps: 2, every: 1}\n")
    co = Checkout(str(tmp_path))
    steps = [str(s).replace(str(tmp_path) + os.sep, "") for s in plan(co, co.training_config("m"))]
    sysf = os.path.join("configs", "systems", "s.yaml")
    assert steps == [f"generate {sysf} --spec c", f"train {os.path.join('configs', 'train', 'r.yaml')}",
                     f"generate {sysf} --spec a", f"generate {sysf} --spec b",
                     f"train {os.path.join('configs', 'train', 'm.yaml')}"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b.h5").write_text("")
    assert [s.action for s in plan(co, co.training_config("m"))] == ["train"]


def test_planner_trains_an_init_model_before_the_fine_tuning(tmp_path):
    co = _checkout(tmp_path, "  b: {size: 4, replicas: 1, steps: 2, every: 1}\n")
    train_dir = tmp_path / "configs" / "train"
    (train_dir / "m.yaml").write_text("datasets: [data/b.h5]\ninit: runs/r/r.pt\nout: runs/m\n")
    (train_dir / "r.yaml").write_text("datasets: [data/b.h5]\nout: runs/r\n")
    co = Checkout(str(tmp_path))
    steps = [str(s).replace(str(tmp_path) + os.sep, "") for s in plan(co, co.training_config("m"))]
    assert steps == [f"generate {os.path.join('configs', 'systems', 's.yaml')} --spec b",
                     f"train {os.path.join('configs', 'train', 'r.yaml')}",
                     f"train {os.path.join('configs', 'train', 'm.yaml')}"]
    (train_dir / "m.yaml").write_text("datasets: [data/b.h5]\ninit: runs/nobody/x.pt\nout: runs/m\n")
    co = Checkout(str(tmp_path))
    with pytest.raises(NearsightError, match=r"starts from init 'runs/nobody/x.pt', and no configs/train/\*\.yaml"):
        plan(co, co.training_config("m"))


@pytest.mark.parametrize("specs, datasets, message", [
    ("  a: {size: 4, replicas: 1, steps: 2, every: 1}\n", "[data/zzz.h5]", "no spec of"),
    ("  a: {relabel: b}\n  b: {relabel: a}\n", "[data/b.h5]", "in a circle"),
    ("  a: {size: 4, driver: runs/nobody/x.pt, replicas: 1, steps: 2, every: 1}\n", "[data/a.h5]",
     "no configs/train/*.yaml writes"),
    ("  a: {relabel: nope}\n", "[data/a.h5]", "not a spec of this file"),
    ("  a: {size: 4, replicas: 1, stepz: 2}\n", "[data/a.h5]", "unknown key(s) stepz"),
    ("  a: {relabel: b, steps: 3}\n  b: {size: 4}\n", "[data/a.h5]", "runs no dynamics"),
])
def test_planner_and_system_errors_are_one_line(tmp_path, specs, datasets, message):
    co = _checkout(tmp_path, specs, datasets)
    with pytest.raises(NearsightError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")) as e:
        plan(co, co.training_config("m"))
    assert "\n" not in str(e.value)
    with pytest.raises(NearsightError, match="no training config"):
        co.training_config("nothing")


def test_a_spec_overrides_the_sampling_defaults(tmp_path):
    """A key of the system's ``sampling`` block given again in a spec is the spec's (it was a TypeError)."""
    p = tmp_path / "s.yaml"
    p.write_text("name: s\nroot: .\ndata_dir: data\nphysics: {lattice: square, J: 6.0, filling: 0.485, kT: 0.1, "
                 "solver: ed}\nsampling: {dt: 0.05, alpha: 0.5, bath_kT: [0.005], replicas: 2}\n"
                 "specs:\n  a: {size: 4, steps: 10}\n  b: {size: 4, steps: 10, bath_kT: [0.005, 0.02], replicas: 3}\n")
    specs = load_system(str(p)).specs
    assert specs["a"]["bath_kT"] == [0.005] and specs["a"]["replicas"] == 2
    assert specs["b"]["bath_kT"] == [0.005, 0.02] and specs["b"]["replicas"] == 3 and specs["b"]["dt"] == 0.05
