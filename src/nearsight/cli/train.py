"""``nearsight train CONFIG.yaml``: train a Behler–Parrinello or message-passing model (config keys: nearsight.training.train)."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train an ML field model on generated datasets",
                              description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML training config (datasets, descriptor, hidden, epochs, lr, out, ...)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the config's epochs (a resumed run may change them only where no schedule "
                        "depends on them: not cosine, a fixed lambda_ramp_epochs)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="train nothing: write the model of the run's checkpoint (its best weights so far) into DIR, "
                        "e.g. to validate a run in progress; the card says it was exported")
    p.add_argument("--out", default=None, help="override the config's output directory")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the usable cores less those "
                        "other processes keep busy)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ..ml.cards import load_card
    from ..runtime import configure_threads
    from ..training import load_config, train
    configure_threads(args.threads)
    cfg = load_config(args.config)
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    if args.out is not None:
        cfg["out"] = args.out
    if args.restart:
        cfg["resume"] = False
    if args.no_progress:
        cfg["progress"] = False
    path = train(cfg, export=args.export)
    if path is None:                 # a rank other than 0 under torchrun: rank 0 wrote the model and prints
        return 0
    held = load_card(path).get("held_out", {})
    kinds = {f"held_out_{k}_transverse_rms_ratio": (held.get(k) or {}).get("transverse_rms_ratio")
             for k in ("disordered", "ordered")}
    print(json.dumps({"model": path, **kinds, "held_out_transverse_rms_ratio": held.get("transverse_rms_ratio"),
                      "held_out_energy_rmse_per_site": held.get("energy_rmse_per_site")}))
    return 0
