"""Cost of a BP training epoch: the recomputed-descriptor step (as before, and with the backward pass restricted to
the weights) against the cached features + spin-Jacobian step (nearsight.training.cache), and the cache's memory.

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py --L 12 --cutoff 5 --hidden 64 64 --frames 16
    python benchmarks/bench_training.py --device cuda --frames 64

The cost of a step does not depend on the label values, so the frames are random spins with random labels
(the quench frames of a real set cost the same); times are per frame of one epoch (mean of --repeat epochs).
"""
import argparse
import time

import torch

from nearsight import Lattice
from nearsight.descriptors import Descriptor
from nearsight.ml.network import SiteEnergyModel, SiteMLP, energy_and_fields
from nearsight.training.cache import JacobianCache, memory_bytes, offsets
from nearsight.training.loss import frame_loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="square")
    ap.add_argument("--L", type=int, default=12)
    ap.add_argument("--cutoff", type=float, default=5.0)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-cache", action="store_true", help="skip the cached path (its build is slow on a CPU)")
    a = ap.parse_args()
    dev, dt = torch.device(a.device), getattr(torch, a.dtype)
    lat = Lattice(a.kind, a.L)
    d = Descriptor(lat, a.cutoff).to(dt)
    torch.manual_seed(0)
    head = SiteMLP(d.n_features, a.hidden).to(dt).to(dev)
    model = SiteEnergyModel(d, head, lat).to(dev)
    g = torch.Generator().manual_seed(0)
    s = torch.randn(a.frames, lat.N, 3, generator=g, dtype=torch.float64)
    s = (s / s.norm(dim=-1, keepdim=True)).to(dev, dt)
    h_ref = torch.randn(a.frames, lat.N, 3, generator=g, dtype=torch.float64).to(dev, dt)
    e_ref = torch.zeros(a.frames, dtype=torch.float64, device=dev)
    params = list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    kw = {"lam": 0.1, "floor_per_site": 0.01, "energy_scale": 1.0}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def epoch(step):
        sync()
        t0 = time.perf_counter()
        for _ in range(a.repeat):
            for i in range(0, a.frames, a.batch):
                idx = torch.arange(i, min(a.frames, i + a.batch), device=dev)
                e, h = step(idx)
                loss = frame_loss(h, h_ref[idx], e, e_ref[idx], s[idx], **kw)[0]
                opt.zero_grad(set_to_none=True)
                (loss.backward(inputs=params) if step is not plain_all else loss.backward())
                opt.step()
        sync()
        return (time.perf_counter() - t0) / a.repeat / a.frames * 1e3

    def plain_all(idx):
        return energy_and_fields(model, s[idx], create_graph=True)

    def plain(idx):
        return energy_and_fields(model, s[idx], create_graph=True)

    epoch(plain)                                            # warm-up
    t_all, t_w = epoch(plain_all), epoch(plain)
    K = len(offsets(d))
    mb = memory_bytes(d, 1, dt) / 1e6
    print(f"{a.kind} {a.L}x{a.L} cutoff {a.cutoff:g} (F = {d.n_features}, K = {K} receptive offsets), hidden "
          f"{a.hidden}, {a.dtype}, batch {a.batch}, {torch.get_num_threads()} thread(s), {a.device}")
    print(f"  recomputed descriptor, backward to spins and weights: {t_all:8.2f} ms per frame per epoch")
    print(f"  recomputed descriptor, backward to the weights only:  {t_w:8.2f} ms  ({t_all / t_w:.2f}x)")
    print(f"  cache memory: {mb:.1f} MB per frame ({a.dtype})")
    if a.no_cache:
        return
    sync()
    t0 = time.perf_counter()
    cache = JacobianCache(d, s, dt, dev, chunk=a.batch)
    sync()
    t_build = (time.perf_counter() - t0) / a.frames * 1e3
    epoch(lambda idx: cache.fields(head, idx))
    t_c = epoch(lambda idx: cache.fields(head, idx))
    print(f"  cached features + Jacobian:                           {t_c:8.2f} ms  ({t_w / t_c:.2f}x vs weights-only)")
    print(f"  cache build: {t_build:.1f} ms per frame (= {t_build / t_w:.1f} uncached epochs)")
    e1, h1 = energy_and_fields(model, s[:2])
    e2, h2 = cache.fields(head, torch.arange(2, device=dev), create_graph=False)
    from nearsight.fields import transverse
    err = float((transverse(h1, s[:2]) - h2).norm() / transverse(h1, s[:2]).norm())
    print(f"  relative difference of the cached fields: {err:.1e}")


if __name__ == "__main__":
    main()
