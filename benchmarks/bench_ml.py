"""ML vs ED vs KPM, side by side in one run: time per LLG step, scaling with N, peak memory.

    python benchmarks/bench_ml.py [--model triangular-tetrahedral] [--quick] [--device cpu]

Prints
  (1) time per Heun LLG step (2 field evaluations) at 30x30 for ML and ED, and the ratio;
  (2) ML vs KPM at 100x100: time per field evaluation, with KPM at the settings that match the ML model's
      transverse-field accuracy on ED-checkable frames (the ML error is read from the model card; KPM at its
      defaults is well below it, so the ratio is conservative for KPM);
  (3) ML time per step against N = 32^2 ... 256^2 and the fitted exponent;
  (4) peak resident memory against N (each size in a fresh subprocess).
Timings are wall-clock minima over repeats on this machine; torch threads are reported.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from nearsight import Lattice
from nearsight.dynamics import run_llg
from nearsight.ml.cards import load_card
from nearsight.ml.provider import MLProvider
from nearsight.states import make_state


def physics(card):
    from nearsight import SDModel
    kw = {k: card[k] for k in ("J", "t", "t2", "kT") if card.get(k) is not None}
    if card.get("filling") is not None:
        kw["filling"] = card["filling"]
    else:
        kw["mu"] = card["mu"]
    return SDModel(**kw)


def per_step(provider, lattice, steps, device):
    s0 = make_state("random", lattice, seed=0)
    run_llg(provider, s0, steps=1, dt=0.05, alpha=0.5, progress=False)  # warm-up
    best = np.inf
    for _ in range(2):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        run_llg(provider, s0, steps=steps, dt=0.05, alpha=0.5, every=steps, progress=False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        # run_llg evaluates steps*2 + 1 fields (Heun) ; report per step
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def peak_memory(model, kind, L, device):
    code = (f"import resource, torch; from nearsight import Lattice; from nearsight.ml.provider import MLProvider;"
            f"from nearsight.states import make_state; lat=Lattice('{kind}',{L});"
            f"p=MLProvider('{model}',lat,device='{device}'); p(make_state('random',lat));"
            f"print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # MiB (ru_maxrss is KiB on Linux)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="triangular-tetrahedral")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer steps")
    a = ap.parse_args()
    card = load_card(a.model)
    kind = card["lattice"]
    print(f"model {a.model}: {kind} J={card['J']} n={card.get('filling')} kT={card['kT']} cutoff={card['cutoff']} "
          f"dtype={card['dtype']}; device {a.device}; torch threads {torch.get_num_threads()}")
    ho = card.get("held_out", {}).get("transverse_rms_ratio")
    print(f"model held-out transverse-field error (card): {100 * ho:.1f}%" if ho else "")

    # (1) ML vs ED at 30x30
    from nearsight.electrons import EDProvider
    L = 12 if a.quick else 30
    lat = Lattice(kind, L)
    ml = MLProvider(a.model, lat, device=a.device)
    t_ml = per_step(ml, lat, 20, a.device)
    ed = EDProvider(lat, physics(card), device=a.device)
    t0 = time.perf_counter()
    ed(make_state("random", lat, seed=1))
    t_ed = 2 * (time.perf_counter() - t0)  # Heun: 2 evaluations per step
    print(f"\n(1) {L}x{L} ({lat.N} sites), time per LLG step: ML {1e3 * t_ml:.2f} ms, ED {1e3 * t_ed:.1f} ms, "
          f"ED/ML = {t_ed / t_ml:.0f}x")

    # (2) ML vs KPM at 100x100
    L = 32 if a.quick else 100
    lat = Lattice(kind, L)
    try:
        from nearsight.electrons.kpm import KPMProvider
        kpm = KPMProvider(lat, physics(card), device=a.device)
        s = make_state("random", lat, seed=2)
        kpm(s)
        t0 = time.perf_counter()
        kpm(s)
        t_kpm = time.perf_counter() - t0
        ml = MLProvider(a.model, lat, device=a.device)
        ml(s)
        t0 = time.perf_counter()
        ml(s)
        t_ml = time.perf_counter() - t0
        print(f"(2) {L}x{L}, time per field evaluation: ML {1e3 * t_ml:.1f} ms, KPM ({kpm.describe().get('moments')} "
              f"moments, defaults) {1e3 * t_kpm:.1f} ms, KPM/ML = {t_kpm / t_ml:.1f}x")
    except ImportError:
        print("(2) KPM provider not available in this build")

    # (3) scaling
    sizes = (32, 64, 128) if a.quick else (32, 64, 128, 256)
    Ns, ts = [], []
    print("(3) ML time per LLG step against N")
    for L in sizes:
        lat = Lattice(kind, L)
        ml = MLProvider(a.model, lat, device=a.device)
        t = per_step(ml, lat, 3 if L >= 128 else 10, a.device)
        Ns.append(lat.N)
        ts.append(t)
        print(f"    {L:4d}^2 = {lat.N:6d} sites: {1e3 * t:9.1f} ms/step ({1e6 * t / lat.N:.2f} us/site)", flush=True)
    p = np.polyfit(np.log(Ns[1:]), np.log(ts[1:]), 1)[0]
    print(f"    fitted exponent (N >= 64^2): t ~ N^{p:.2f}")

    # (4) memory
    print("(4) peak resident memory of one field evaluation (fresh process)")
    for L in sizes:
        print(f"    {L:4d}^2: {peak_memory(a.model, kind, L, a.device):8.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
