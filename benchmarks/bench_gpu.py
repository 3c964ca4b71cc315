"""ML-LLG on a GPU: site-field evaluations per second and time per Heun step against N, batched replicas,
float32 vs float64, ML vs KPM, peak memory. Every size has a time budget; a size that runs out of memory or
time ends its model's sweep and the largest lattice that fitted is reported.

    python benchmarks/bench_gpu.py --device cuda --out results.json                 # the real run (~3-4 min)
    python benchmarks/bench_gpu.py --device cpu --sizes 24 48 --out /tmp/smoke.json # smoke test on CPU

Measured (CUDA): an evaluation is one ``provider.compute`` (energy + fields of every site, input validation
included); a Heun step is two evaluations plus the update, noise drawn on the device from a device generator;
times are medians of repeats after a warm-up, bracketed by ``torch.cuda.synchronize``; peak memory is
``torch.cuda.max_memory_allocated`` over the size (descriptor index tables included). Networks run in the dtype
of their card (float32 for the shipped models) unless ``--dtype`` says otherwise. Results go to ``--out`` (JSON),
rewritten after every measurement so a run stopped early keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import sys
import time

import torch

from nearsight import Lattice, SDModel
from nearsight.dynamics.integrators import LLGState, make_integrator
from nearsight.dynamics.run import make_generator
from nearsight.fields import transverse_rms_ratio
from nearsight.ml.cards import load_card, load_model
from nearsight.ml.provider import MLProvider
from nearsight.states import make_state

MODELS = ("triangular-tetrahedral", "triangular-120", "square-double-exchange")


class Budget(Exception):
    pass


def _alarm(seconds: float):
    def handler(signum, frame):
        raise Budget(f"over the {seconds:g} s budget")
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))


def _disarm():
    signal.setitimer(signal.ITIMER_REAL, 0)


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (after one warm-up call), synchronized."""
    fn()
    sync(dev)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def reset_peak(dev):
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_mib(dev):
    return torch.cuda.max_memory_allocated(dev) / 2 ** 20 if dev.type == "cuda" else None


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower()


def spins_on(lat, dev, batch=None, seed=0):
    return torch.as_tensor(make_state("random", lat, seed=seed, batch=batch), device=dev)


def model_for(name, lat, dtype):
    m = load_model(name, lat)
    return m if dtype is None else m.to(dtype)


def heun_step_time(provider, s, dev, steps: int) -> float:
    integ = make_integrator("heun", provider, 0.05, 0.5, 0.01)
    state = LLGState(s, 0.0, 0, make_generator(0, dev))
    box = {"state": state}

    def step():
        st = box["state"]
        box["state"] = integ.step(st, provider.compute(st.spins))
    return timed(step, dev, steps)


def sweep(a, dev, name, report, save, t_start):
    """Time per evaluation and per Heun step against N for one model, up to the largest that fits."""
    rows, last = [], None
    for L in a.sizes:
        kind = load_card(name)["lattice"]
        lat = Lattice(kind, L)
        row = {"model": name, "L": L, "N": lat.N}
        left = a.total_budget - (time.perf_counter() - t_start)
        if left < 5:
            row["skipped"] = "total budget spent"
            rows.append(row)
            break
        if last is not None:
            predicted = last["build_s"] * 4 + last["eval_s"] * 4 * (a.repeats + 2 * a.steps + 3)
            if predicted > min(a.budget, left):
                row["skipped"] = f"predicted {predicted:.0f} s > budget"
                rows.append(row)
                break
        reset_peak(dev)
        try:
            _alarm(min(a.budget, left))
            t0 = time.perf_counter()
            prov = MLProvider(model_for(name, lat, a.dtype), lat, device=str(dev), site_chunk=a.site_chunk)
            s = spins_on(lat, dev)
            prov.compute(s)
            sync(dev)
            row["build_s"] = time.perf_counter() - t0
            row["eval_s"] = timed(lambda: prov.compute(s), dev, a.repeats)
            row["site_evals_per_s"] = lat.N / row["eval_s"]
            row["heun_step_s"] = heun_step_time(prov, s, dev, a.steps)
            row["ns_per_site_step"] = 1e9 * row["heun_step_s"] / lat.N
            row["peak_mib"] = peak_mib(dev)
            row["dtype"] = str(prov.model.dtype).replace("torch.", "")
            _disarm()
            last = row
            print(f"  {name:24s} {L:5d}^2 N={lat.N:8d}  build {row['build_s']:6.1f} s  "
                  f"eval {1e3 * row['eval_s']:9.2f} ms ({row['site_evals_per_s']:.3e} sites/s)  "
                  f"Heun step {1e3 * row['heun_step_s']:9.2f} ms  "
                  f"peak {row['peak_mib'] or 0:8.0f} MiB", flush=True)
        except Budget as exc:
            row["skipped"] = f"time: {exc}"
        except Exception as exc:               # noqa: BLE001 - OOM and others end the sweep, are recorded
            _disarm()
            row["skipped"] = ("out of memory" if is_oom(exc) else f"{type(exc).__name__}: {exc}")[:300]
        finally:
            _disarm()
            prov = s = None
            reset_peak(dev)
        rows.append(row)
        save()
        if "skipped" in row:
            print(f"  {name:24s} {L:5d}^2 skipped: {row['skipped']}", flush=True)
            break
    fit = [r for r in rows if "eval_s" in r]
    report["largest_fit"][name] = max((r["L"] for r in fit), default=None)
    report["sweep"] += rows
    save()


def replicas(a, dev, name, report, save, *_):
    lat = Lattice(load_card(name)["lattice"], a.replica_size)
    prov = MLProvider(model_for(name, lat, a.dtype), lat, device=str(dev), site_chunk=a.site_chunk,
                      chunk=max(a.replicas))
    for B in a.replicas:
        reset_peak(dev)
        try:
            _alarm(a.budget)
            s = spins_on(lat, dev, batch=B)
            t = timed(lambda: prov.compute(s), dev, a.repeats)
            row = {"model": name, "L": a.replica_size, "B": B, "eval_s": t, "site_evals_per_s": B * lat.N / t,
                   "peak_mib": peak_mib(dev)}
            print(f"  replicas B={B:3d} on {a.replica_size}^2: eval {1e3 * t:8.2f} ms  "
                  f"{row['site_evals_per_s']:.3e} sites/s", flush=True)
        except Budget as exc:
            row = {"B": B, "skipped": str(exc)}
        except Exception as exc:               # noqa: BLE001
            row = {"B": B, "skipped": "out of memory" if is_oom(exc) else f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            _disarm()
        report["replicas"].append(row)
        save()
        if "skipped" in row:
            break


def precision(a, dev, name, report, save):
    """float32 vs float64 fields of the same network (transverse RMS ratio) and their speed, at 64x64."""
    lat = Lattice(load_card(name)["lattice"], min(64, max(a.sizes)))
    s = spins_on(lat, dev, batch=2, seed=3)
    out = {"model": name, "L": lat.L1}
    res = {}
    for dt in (torch.float32, torch.float64):
        p = MLProvider(load_model(name, lat).to(dt), lat, device=str(dev))
        res[dt] = p.compute(s).fields
        out[f"eval_s_{str(dt)[6:]}"] = timed(lambda: p.compute(s), dev, a.repeats)
    out["float32_vs_float64_transverse_rms_ratio"] = transverse_rms_ratio(res[torch.float32], res[torch.float64], s)
    print(f"  precision: float32 vs float64 fields differ by {out['float32_vs_float64_transverse_rms_ratio']:.2e} "
          f"(transverse RMS ratio); eval {1e3 * out['eval_s_float32']:.2f} ms vs {1e3 * out['eval_s_float64']:.2f} ms",
          flush=True)
    report["precision"] = out
    save()


def kpm_vs_ml(a, dev, name, report, save):
    from nearsight.electrons.kpm import KPMProvider
    card = load_card(name)
    for L in a.kpm_sizes:
        lat = Lattice(card["lattice"], L)
        row = {"model": name, "L": L, "N": lat.N, "moments": a.kpm_moments}
        reset_peak(dev)
        try:
            _alarm(a.budget)
            kpm = KPMProvider(lat, SDModel.from_dict(card), moments=a.kpm_moments, realizations=1, device=str(dev))
            s = spins_on(lat, dev, seed=5)
            row["kpm_eval_s"] = timed(lambda: kpm.compute(s), dev, max(1, a.repeats // 2))
            row["kpm_vectors"] = kpm.n_vectors
            row["kpm_peak_mib"] = peak_mib(dev)
            ml = MLProvider(model_for(name, lat, a.dtype), lat, device=str(dev), site_chunk=a.site_chunk)
            row["ml_eval_s"] = timed(lambda: ml.compute(s), dev, a.repeats)
            row["kpm_over_ml"] = row["kpm_eval_s"] / row["ml_eval_s"]
            row["ml_vs_kpm_transverse_rms_ratio"] = transverse_rms_ratio(ml.compute(s).fields, kpm.compute(s).fields, s)
            print(f"  KPM (M={a.kpm_moments}, {row['kpm_vectors']} vectors) {L}^2: {1e3 * row['kpm_eval_s']:.1f} ms "
                  f"vs ML {1e3 * row['ml_eval_s']:.2f} ms  ({row['kpm_over_ml']:.0f}x); ML vs KPM fields "
                  f"{row['ml_vs_kpm_transverse_rms_ratio']:.3f}", flush=True)
        except Budget as exc:
            row["skipped"] = str(exc)
        except Exception as exc:               # noqa: BLE001
            row["skipped"] = "out of memory" if is_oom(exc) else f"{type(exc).__name__}: {exc}"[:300]
        finally:
            _disarm()
            kpm = ml = None
        report["kpm"].append(row)
        save()
        if "skipped" in row:
            print(f"  KPM {L}^2 skipped: {row['skipped']}", flush=True)
            break


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--sizes", nargs="+", type=int, default=None, help="L of L x L (default 64..1024 on cuda)")
    p.add_argument("--sweep-models", type=int, default=1, help="how many of --models get the full size sweep "
                   "(the others are swept up to the first model's largest fit or 256, whichever is smaller)")
    p.add_argument("--replicas", nargs="+", type=int, default=None)
    p.add_argument("--replica-size", type=int, default=None)
    p.add_argument("--kpm-sizes", nargs="+", type=int, default=None)
    p.add_argument("--kpm-moments", type=int, default=None)
    p.add_argument("--dtype", choices=("float32", "float64"), default=None, help="default: the card's")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed Heun steps per size")
    p.add_argument("--budget", type=float, default=60.0, help="seconds per size")
    p.add_argument("--total-budget", type=float, default=120.0, help="seconds for the size sweeps together")
    p.add_argument("--hard-stop", type=float, default=210.0, help="no section starts after this many seconds")
    p.add_argument("--site-chunk", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default="bench_gpu.json")
    a = p.parse_args(argv)
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but torch sees no GPU; use --device cpu for the smoke test")
    if a.threads:
        torch.set_num_threads(a.threads)
    cuda = dev.type == "cuda"
    a.sizes = a.sizes or ([64, 128, 256, 512, 1024] if cuda else [24, 48])
    a.replicas = a.replicas or ([1, 4, 16, 64] if cuda else [1, 4])
    a.replica_size = a.replica_size or (128 if cuda else min(a.sizes))
    a.kpm_sizes = a.kpm_sizes or ([64, 128, 256] if cuda else [min(a.sizes)])
    a.kpm_moments = a.kpm_moments or (1000 if cuda else 128)
    a.site_chunk = a.site_chunk or (1 << 18 if cuda else 16384)
    a.dtype = {"float32": torch.float32, "float64": torch.float64}.get(a.dtype)
    report = {"device": torch.cuda.get_device_name(dev) if cuda else platform.processor() or "cpu",
              "torch": torch.__version__, "cuda": torch.version.cuda, "threads": torch.get_num_threads(),
              "settings": {k: v for k, v in vars(a).items() if k != "dtype"} | {"dtype": str(a.dtype)},
              "sweep": [], "largest_fit": {}, "replicas": [], "precision": None, "kpm": []}

    def save():
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1, default=str)

    t_start = time.perf_counter()
    print(f"device {report['device']}, torch {report['torch']}; per-size budget {a.budget:g} s", flush=True)
    print("(1) ML field evaluation and Heun step against N", flush=True)
    for i, name in enumerate(a.models):
        if i >= a.sweep_models:
            cap = min(report["largest_fit"].get(a.models[0]) or 256, 256)
            a_sizes, a.sizes = a.sizes, [L for L in a.sizes if L <= cap]
            sweep(a, dev, name, report, save, t_start)
            a.sizes = a_sizes
        else:
            sweep(a, dev, name, report, save, t_start)
    sections = [(f"(2) batched replicas ({a.models[0]})", replicas), ("(3) float32 vs float64", precision),
                (f"(4) ML vs KPM on {dev.type}", kpm_vs_ml)]
    for title, fn in sections:
        if time.perf_counter() - t_start > a.hard_stop:
            print(f"{title}: skipped (past --hard-stop {a.hard_stop:g} s)", flush=True)
            report.setdefault("skipped_sections", []).append(title)
            continue
        print(title, flush=True)
        try:
            fn(a, dev, a.models[0], report, save)
        except Exception as exc:               # noqa: BLE001 - one section's failure must not lose the others
            _disarm()
            msg = "out of memory" if is_oom(exc) else f"{type(exc).__name__}: {exc}"[:300]
            print(f"  failed: {msg}", flush=True)
            report.setdefault("failed_sections", {})[title] = msg
            save()
    report["total_s"] = time.perf_counter() - t_start
    save()
    print(f"largest lattice that fitted: {report['largest_fit']}; {report['total_s']:.0f} s; -> {a.out}", flush=True)


if __name__ == "__main__":
    main()
