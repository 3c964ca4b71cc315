"""Held-out accuracy of a trained model on ED-labelled frames it never saw, beside the floor of its labels.

    python examples/validate_model.py --model triangular-120 \
        --data data/tri120_val_quench.h5 data/tri120_val_ordered.h5 [--split-time 10]

For each file and for disordered (t < split) and ordered (t >= split, or files from ordered starts) frames it
prints RMS(h_perp_ML - h_perp_ED) / RMS(h_perp_ED), the zero-field baseline (1 by construction) and the
nearsightedness floor of the ED labels on the same frames at the model's cutoff (the error any model that sees
only that radius must meet; measured with nearsight.analysis.locality).
"""
import argparse

import numpy as np
import torch

from nearsight import Lattice, SDModel
from nearsight.analysis.locality import locality_profile
from nearsight.electrons import EDProvider
from nearsight.fields import transverse_rms_ratio
from nearsight.io import read_dataset
from nearsight.ml.cards import load_card
from nearsight.ml.provider import MLProvider


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--split-time", type=float, default=10.0, help="quench frames before this time are 'disordered'")
    ap.add_argument("--floor-draws", type=int, default=4,
                    help="frames per group for the label floor (0: skip the floor; otherwise at least 2)")
    ap.add_argument("--report", default=None, help="also write the table as markdown to this file")
    a = ap.parse_args()
    if a.floor_draws == 1 or a.floor_draws < 0:
        ap.error(f"--floor-draws {a.floor_draws}: the floor needs at least 2 frames (one supplies the far region of "
                 f"the other); pass 0 to skip it")
    rows = []
    card = load_card(a.model)
    print(f"model {a.model}: {card['lattice']} J={card['J']} n={card.get('filling')} kT={card['kT']} "
          f"cutoff={card['cutoff']} (field radius {card.get('field_radius')}) F={card['n_features']}")
    print(f"{'file':34s} {'frames':>10s} {'N':>5s} {'ML error':>9s} {'floor(R_c)':>10s}")
    for path in a.data:
        arr, attrs = read_dataset(path)
        lat = Lattice(attrs["lattice"], int(attrs["L1"]), int(attrs["L2"]))
        model = SDModel.from_dict(attrs)
        ml = MLProvider(a.model, lat)
        S = torch.as_tensor(arr["spins"])
        pred = ml(S).fields
        ref = torch.as_tensor(arr["fields"])
        ordered_start = attrs.get("initial") not in (None, "random")
        groups = {"all": np.ones(len(S), bool)}
        if not ordered_start:
            groups["disordered (t<%g)" % a.split_time] = arr["time"] < a.split_time
            groups["later (t>=%g)" % a.split_time] = arr["time"] >= a.split_time
        else:
            groups["ordered start"] = np.ones(len(S), bool)
        ed = EDProvider(lat, model)
        for name, m in groups.items():
            if m.sum() == 0:
                continue
            r = transverse_rms_ratio(pred[m], ref[m], S[m])
            floor = ""
            if name != "all" and m.sum() >= 2 and a.floor_draws >= 2:
                idx = np.random.default_rng(0).choice(np.flatnonzero(m), size=min(a.floor_draws, m.sum()),
                                                      replace=False)
                fl = locality_profile(ed, arr["spins"][idx], [card["cutoff"]], sites_per_draw=3, progress=False)
                floor = f"{100 * fl.ratio[0]:9.2f}%"
            print(f"{path.split('/')[-1]:34s} {name:>10s} {lat.N:5d} {100 * r:8.2f}% {floor:>10s}", flush=True)
            rows.append(f"| {path.split('/')[-1]} | {name} ({int(m.sum())} frames) | {lat.L1}x{lat.L2} | "
                        f"{100 * r:.2f}% | {floor.strip() or '-'} |")
    if a.report:
        with open(a.report, "w") as f:
            f.write(f"Held-out transverse-field error of `{a.model}` (RMS(h_perp ML - ED) / RMS(h_perp ED)), beside the "
                    f"nearsightedness floor of the ED labels at the model's cutoff R = {card['cutoff']:.3g}:\n\n"
                    "| file | frames | lattice | ML error | label floor at R_c |\n|---|---|---|---|---|\n")
            f.write("\n".join(rows) + "\n\n")
            f.write(f"Reproduce: `python examples/validate_model.py --model {a.model} --data {' '.join(a.data)} "
                    f"--split-time {a.split_time:g}`\n")
        print(f"wrote {a.report}")


if __name__ == "__main__":
    main()
