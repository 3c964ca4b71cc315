"""``nearsight train-shipped NAME``: regenerate a shipped model from its configs — its data, its training and
(``--install``) the packaged file.

Run in a checkout (``--root``, default the working directory): reads ``configs/train/NAME.yaml``; every dataset it
names that is missing is generated first from the spec of ``configs/systems/*.yaml`` that writes it (ED
single-threaded; a generation resumes block by block if interrupted), after the dataset it relabels and the
training of the first-round model that drives its quenches (nearsight.datasets.plan). A dataset that exists is
used as it is if it was made with the settings its spec gives now (provenance aside; a driver model by name and
SHA-256; a relabelling also through its source, and with the source file gone against what the source's spec
makes now; with a driver model file gone, all but the driver's own physics); otherwise train-shipped stops before
any work, naming the first difference. Then ``nearsight train``
runs (it resumes from its checkpoint). ``--install`` copies the model file and its card into
``src/nearsight/ml/models/`` so it loads by name; the report ``NAME.md`` beside it is written with
``nearsight validate --report``."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train-shipped", help="regenerate a shipped model: its data, training, installation",
                              description=__doc__.splitlines()[0])
    p.add_argument("name", help="model name: configs/train/NAME.yaml")
    p.add_argument("--root", default=".", help="the nearsight checkout holding configs/ (default: here)")
    p.add_argument("--install", action="store_true", help="copy the trained model into the package")
    p.add_argument("--dry-run", action="store_true", help="print the steps (missing ones only) and stop")
    p.set_defaults(func=run)


def run(args) -> int:
    import os
    import shutil
    import subprocess
    import sys

    from ..datasets.plan import Checkout, model_file, plan
    from .generate import spec_mismatch
    co = Checkout(args.root)
    cfg_path = co.training_config(args.name)
    # every error (missing maker, stale dataset, circle) before any work
    steps = plan(co, cfg_path, check=lambda system_file, spec: spec_mismatch(system_file, spec, co.root,
                                                                           co.makers))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}   # single-threaded ED
    for step in steps:
        shown = [os.path.relpath(a, co.root) if os.path.isabs(a) else a for a in step.argv()]
        print(f"{'would run' if args.dry_run else 'running'}: nearsight {' '.join(shown)}", flush=True)
        if args.dry_run:
            continue
        rc = subprocess.run([sys.executable, "-m", "nearsight", *step.argv()], cwd=co.root,
                            env=env if step.action == "generate" else None).returncode
        if rc != 0:
            print(f"nearsight train-shipped: step 'nearsight {' '.join(shown)}' failed (exit code {rc}); fix it and "
                  f"run train-shipped again (finished steps are kept)", file=sys.stderr)
            return rc
    if args.install and not args.dry_run:
        model = co.path(model_file(co.trainings[cfg_path]))
        dest = os.path.join(co.root, "src", "nearsight", "ml", "models")
        os.makedirs(dest, exist_ok=True)
        for src in (model, model[:-3] + ".card.json"):
            shutil.copy2(src, os.path.join(dest, os.path.basename(src)))
        print(f"installed {os.path.basename(model)[:-3]} into {os.path.relpath(dest, co.root)}/")
    return 0
