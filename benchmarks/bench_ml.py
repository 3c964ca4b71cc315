"""ML vs ED vs KPM, side by side in one run: time per LLG step, scaling with N, peak memory.

    python benchmarks/bench_ml.py [--model triangular-tetrahedral] [--quick] [--device cpu]

Prints
  (1) time per Heun LLG step (2 field evaluations) at 30x30 for ML and ED, and the ratio;
  (2) ML vs KPM at 100x100: time per field evaluation, with KPM at the cheapest setting (moments, probing
      distance) whose transverse-field error on ED-labelled check frames is no larger than the ML model's error
      on the same frames (matched accuracy);
  (3) ML time per step against N = 32^2 ... 256^2 and the fitted exponent;
  (4) peak resident memory against N (each size in a fresh subprocess).
Timings are wall-clock minima over repeats on this machine; torch threads are reported.
"""
import argparse
import subprocess
import sys
import time

import numpy as np
import torch

from nearsight import Lattice, SDModel
from nearsight.dynamics import run_llg
from nearsight.fields import transverse_rms_ratio
from nearsight.ml.cards import load_card
from nearsight.ml.provider import MLProvider
from nearsight.states import make_state


def per_step(provider, lattice, steps, device, replicas=None):
    """Time per Heun step (best of 2 runs of ``steps`` steps, after a one-step warm-up); with ``replicas``, of
    that many independent replicas integrated together (one batched field evaluation per stage)."""
    s0 = make_state("random", lattice, seed=0)
    if replicas:
        s0 = np.stack([make_state("random", lattice, seed=k) for k in range(replicas)])
    run = lambda n: run_llg(provider, s0, steps=n, dt=0.05, alpha=0.5, every=max(n, 1), progress=False)  # noqa: E731
    run(1)  # warm-up
    # a run of n steps evaluates the field 2n + 1 times (the last state is recorded): subtract a 0-step run
    return (timed(lambda: run(steps), device, warmup=False) - timed(lambda: run(0), device, warmup=False)) / steps


def peak_memory(model, kind, L, device):
    """(peak RSS of the process, peak RSS increase during one field evaluation) in MiB, in a fresh process.
    The increase is measured against the RSS after imports, model load and descriptor build."""
    code = (f"from nearsight import Lattice; from nearsight.ml.provider import MLProvider;"
            f"from nearsight.states import make_state\n"
            f"def st(k): return int([l for l in open('/proc/self/status') if l.startswith(k)][0].split()[1])\n"
            f"lat=Lattice('{kind}',{L}); p=MLProvider('{model}',lat,device='{device}'); s=make_state('random',lat)\n"
            f"before=st('VmRSS'); p(s); print(st('VmHWM'), st('VmHWM') - before)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak, inc = (int(x) for x in out.stdout.strip().splitlines()[-1].split())
    return peak / 1024, inc / 1024  # kB -> MiB


def check_frames(a, card, kind, L_check=16, steps=300):
    """ED-labelled check frames: an ML-LLG quench from random spins on an ED-sized lattice (frames at 1/3 and
    at the end: one disordered, one ordering), labelled exactly. Returns (lattice, spins [2,N,3], ED fields)."""
    from nearsight.electrons import EDProvider
    lat = Lattice(kind, L_check)
    ml = MLProvider(a.model, lat, device=a.device)
    frames = []
    run_llg(ml, make_state("random", lat, seed=5), steps=steps, dt=0.05, alpha=0.5, kT=0.005, seed=5,
            every=steps // 3, progress=False, observers=[lambda step, t, s, res: frames.append(s.cpu().numpy())])
    spins = np.concatenate([frames[1], frames[-1]])
    ref = EDProvider(lat, SDModel.from_dict(card))(spins).fields
    return lat, spins, ref


def kpm_vs_ml(a, card, kind, L):
    """Pick the cheapest KPM setting whose transverse-field error on ED-labelled check frames is at most the ML
    model's error on the same frames; time both on an L x L lattice. KPM cost is exactly linear in the number of
    moments M (M/2 forward + M/2 backward recursion steps), so on CPU a large-M time is extrapolated from two
    small-M runs on the same lattice and probing (printed as such)."""
    from nearsight.electrons.kpm import KPMProvider
    lat_c, spins, ref = check_frames(a, card, kind)
    e_ml = transverse_rms_ratio(MLProvider(a.model, lat_c, device=a.device)(spins).fields, ref, spins)
    print(f"(2) matched accuracy: check frames = ML-LLG quench on {lat_c.L1}x{lat_c.L2}, ED-labelled; "
          f"ML transverse-field error {100 * e_ml:.2f}%")
    chosen = None
    for M in (32, 64, 128, 256, 512, 1024, 2000):
        for dist in (2.0, 3.0, 4.0, 6.0, 8.0):
            try:
                kpm = KPMProvider(lat_c, SDModel.from_dict(card), moments=M, probe_distance=dist, realizations=1,
                                  device=a.device)
            except Exception as exc:  # probing distance the check lattice cannot hold
                print(f"    KPM M={M:5d} distance {dist:g}: {exc}")
                continue
            e = transverse_rms_ratio(kpm(spins).fields, ref, spins)
            print(f"    KPM M={M:5d} probe distance {dist:g}: error {100 * e:.2f}%", flush=True)
            if e <= e_ml:
                chosen = (M, dist, e)
                break
        if chosen:
            break
    if chosen is None:
        print("    no KPM setting tried reaches the ML error; timing KPM at its defaults (M=2000, distance 8)")
        chosen = (2000, 8.0, float("nan"))
    M, dist, e = chosen
    lat = Lattice(kind, L)
    s = make_state("random", lat, seed=2)
    ml = MLProvider(a.model, lat, device=a.device)
    t_ml = timed(lambda: ml(s), a.device)

    def t_kpm(m):
        kpm = KPMProvider(lat, SDModel.from_dict(card), moments=m, probe_distance=dist, realizations=1,
                          device=a.device)
        return timed(lambda: kpm(s), a.device, repeats=1)
    if a.device == "cpu" and M > 256:
        t1, t2 = t_kpm(64), t_kpm(128)
        tk = t1 + (M - 64) * (t2 - t1) / 64
        how = f"extrapolated linearly in M from M=64 ({t1:.2f} s) and M=128 ({t2:.2f} s)"
    else:
        tk = t_kpm(M)
        how = "measured"
    print(f"    {L}x{L}: ML {1e3 * t_ml:.1f} ms per field evaluation; KPM (M={M}, probe distance {dist:g}, error "
          f"{100 * e:.2f}% <= ML {100 * e_ml:.2f}%) {tk:.2f} s ({how}); KPM/ML = {tk / t_ml:.0f}x")


def timed(fn, device, repeats=2, warmup=True):
    """Best wall-clock time of ``repeats`` calls of ``fn`` (CUDA synchronized), after one warm-up call."""
    if warmup:
        fn()
    best = np.inf
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="triangular-120")
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
    ed = EDProvider(lat, SDModel.from_dict(card), device=a.device)
    t0 = time.perf_counter()
    ed(make_state("random", lat, seed=1))
    t_ed = 2 * (time.perf_counter() - t0)  # Heun: 2 evaluations per step
    print(f"\n(1) {L}x{L} ({lat.N} sites), time per LLG step: ML {1e3 * t_ml:.2f} ms, ED {1e3 * t_ed:.1f} ms, "
          f"ED/ML = {t_ed / t_ml:.0f}x")
    R = 8
    t_ens = per_step(ml, lat, 10, a.device, replicas=R) / R
    print(f"    an ensemble of {R} replicas integrated together (ED's cost is per replica): ML {1e3 * t_ens:.2f} ms "
          f"per replica-step, ED/ML = {t_ed / t_ens:.0f}x")

    # (2) ML vs KPM at 100x100, at matched transverse-field accuracy
    L = 32 if a.quick else 100
    kpm_vs_ml(a, card, kind, L)

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
    print("(4) memory of one field evaluation (fresh process): peak RSS, and its increase over the RSS after "
          "imports + model + descriptor tables")
    for L in sizes:
        peak, inc = peak_memory(a.model, kind, L, a.device)
        print(f"    {L:4d}^2 = {L * L:6d} sites: peak {peak:7.0f} MiB, evaluation +{inc:6.0f} MiB "
              f"({1024 * inc / (L * L):.1f} kB/site)", flush=True)


if __name__ == "__main__":
    main()
