"""Message-passing model vs the BP model: cost of one field evaluation (forward + backward to the spins) per site.

    python benchmarks/bench_mpnn.py                          # 48x48, float32, one thread, default widths
    python benchmarks/bench_mpnn.py --size 96 --channels 8 16 --batch 2 --train
    python benchmarks/bench_mpnn.py --size 12 --batch 8 --train --lattices square --channels --config \
        configs/train/square-double-exchange-canonical.yaml configs/train/square-double-exchange-canonical-wide.yaml

The BP reference is each shipped model of the lattice kind (its descriptor and 64-64 MLP), evaluated on the same
lattice. Per-site cost = wall time of one ``energy_and_fields`` call / (batch * sites), the median of ``--repeat``
calls after a warm-up. ``--train`` adds the training step: fields with ``create_graph=True`` and a backward pass of
a field loss to the weights. One thread by default (the machine may be shared). Printed, never asserted.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import yaml

from nearsight.runtime import median_time
from nearsight.lattice import Lattice
from nearsight.ml import build_mpnn, energy_and_fields, load_model, shipped_models
from nearsight.ml.cards import load_card
from nearsight.ml.mpnn import DEFAULTS
from nearsight.states import random_spins


def costs(model, spins: torch.Tensor, repeat: int, train: bool, mu=None) -> tuple[float, float | None]:
    per = spins.shape[0] * spins.shape[1] * 1e-6
    inf = median_time(lambda: energy_and_fields(model, spins, mu=mu), repeat) / per
    if not train:
        return inf, None
    params = [p for p in model.parameters() if p.numel()]
    for p in params:
        p.requires_grad_(True)

    def step():
        e, h = energy_and_fields(model, spins, create_graph=True, mu=mu)
        torch.autograd.grad(h.pow(2).sum() + e.pow(2).sum(), params, allow_unused=True)
    out = median_time(step, repeat) / per
    for p in params:
        p.requires_grad_(False)
    return inf, out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--lattices", nargs="+", default=["square", "triangular"])
    p.add_argument("--channels", nargs="*", type=int, default=[DEFAULTS["channels"]])
    p.add_argument("--product-channels", type=int, default=None, help="default: the model default")
    p.add_argument("--layers", type=int, default=DEFAULTS["layers"])
    p.add_argument("--radius", type=float, default=DEFAULTS["radius"])
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train", action="store_true", help="also time a training step (fields with graph + backward)")
    p.add_argument("--config", nargs="*", default=[],
                   help="training configs (configs/train/*.yaml) whose mpnn settings are timed too, on their lattice")
    args = p.parse_args(argv)
    configs = []
    for path in args.config:                          # every config checked before any timing
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
        if cfg.get("family") != "mpnn":
            raise SystemExit(f"--config {path!r}: not an mpnn training config (family {cfg.get('family')!r}); "
                             f"give configs/train/*.yaml with family: mpnn")
        configs.append((path, cfg))
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}, {args.size}x{args.size}, "
          f"batch {args.batch}")
    print(f"{'model':44s} {'cutoff':>6s} {'params':>7s} {'fields us/site':>14s} {'train us/site':>13s}")
    for kind in args.lattices:
        lat = Lattice(kind, args.size)
        spins = torch.as_tensor(random_spins(lat.N, np.random.default_rng(0), batch=args.batch)).to(dtype)
        for name in shipped_models():
            card = load_card(name)
            if card.get("kind") == "generalized" or card.get("lattice") != kind:
                continue
            m = load_model(name, lat).to(dtype)
            # a mu-conditioned model is timed at fixed mu (its window's centre): the grand-canonical evaluation
            mu = torch.full((args.batch,), float(m.mu0), dtype=torch.float64) if card.get("mu_conditioned") else None
            report(f"{card.get('family', 'bp').upper()} {name}", m, spins, args, mu)
        for c in args.channels:
            torch.manual_seed(0)
            cfg = {"channels": c, "layers": args.layers, "radius": args.radius}
            if args.product_channels:
                cfg["product_channels"] = args.product_channels
            m = build_mpnn(cfg, lat, dtype)
            m.requires_grad_(False)
            label = f"MPNN {kind} c={c} cp={m.config()['product_channels']} L={args.layers} r={args.radius:g}"
            report(label, m, spins, args)
        for path, cfg in configs:
            torch.manual_seed(0)
            m = build_mpnn(cfg.get("mpnn") or {}, lat, dtype)
            m.requires_grad_(False)
            report(os.path.basename(path), m, spins, args)


def report(label: str, m, spins: torch.Tensor, args, mu=None) -> None:
    inf, tr = costs(m, spins, args.repeat, args.train, mu)
    n_par = sum(x.numel() for x in m.parameters())
    print(f"{label:44s} {m.cutoff:6.2f} {n_par:7d} {inf:14.1f} {tr if tr is None else f'{tr:13.1f}'}", flush=True)


if __name__ == "__main__":
    main()
