"""``nearsight validate --model NAME --data FILE.h5 ...``: held-out error of a model, by kind of frame, beside the
label floor at its cutoff (nearsight.analysis.validate)."""
from __future__ import annotations

from ..training.metrics import SPLIT_TIME


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("validate", help="held-out error of a model (disordered / ordered frames) beside the "
                                               "floor of its labels", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="shipped model name or .pt model file")
    p.add_argument("--data", nargs="+", required=True, metavar="FILE.h5", help="labelled datasets the model never saw")
    p.add_argument("--split-time", dest="split_time", type=float, default=SPLIT_TIME,
                   help="quench frames before this time are 'disordered' (default %(default)g)")
    p.add_argument("--floor-draws", dest="floor_draws", type=int, default=4,
                   help="frames per group for the label floor (0: skip it; otherwise at least 2; default %(default)s)")
    p.add_argument("--report", default=None, help="also write the table as markdown to this file")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..analysis.validate import HEADER, check_options, format_row, report_markdown, validate
    from ..io import atomic_path, check_writable
    check_options(args.split_time, args.floor_draws)
    if args.report:
        check_writable(args.report, "--report")
    from ..ml.cards import load_card
    card = load_card(args.model)
    head = [f"model {args.model}: {card.get('lattice', 'strip')} J={card.get('J')} n={card.get('filling')} "
            f"kT={card.get('kT')} cutoff={card.get('cutoff')} (field radius {card.get('field_radius')})", HEADER]

    def show(row):                       # the header with the first row: after every input has been checked
        while head:
            print(head.pop(0))
        print(format_row(row, args.split_time), flush=True)

    v = validate(args.model, args.data, split_time=args.split_time, floor_draws=args.floor_draws, on_row=show)
    pooled = ", ".join(f"{k} {'-' if x is None else f'{100 * x:.2f}%'}" for k, x in v.pooled.items())
    print(f"held out, all files pooled: {pooled}")
    if args.report:
        with atomic_path(args.report) as tmp, open(tmp, "w") as f:
            f.write(report_markdown(v, args.data, args.floor_draws))
        print(f"wrote {args.report}")
    return 0
