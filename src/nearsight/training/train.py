"""Train a Behler–Parrinello model on ED/KPM labels: ``train(config) -> path of the model file``.

Config keys (YAML for ``nearsight train CONFIG.yaml``; paths relative to the working directory):

    datasets:        [a.h5, b.h5]   # required: files from 'nearsight generate' (same physics; sizes may differ)
    val_datasets:    []             # optional held-out files; otherwise whole trajectories are held out:
    val_fraction:    0.2            #   this fraction of the trajectories (at least one), chosen by seed
    descriptor:      {cutoff: 4.0}  # cutoff and options of nearsight.descriptors.Descriptor ({}: its defaults)
    hidden:          [32, 32]       # MLP hidden sizes
    activation:      silu           # silu | tanh (smooth: continuous fields)
    dtype:           float32        # float32 | float64: float32 fields differ from float64 by ~5e-7 relative
                                    # (model errors are >= 1e-2), train to the same held-out error, and run
                                    # 1.45-1.5x faster on CPU (measured, 24x24/48x48, cutoffs 4 and 6)
    epochs:          50
    batch_size:      8              # frames per step
    lr:              0.003          # Adam learning rate ...
    lr_schedule:     cosine         # ... cosine (to lr * lr_min_factor) | exponential (lr * lr_gamma^epoch) | constant
    lr_min_factor:   0.05
    lr_gamma:        0.95
    weight_decay:    0.0
    lambda_start:    0.0            # weight of the energy term, ramped linearly ...
    lambda_end:      0.1            # ... to lambda_end ...
    lambda_ramp_epochs: null        # ... over this many epochs (null: half of epochs)
    seed:            0
    out:             runs/model     # directory: checkpoint.pt, metrics.csv, learning_curve.png, parity.png, NAME.pt
    name:            null           # model name (default: the out directory's name)
    resume:          true           # continue from out/checkpoint.pt if present (same settings; epochs may
                                    # grow, which stretches the lr and lambda schedules from there on)
    progress:        true           # tqdm progress bar
    device:          cpu

Each epoch ends with an atomic checkpoint (weights, optimizer, history), so a killed run resumes where it
stopped and reproduces the uninterrupted run (batch order is a function of seed and epoch).
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from .. import __version__
from ..errors import NearsightError
from ..io import atomic_path
from ..ml.cards import save_model
from ..ml.network import DTYPES, SiteEnergyModel, SiteMLP, dtype_from_name, energy_and_fields
from .data import TrainingData, batches, load_training_data
from .loss import Accumulator, loss_terms, ramp

DEFAULTS = {
    "datasets": None, "val_datasets": [], "val_fraction": 0.2,
    "descriptor": {"cutoff": 4.0}, "hidden": [32, 32], "activation": "silu", "dtype": "float32",
    "epochs": 50, "batch_size": 8, "lr": 3e-3, "lr_schedule": "cosine", "lr_min_factor": 0.05, "lr_gamma": 0.95,
    "weight_decay": 0.0, "lambda_start": 0.0, "lambda_end": 0.1, "lambda_ramp_epochs": None,
    "seed": 0, "out": "runs/model", "name": None, "resume": True, "progress": True, "device": "cpu",
}
#: keys that may change when a run is resumed
RESUMABLE = ("epochs", "resume", "progress", "device", "out")
SCHEDULES = ("cosine", "exponential", "constant")
CHECKPOINT = "checkpoint.pt"
METRIC_COLUMNS = ("epoch", "lr", "lambda", "train_loss", "train_transverse_rms_ratio", "train_energy_rmse_per_site",
                  "val_transverse_rms_ratio", "val_transverse_rmse", "val_energy_rmse_per_site", "seconds")


# ------------------------------------------------------------------------------------------------ config
def load_config(path: str) -> dict:
    """Read a YAML training config (a clear error for a missing or malformed file)."""
    if not os.path.isfile(path):
        raise NearsightError(f"config file {path!r} does not exist")
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise NearsightError(f"config {path!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise NearsightError(f"config {path!r} must be a mapping of keys (datasets, epochs, ...)")
    return cfg


def check_config(config: dict) -> dict:
    """Defaults filled in and every value checked; unknown keys are an error (they are usually typos)."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise NearsightError(f"unknown training config key(s) {', '.join(unknown)}; known keys: "
                             f"{', '.join(DEFAULTS)}")
    c = {**DEFAULTS, **{k: v for k, v in config.items() if v is not None or k in ("name", "lambda_ramp_epochs")}}
    for k in ("datasets", "val_datasets"):
        v = c[k]
        if isinstance(v, str):
            v = [v]
        if v is None or not isinstance(v, (list, tuple)) or not all(isinstance(p, str) for p in v):
            raise NearsightError(f"{k} must be a list of dataset files, got {config.get(k)!r}")
        c[k] = [str(p) for p in v]
    if not c["datasets"]:
        raise NearsightError("the config lists no datasets: give 'datasets: [file.h5, ...]'")
    if not isinstance(c["descriptor"], dict):
        raise NearsightError(f"descriptor must be a mapping of options (cutoff, ...), got {c['descriptor']!r}")
    for k in ("epochs", "batch_size", "seed"):
        if not isinstance(c[k], int) or isinstance(c[k], bool) or c[k] < (0 if k != "batch_size" else 1):
            raise NearsightError(f"{k} must be a non-negative integer (batch_size >= 1), got {c[k]!r}")
    for k in ("lr", "lr_min_factor", "lr_gamma", "weight_decay", "lambda_start", "lambda_end", "val_fraction"):
        try:
            c[k] = float(c[k])
        except (TypeError, ValueError):
            raise NearsightError(f"{k} must be a number, got {c[k]!r}") from None
        if not math.isfinite(c[k]) or c[k] < 0:
            raise NearsightError(f"{k} must be finite and >= 0, got {c[k]!r}")
    if c["lr"] <= 0:
        raise NearsightError(f"lr must be > 0, got {c['lr']!r}")
    if c["lr_schedule"] not in SCHEDULES:
        raise NearsightError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {c['lr_schedule']!r}")
    dtype_from_name(c["dtype"])
    if c["name"] is None:
        c["name"] = Path(c["out"]).name or "model"
    if not str(c["name"]).replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise NearsightError(f"name must be letters, digits, '-', '_' or '.', got {c['name']!r}")
    return c


def lambda_at(c: dict, epoch: int) -> float:
    n = c["lambda_ramp_epochs"] if c["lambda_ramp_epochs"] is not None else c["epochs"] // 2
    return ramp(epoch, c["lambda_start"], c["lambda_end"], int(n))


def lr_at(c: dict, epoch: int) -> float:
    if c["lr_schedule"] == "constant":
        return c["lr"]
    if c["lr_schedule"] == "exponential":
        return c["lr"] * c["lr_gamma"] ** epoch
    x = epoch / max(1, c["epochs"] - 1)
    lo = c["lr"] * c["lr_min_factor"]
    return lo + 0.5 * (c["lr"] - lo) * (1 + math.cos(math.pi * min(1.0, x)))


# ------------------------------------------------------------------------------------------------- setup
def _descriptor(c: dict, lattice):
    from ..descriptors import Descriptor
    opts = dict(c["descriptor"])
    cutoff = opts.pop("cutoff", None)  # None: the descriptor's default for the lattice
    try:
        return Descriptor(lattice, cutoff, **opts)
    except TypeError as exc:
        raise NearsightError(f"descriptor options {c['descriptor']!r} are not accepted: {exc}") from None


def _models(c: dict, data: TrainingData, head: SiteMLP | None) -> dict:
    """One SiteEnergyModel per lattice size, all sharing one head (the learned part)."""
    dtype = DTYPES[c["dtype"]]
    lattices = {fs.lattice for fs in data.train + data.val}
    descs = {lat: _descriptor(c, lat).to(dtype) for lat in lattices}
    widths = {int(d.n_features) for d in descs.values()}
    if len(widths) != 1:
        raise NearsightError(f"the descriptor gives different feature counts on different lattice sizes "
                             f"({sorted(widths)}); train on one size or fix the descriptor")
    if head is None:
        torch.manual_seed(c["seed"])
        head = SiteMLP(widths.pop(), c["hidden"], c["activation"]).to(dtype)
    return {lat: SiteEnergyModel(d, head, lat).to(c["device"]) for lat, d in descs.items()}


@torch.no_grad()
def _normalize(head: SiteMLP, models: dict, data: TrainingData, device) -> None:
    """Feature standardization, per-site energy reference and field scale from the training set only.

    The statistics are taken from float64 features whatever the model dtype: a feature that vanishes
    identically (some reference phases of small-cutoff descriptors do, by symmetry) then has a spread at
    float64 roundoff and is recognized as constant. Measured in float32 its spread was float32 roundoff
    (~1e-7), and dividing by it amplified that roundoff to O(10) network inputs: a float32 model's energy then
    jumped by ~0.05 between neighbouring configurations and damped LLG was not monotone.
    """
    from ..electrons.base import transverse
    feats, e_site, hp = [], [], []
    for fs in data.train:
        d = models[fs.lattice].descriptor
        for part in torch.split(fs.spins, 64):
            feats.append(d(part.to(device, torch.float64)).reshape(-1, head.n_features).cpu())
        e_site.append(fs.energy / fs.lattice.N)
        hp.append(transverse(fs.fields, fs.spins).pow(2).sum(-1).reshape(-1))
    x = torch.cat(feats)
    scale = float(torch.cat(hp).mean().sqrt())
    head.set_normalization(x.mean(0), x.std(0), float(torch.cat(e_site).mean()), scale if scale > 0 else 1.0)


def _evaluate(models: dict, sets: list, device, dtype, chunk: int = 32, keep: bool = False):
    acc, kept = Accumulator(), []
    for fs in sets:
        m = models[fs.lattice]
        for sl in torch.split(torch.arange(len(fs)), chunk):
            s = fs.spins[sl].to(device, dtype)
            e, h = energy_and_fields(m, s)
            h64, e64 = h.double().cpu(), e.double().cpu()
            acc.add(h64, fs.fields[sl], e64, fs.energy[sl], fs.spins[sl])
            if keep:
                kept.append((fs.spins[sl], fs.fields[sl], h64, fs.time[sl.numpy()]))
    return (acc.result(), kept) if keep else acc.result()


# --------------------------------------------------------------------------------------------- checkpoint
def _save_checkpoint(out: Path, state: dict) -> None:
    with atomic_path(str(out / CHECKPOINT)) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(out: Path, c: dict) -> dict | None:
    path = out / CHECKPOINT
    if not path.exists() or not c["resume"]:
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the checkpoint is unusable
        raise NearsightError(f"checkpoint {str(path)!r} is corrupt ({type(exc).__name__}); delete it to start "
                             f"over, or set resume: false") from None
    if not isinstance(ck, dict) or not {"epoch", "head", "optimizer", "config", "history", "val_ids"} <= set(ck):
        raise NearsightError(f"checkpoint {str(path)!r} is incomplete or from another program; delete it or set "
                             f"resume: false")
    old = {k: v for k, v in ck["config"].items() if k not in RESUMABLE}
    new = {k: v for k, v in c.items() if k not in RESUMABLE}
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        raise NearsightError(f"checkpoint {str(path)!r} was made with different settings ({', '.join(diff)}); "
                             f"use another out directory, restore the settings, or set resume: false")
    return ck


def _write_metrics(out: Path, history: list) -> None:
    with atomic_path(str(out / "metrics.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k) for k in METRIC_COLUMNS})


# ----------------------------------------------------------------------------------------------- training
def train(config: dict, *, stop_after: int | None = None) -> str | None:
    """Train a model; returns the path of the model file ``OUT/NAME.pt`` (with its card).

    ``stop_after`` ends the call after that many epochs of this call, leaving a checkpoint to resume from and
    returning None (how tests emulate an interrupted run).
    """
    c = check_config(config)
    out = Path(c["out"])
    device, dtype = torch.device(c["device"]), DTYPES[c["dtype"]]
    # everything that can reject the input happens before anything is written
    data = load_training_data(c["datasets"], val_datasets=c["val_datasets"], val_fraction=c["val_fraction"],
                              seed=c["seed"])
    if not data.train or not data.val:
        raise NearsightError("after the split there are no training or no held-out frames; add trajectories")
    if data.physics["kT"] == 0:
        warnings.warn("the labels were computed at electronic kT = 0, where canonical fields carry a global part "
                      "(design.md §1); a local model learns them poorly — label at a small kT such as 0.01",
                      stacklevel=2)
    models = _models(c, data, None)
    ck = _load_checkpoint(out, c)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NearsightError(f"cannot create output directory {str(out)!r}: {exc.strerror}") from None
    head = next(iter(models.values())).head
    val_ids = sorted({int(t) for fs in data.val for t in fs.trajectory})
    opt = torch.optim.Adam(head.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
    history, start = [], 0
    if ck is not None:
        if ck["val_ids"] != val_ids:
            raise NearsightError("the datasets changed since the checkpoint (different held-out trajectories); "
                                 "use another out directory or set resume: false")
        head.load_state_dict(ck["head"])
        opt.load_state_dict(ck["optimizer"])
        history, start = list(ck["history"]), int(ck["epoch"])
    else:
        _normalize(head, models, data, device)

    per_epoch = len(batches(data.train, c["batch_size"], None))
    bar = tqdm(total=c["epochs"] * per_epoch, initial=min(start, c["epochs"]) * per_epoch,
               disable=not c["progress"], desc="train", unit="batch")
    try:
        for epoch in range(start, c["epochs"]):
            t0 = time.perf_counter()
            lr, lam = lr_at(c, epoch), lambda_at(c, epoch)
            for g in opt.param_groups:
                g["lr"] = lr
            head.train()
            acc, loss_sum, n_b = Accumulator(), 0.0, 0
            rng = np.random.default_rng([c["seed"], epoch])
            bar.set_description(f"epoch {epoch + 1}/{c['epochs']}")
            for k, idx in batches(data.train, c["batch_size"], rng):
                fs = data.train[k]
                s = fs.spins[idx].to(device, dtype)
                h_ref, e_ref = fs.fields[idx].to(device, dtype), fs.energy[idx].to(device)  # energies stay float64
                e, h = energy_and_fields(models[fs.lattice], s, create_graph=True)
                loss, _, _ = loss_terms(h, h_ref, e, e_ref, s, lam)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                acc.add(h.detach(), h_ref, e.detach(), e_ref, s)
                loss_sum, n_b = loss_sum + float(loss.detach()), n_b + 1
                bar.update(1)
            head.eval()
            tr, va = acc.result(), _evaluate(models, data.val, device, dtype)
            history.append({"epoch": epoch + 1, "lr": lr, "lambda": lam, "train_loss": loss_sum / max(n_b, 1),
                            "train_transverse_rms_ratio": tr["transverse_rms_ratio"],
                            "train_energy_rmse_per_site": tr["energy_rmse_per_site"],
                            "val_transverse_rms_ratio": va["transverse_rms_ratio"],
                            "val_transverse_rmse": va["transverse_rmse"],
                            "val_energy_rmse_per_site": va["energy_rmse_per_site"],
                            "seconds": time.perf_counter() - t0})
            if not math.isfinite(history[-1]["train_loss"]):
                raise NearsightError(f"training diverged at epoch {epoch + 1} (loss is not finite); lower lr "
                                     f"(now {c['lr']:g}) or use dtype float64")
            _save_checkpoint(out, {"epoch": epoch + 1, "head": head.state_dict(), "optimizer": opt.state_dict(),
                                   "config": c, "history": history, "val_ids": val_ids})
            _write_metrics(out, history)
            bar.set_postfix(train=f"{tr['transverse_rms_ratio']:.3f}", val=f"{va['transverse_rms_ratio']:.3f}",
                            lr=f"{lr:.2g}")
            if stop_after is not None and epoch + 1 - start >= stop_after and epoch + 1 < c["epochs"]:
                return None
    finally:
        bar.close()
    return _finish(c, out, data, models, history)


def _held_out(models: dict, data: TrainingData, device, dtype) -> tuple[dict, list]:
    res, kept = _evaluate(models, data.val, device, dtype, keep=True)
    held = {k: res[k] for k in ("transverse_rms_ratio", "transverse_rmse", "reference_transverse_rms",
                                "energy_rmse_per_site", "n_frames")}
    held["n_trajectories"] = len({int(t) for fs in data.val for t in fs.trajectory})
    held["zero_field_rms_ratio"] = 1.0
    times = np.concatenate([k[3] for k in kept])
    if times.max() > times.min():  # early (disordered) vs late (ordered) frames of the quenches
        cut = float(np.median(times))
        for label, sel in (("early", lambda t: t <= cut), ("late", lambda t: t > cut)):
            acc = Accumulator()
            for s, h_ref, h, t in kept:
                m = torch.as_tensor(sel(t))
                if bool(m.any()):
                    acc.add(h[m], h_ref[m], torch.zeros(int(m.sum())), torch.zeros(int(m.sum())), s[m])
            held[f"{label}_transverse_rms_ratio"] = acc.result()["transverse_rms_ratio"]
        held["early_late_split_time"] = cut
    return held, kept


def _finish(c: dict, out: Path, data: TrainingData, models: dict, history: list) -> str:
    device, dtype = torch.device(c["device"]), DTYPES[c["dtype"]]
    held, kept = _held_out(models, data, device, dtype)
    model = min(models.values(), key=lambda m: m.lattice.N)
    head = model.head
    phys = data.physics
    card = {
        "name": c["name"], "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nearsight_version": __version__,
        "lattice": phys["lattice"], "t": phys["t"], "t2": phys["t2"], "J": phys["J"], "B": phys["B"],
        "kT": phys["kT"], "filling": phys["filling"], "mu": phys["mu"],
        "ensemble": "canonical" if phys["filling"] is not None else "grand canonical",
        "cutoff": model.cutoff, "field_radius": 2 * model.cutoff, "n_features": head.n_features,
        "descriptor": model.descriptor.config(),
        "network": head.shape(), "dtype": c["dtype"], "energy_reference": float(head.e_ref),
        "field_scale": float(head.scale), "training_data": data.summary(), "held_out": held,
        "training": {k: c[k] for k in ("epochs", "batch_size", "lr", "lr_schedule", "lr_min_factor", "lr_gamma",
                                       "weight_decay", "lambda_start", "lambda_end", "lambda_ramp_epochs", "seed",
                                       "val_fraction")} | {"epochs_done": len(history)},
    }
    card = _finite(card)
    path = save_model(str(out / f"{c['name']}.pt"), model, card)
    with atomic_path(str(out / f"{c['name']}.card.json")) as tmp, open(tmp, "w") as f:
        json.dump(card, f, indent=2)
    plot_learning_curve(history, out / "learning_curve.png")
    plot_parity(kept, out / "parity.png", held)
    return path


def _finite(x):
    """The card as strict JSON: non-finite numbers (e.g. an undefined ratio) become None."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# ------------------------------------------------------------------------------------------------- plots
def plot_learning_curve(history: list, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    if history:
        ep = [r["epoch"] for r in history]
        ax[0].semilogy(ep, [r["train_transverse_rms_ratio"] for r in history], label="train")
        ax[0].semilogy(ep, [r["val_transverse_rms_ratio"] for r in history], label="held out")
        ax[1].semilogy(ep, [r["train_energy_rmse_per_site"] for r in history], label="train")
        ax[1].semilogy(ep, [r["val_energy_rmse_per_site"] for r in history], label="held out")
    ax[0].axhline(1.0, color="gray", lw=0.8, ls="--", label="zero-field predictor")
    ax[0].set(xlabel="epoch", ylabel="RMS(h⊥ error) / RMS(h⊥)", title="transverse fields")
    ax[1].set(xlabel="epoch", ylabel="energy RMSE per site (t)", title="energy")
    for a in ax:
        a.legend(fontsize=8)
    fig.tight_layout()
    _savefig(fig, path)


def plot_parity(kept: list, path: Path, held: dict, max_points: int = 20000) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..electrons.base import transverse
    ref = torch.cat([transverse(h_ref, s).reshape(-1) for s, h_ref, _, _ in kept]).numpy()
    pred = torch.cat([transverse(h, s).reshape(-1) for s, _, h, _ in kept]).numpy()
    if len(ref) > max_points:
        sel = np.random.default_rng(0).choice(len(ref), max_points, replace=False)
        ref, pred = ref[sel], pred[sel]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.scatter(ref, pred, s=2, alpha=0.3)
    lim = float(np.abs(np.concatenate([ref, pred])).max()) * 1.05 if len(ref) else 1.0
    ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="exact h⊥ component (t)", ylabel="ML h⊥ component (t)",
           title=f"held out: RMS ratio {held['transverse_rms_ratio']:.3f}")
    fig.tight_layout()
    _savefig(fig, path)


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    with atomic_path(str(path)) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
