"""Fingerprint of every shipped model's fields on fixed configurations: a refactoring guard.

    python benchmarks/shipped_fields.py --write before.npz     # on the old tree
    python benchmarks/shipped_fields.py --check before.npz     # on the new tree: np.array_equal per model

Each conservative model is evaluated on a seeded random configuration of a 16x16 lattice of its own kind, the
driven model (``kind: generalized``) on its card's strip at bias 0.3. Energies and fields are stored in float64.
``--check`` prints, per model, whether energy and fields are bit-identical (and the largest difference if not) and
exits 1 if any differs.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def fingerprints() -> dict[str, np.ndarray]:
    from nearsight.lattice import Lattice
    from nearsight.ml.cards import load_card, shipped_models
    from nearsight.states import random_spins

    out = {}
    for name, path in sorted(shipped_models().items()):
        card = load_card(name)
        rng = np.random.default_rng(1234)
        if card.get("kind") == "generalized":
            from nearsight.ml.driven import GeneralizedMLProvider
            prov = GeneralizedMLProvider(str(path), bias=0.3)
            n = prov.model.geometry.N
        else:
            from nearsight.ml.provider import MLProvider
            lat = Lattice(card.get("lattice", "square"), 16, 16)
            prov = MLProvider(str(path), lat)
            n = lat.N
        spins = random_spins(n, rng)
        res = prov.compute(torch.as_tensor(spins, dtype=torch.float64))
        out[f"{name}/energy"] = np.asarray(res.energy.detach().cpu().numpy(), dtype=np.float64)
        out[f"{name}/fields"] = np.asarray(res.fields.detach().cpu().numpy(), dtype=np.float64)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="NPZ")
    g.add_argument("--check", metavar="NPZ")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    now = fingerprints()
    if a.write:
        np.savez(a.write, **now)
        print(f"wrote {len(now)} arrays for {len(now) // 2} models to {a.write}")
        return 0
    ref = dict(np.load(a.check))
    bad = 0
    for key in sorted(set(ref) | set(now)):
        if key not in ref or key not in now:
            print(f"{key}: only in {'reference' if key in ref else 'this tree'}")
            bad += 1
            continue
        same = np.array_equal(ref[key], now[key])
        diff = float(np.max(np.abs(ref[key] - now[key]))) if ref[key].shape == now[key].shape else float("nan")
        print(f"{key}: {'bit-identical' if same else f'DIFFERS (max |diff| {diff:.3g})'}")
        bad += not same
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
