"""Train a model on ED/KPM labels: ``train(config) -> path of the model file``.

The config keys, their defaults and checks: :mod:`nearsight.training.config` (``nearsight train CONFIG.yaml``).

Each epoch ends with an atomic checkpoint holding everything (weights, EMA, optimizer, plateau scheduler, early
stopping with the best weights, history) and a digest of its datasets' arrays; batch order is a function of seed
and epoch, so a killed run resumes and reproduces the uninterrupted one. A resume is refused (one line, before
anything is written) if a setting differs (``epochs`` may change only where no schedule depends on it) or a dataset's
arrays changed. metrics.csv logs both loss terms and the energy's share of the loss.

Datasets labelled over a window of mu (``mu_window``, docs/canonical.md) train a **mu-conditioned** model
(:mod:`nearsight.ml.canonical`): each frame's ``mu`` is a model input, the fields are fitted at that ``mu``, the
energy is the grand potential ``Omega(mu)`` per site, and the count ``N = -dOmega/dmu`` (autograd in ``mu``) is
fitted to the labels' ``n_electrons`` with weight ``lambda_count`` (and, for bp, ``n_i`` to ``site_density`` with
``lambda_density``). The card records ``mu_window``, ``mu_conditioned``, ``mu_input``, the held-out count error and
the smallest ``dN/dmu`` met on the validation frames over the window (must be > 0 for the canonical solve).
"""
from __future__ import annotations

import csv
import datetime
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..errors import NearsightError, NearsightWarning
from ..io import atomic_path
from ..ml.network import DTYPES, energy_and_fields
from . import cache as dcache
from .data import TrainingData, batches, load_training_data
from .families import build_family, init_state
from ..ml.canonical import energy_fields_count
from .loss import Accumulator, count_loss, count_weights, density_loss, frame_loss, ramp
from .checkpoint import check_data, load_checkpoint, save_checkpoint
from .parallel import DataParallel
from .metrics import KINDS, count_errors, disordered_mask, evaluate
from .plots import plot_learning_curve, plot_parity
from .schedule import EarlyStopping, eval_module, lr_at, make_ema, make_optimizer, make_plateau
from .config import DEFAULTS, RESUMABLE, check_config, epochs_schedule, load_config, resumable  # noqa: F401 (re-exported)

CHECKPOINT = "checkpoint.pt"
_SETS = ("val", "ext")
METRIC_COLUMNS = (("epoch", "lr", "lambda", "train_loss", "train_field_loss", "train_energy_loss", "energy_share",
                   "grad_norm", "train_transverse_rms_ratio", "train_energy_rmse_per_site")
                  + tuple(f"{p}_{k}transverse_rms_ratio" for p in _SETS for k in ("", "disordered_", "ordered_"))
                  + ("val_transverse_rmse", "val_energy_rmse_per_site", "ext_energy_rmse_per_site", "best_epoch",
                     "seconds", "train_count_loss", "train_density_loss", "val_count_rmse_per_site",
                     "val_implied_mu_rmse"))


def lambda_at(c: dict, epoch: int) -> float:
    n = c["lambda_ramp_epochs"] if c["lambda_ramp_epochs"] is not None else c["epochs"] // 2
    return ramp(epoch, c["lambda_start"], c["lambda_end"], int(n))


def _write_metrics(out: Path, history: list) -> None:
    with atomic_path(str(out / "metrics.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k) for k in METRIC_COLUMNS})


def _row(prefix: str, res: dict | None) -> dict:
    if res is None:
        return {}
    out = {f"{prefix}_transverse_rms_ratio": res["transverse_rms_ratio"],
           f"{prefix}_energy_rmse_per_site": res["energy_rmse_per_site"]}
    for k in KINDS:
        out[f"{prefix}_{k}_transverse_rms_ratio"] = res[k]["transverse_rms_ratio"]
    if prefix == "val":
        out["val_transverse_rmse"] = res["transverse_rmse"]
    return out


# ----------------------------------------------------------------------------------------------- training
def _setup(c: dict):
    data = load_training_data(c["datasets"], val_datasets=c["val_datasets"], val_fraction=c["val_fraction"],
                              seed=c["seed"], train_fraction=c["train_fraction"], subset_seed=c["subset_seed"])
    if not data.train or not data.val:
        raise NearsightError("after the split there are no training or no validation frames; add trajectories")
    if data.physics["mu_window"] is None:
        if c["filling"] is not None or c["mu"] is not None:
            raise NearsightError("filling / mu in a training config set the default ensemble of a mu-conditioned "
                                 "model; these datasets are labelled at one ensemble (no mu_window): drop them")
    else:
        lo, hi = data.physics["mu_window"]
        if c["mu"] is not None and not lo <= c["mu"] <= hi:
            raise NearsightError(f"mu = {c['mu']:g} lies outside the labels' mu_window [{lo:g}, {hi:g}]")
        if c["cache_descriptors"] in (True, "true"):
            raise NearsightError("cache_descriptors: true is not available for a mu-conditioned model (mu-window "
                                 "data); set cache_descriptors: auto or false")
        if c["lambda_density"] > 0:
            if c["family"] != "bp":
                raise NearsightError("lambda_density (site counts n_i = -d eps_i/dmu) needs family bp: a message-"
                                     "passing site energy sees its neighbours' mu inputs; set lambda_density: 0")
            if any(fs.site_density is None for fs in data.train + data.val):
                raise NearsightError("lambda_density > 0 needs site_density in every dataset (ED labels); set "
                                     "lambda_density: 0 or relabel with solver ed")
        if c["count_loss"] == "mu":
            missing = sorted({fs.source for fs in data.train if fs.dn_dmu is None})
            if missing:
                raise NearsightError(f"count_loss: mu needs the labels' dn_dmu (ED at kT > 0), which {', '.join(missing)} "
                                     f"lack(s): add it with 'nearsight generate --solver ed ... --source FILE "
                                     f"--source-mu --out NEW' (the same labels at the same mu) or set count_loss: count")
    if data.physics["kT"] == 0:
        warnings.warn("the labels were computed at electronic kT = 0, where canonical fields carry a global part "
                      "(docs/nearsightedness.md §3); a local model learns them poorly: label at a small kT, e.g. 0.01",
                      stacklevel=3)
    return data, build_family(c, data)


def train(config: dict, *, stop_after: int | None = None, export: str | None = None) -> str | None:
    """Train a model; returns the path of the model file ``OUT/NAME.pt`` (with its card).

    ``stop_after`` ends the call after that many epochs of this call, leaving a checkpoint to resume from and
    returning None (how tests emulate an interrupted run). ``export``: train nothing; write the model of the run's
    checkpoint (its best internal-validation weights so far, evaluated as a finished run's are) into the directory
    ``export`` and return its path; the card says so (``training.exported_from_checkpoint``), the run is untouched.
    """
    c = check_config(config)
    par = DataParallel.from_config(c)   # torchrun: ranks share each batch (training/parallel.py)
    out = Path(c["out"])
    if export is not None and Path(export).resolve() == out.resolve():
        raise NearsightError(f"export directory {export!r} is the run's out directory: give another one (the run "
                             f"writes its own model there when it finishes)")
    device, dtype = torch.device(c["device"]), DTYPES[c["dtype"]]
    data, fam = _setup(c)               # everything that can reject the input happens before anything is written
    sched = epochs_schedule(c)
    ck = load_checkpoint(out / CHECKPOINT, c, resumable(c), DEFAULTS,
                         why={"epochs": f"{sched}, so the resumed run would not follow its schedule"} if sched else None)
    if export is not None and ck is None:
        raise NearsightError(f"no checkpoint {str(out / CHECKPOINT)!r} to export (resume: {c['resume']}); train "
                             f"first, or name the run's config and out directory")
    if ck is not None and not check_data(ck, data.digests, out / CHECKPOINT):
        warnings.warn(f"checkpoint {str(out / CHECKPOINT)!r} predates the recording of its datasets' digests: "
                      f"the datasets are taken as unchanged, not verified (the next checkpoint records them)",
                      NearsightWarning)
    init = init_state(c["init"], c["family"], fam) if c["init"] is not None and ck is None else None
    mu_model = fam.mu_input is not None
    par.check(c, mu_model)
    use_cache = False if mu_model or par.active else dcache.resolve(c, fam, data, dtype)
    dest = out if export is None else Path(export)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NearsightError(f"cannot create output directory {str(dest)!r}: {exc.strerror}") from None
    learn = fam.learn
    models = fam.views(learn)
    params = [p for p in learn.parameters() if p.requires_grad]
    par.wrap(models)
    val_ids = sorted({int(t) for fs in data.val for t in fs.trajectory})
    opt = make_optimizer(c, params)
    plateau = make_plateau(c, opt)
    es = EarlyStopping(c["patience"])
    history, start, stopped = [], 0, False
    if ck is not None:
        if ck["val_ids"] != val_ids:
            raise NearsightError("the datasets changed since the checkpoint (different validation trajectories); "
                                 "use another out directory or set resume: false")
        learn.load_state_dict(ck["learn"])
        opt.load_state_dict(ck["optimizer"])
        if plateau is not None:
            plateau.load_state_dict(ck["plateau"])
        es.load_state_dict(ck["early_stopping"])
        history, start, stopped = list(ck["history"]), int(ck["epoch"]), bool(ck.get("stopped"))
    elif init is not None:
        learn.load_state_dict(init)     # weights and normalization of the init model (fine-tuning)
    else:
        fam.normalize(data)
    ema = make_ema(c, learn)
    if ema is not None and ck is not None:
        ema.load_state_dict(ck["ema"])
    emodels = models if ema is None else fam.views(ema.module)
    floor = c["loss_floor"] * float(learn.scale) ** 2
    e_site = torch.cat([fs.energy / fs.lattice.N for fs in data.train])
    escale = c["energy_scale"] or (float(e_site.std()) if len(e_site) > 1 and float(e_site.std()) > 0 else 1.0)
    weights = [torch.as_tensor(np.where(disordered_mask(fs, c["split_time"]), c["weight_disordered"], 1.0))
               for fs in data.train]
    cscale, dscale = _count_scales(c, data) if mu_model else (1.0, 1.0)
    cweights = (count_weights(data.train, c["count_weight_max"]) if mu_model and c["count_loss"] == "mu"
                else None)
    per_site = mu_model and c["lambda_density"] > 0
    caches = ([dcache.JacobianCache(fam.descs[fs.lattice], fs.spins, dtype, device) for fs in data.train]
              if use_cache and export is None else None)      # an export trains nothing

    per_epoch = len(batches(data.train, c["batch_size"], None))
    bar = tqdm(total=c["epochs"] * per_epoch, initial=min(start, c["epochs"]) * per_epoch,
               disable=not c["progress"], desc="train", unit="batch")
    try:
        for epoch in range(start, c["epochs"] if not stopped and export is None else start):
            t0 = time.perf_counter()
            lam = lambda_at(c, epoch)
            if plateau is None:
                for g in opt.param_groups:
                    g["lr"] = lr_at(c, epoch)
            lr = opt.param_groups[0]["lr"]
            learn.train()
            acc, sums, n_b = Accumulator(), np.zeros(6), 0
            rng = np.random.default_rng([c["seed"], epoch])
            bar.set_description(f"epoch {epoch + 1}/{c['epochs']}")
            for k, idx in batches(data.train, c["batch_size"], rng):
                fs = data.train[k]
                idx, w = par.local(idx)
                s = fs.spins[idx].to(device, dtype)
                h_ref, e_ref = fs.fields[idx].to(device, dtype), fs.energy[idx].to(device)  # energies stay float64
                lc = ld = torch.zeros(())
                if caches is not None:
                    e, h = caches[k].fields(learn, torch.as_tensor(idx, device=device))
                elif mu_model:
                    mu = fs.mu[idx].to(device)
                    mu = mu[:, None].expand(-1, fs.lattice.N) if per_site else mu
                    e, h, n_pred, ni_pred = energy_fields_count(models[fs.lattice], s, mu, create_graph=True)
                elif par.active:
                    e, h = par.energy_and_fields(fs.lattice, s)
                else:
                    e, h = energy_and_fields(models[fs.lattice], s, create_graph=True)
                loss, lf, le = frame_loss(h, h_ref, e, e_ref, s, lam=lam, floor_per_site=floor, energy_scale=escale,
                                          weights=weights[k][idx].to(device))
                if mu_model:
                    lc = count_loss(n_pred, fs.n_electrons[idx].to(device), fs.lattice.N, cscale,
                                    None if cweights is None else cweights[k][idx].to(device))
                    loss = loss + c["lambda_count"] * lc
                    if per_site:
                        ld = density_loss(ni_pred, fs.site_density[idx].to(device), dscale)
                        loss = loss + c["lambda_density"] * ld
                opt.zero_grad(set_to_none=True)
                (loss * w if par.active else loss).backward(inputs=params)        # only the weights: no second-order work toward the spins
                gn = torch.nn.utils.clip_grad_norm_(params, c["grad_clip"] or math.inf)
                opt.step()
                if ema is not None:
                    ema.update_parameters(learn)
                if w > 0:
                    acc.add(h.detach().cpu(), fs.fields[idx], e.detach().cpu(), fs.energy[idx], fs.spins[idx])
                share = w / par.env.world if par.active else 1.0     # this rank's part of the batch mean
                sums += share * np.array([float(loss.detach()), float(lf.detach()), float(le.detach()) * lam,
                                          float(gn), float(lc.detach()), float(ld.detach())])
                n_b += 1
                bar.update(1)
            par.reduce(acc, sums)
            learn.eval()
            va = evaluate(emodels, data.val, device, dtype, c["split_time"])
            ev = c["external_every"]
            ext = (evaluate(emodels, data.external, device, dtype, c["split_time"])
                   if data.external and ev and (epoch + 1) % ev == 0 else None)
            if plateau is not None:
                plateau.step(va["transverse_rms_ratio"])
            es.update(epoch + 1, va["transverse_rms_ratio"], eval_module(learn, ema))
            tr, m = acc.result(), [float(v) for v in sums / max(n_b, 1)]
            history.append({"epoch": epoch + 1, "lr": lr, "lambda": lam, "train_loss": m[0], "train_field_loss": m[1],
                            "train_energy_loss": m[2] / lam if lam > 0 else m[2],
                            "energy_share": m[2] / m[0] if m[0] > 0 else 0.0, "grad_norm": m[3],
                            "train_transverse_rms_ratio": tr["transverse_rms_ratio"],
                            "train_energy_rmse_per_site": tr["energy_rmse_per_site"],
                            **_row("val", va), **_row("ext", ext), "best_epoch": es.best_epoch,
                            "seconds": time.perf_counter() - t0})
            if mu_model:
                ce = count_errors(emodels, data.val, device, dtype)
                history[-1].update(train_count_loss=m[4], train_density_loss=m[5] if per_site else None,
                                   val_count_rmse_per_site=ce["count_rmse_per_site"],
                                   val_implied_mu_rmse=ce.get("implied_mu_rmse"))
            if not math.isfinite(history[-1]["train_loss"]):
                raise NearsightError(f"training diverged at epoch {epoch + 1} (loss is not finite); lower lr "
                                     f"(now {c['lr']:g}) or use dtype float64")
            stopped = es.stop(epoch + 1)
            if not par.is_main:
                par.barrier()
                if stopped:
                    break
                continue
            save_checkpoint(out / CHECKPOINT, {"epoch": epoch + 1, "learn": learn.state_dict(),
                                   "ema": None if ema is None else ema.state_dict(), "optimizer": opt.state_dict(),
                                   "plateau": None if plateau is None else plateau.state_dict(),
                                   "early_stopping": es.state_dict(), "stopped": stopped, "config": c,
                                   "history": history, "val_ids": val_ids, "data_sha256": data.digests})
            _write_metrics(out, history)
            par.barrier()
            bar.set_postfix(train=f"{tr['transverse_rms_ratio']:.3f}", val=f"{va['transverse_rms_ratio']:.3f}",
                            lr=f"{lr:.2g}")
            if stopped:
                break
            if stop_after is not None and epoch + 1 - start >= stop_after and epoch + 1 < c["epochs"]:
                return None
    finally:
        bar.close()
    if not par.is_main:                             # rank 0 writes the model (training/parallel.py)
        return None
    if es.best_state is not None:                   # model selection: the best internal-validation weights
        eval_module(learn, ema).load_state_dict(es.best_state)
    info = {"epochs_done": len(history), "best_epoch": es.best_epoch, "stopped_early": stopped,
            "energy_scale": escale, "cache_descriptors": use_cache,
            "cache_gb_estimate": round(dcache.estimate(c, fam, data, dtype), 3)}
    if export is not None:
        info["exported_from_checkpoint"] = True
    return _finish(c, dest, data, fam, emodels, history, info)


def _finish(c: dict, out: Path, data: TrainingData, fam, models: dict, history: list, info: dict) -> str:
    device, dtype = torch.device(c["device"]), DTYPES[c["dtype"]]
    internal, kept = evaluate(models, data.val, device, dtype, c["split_time"], keep=True)
    external = None
    if data.external:
        external, kept = evaluate(models, data.external, device, dtype, c["split_time"], keep=True)
    # the headline held-out figure: the external files when given (a size and trajectories never trained on or
    # selected on), else the internal validation trajectories; both are recorded with their kinds
    held = dict(external or internal)
    held.update({"set": "external" if external else "internal", "zero_field_rms_ratio": 1.0,
                 "internal": internal, "external": external})
    model = min(models.values(), key=lambda mdl: mdl.lattice.N)
    phys = dict(data.physics)
    mu_card = {}
    if phys["mu_window"] is not None:
        phys["filling"], phys["mu"] = c["filling"], c["mu"]
        ens = ("canonical" if c["filling"] is not None else "grand canonical" if c["mu"] is not None else None)
        mu_card = {"mu_window": list(phys["mu_window"]), "mu_conditioned": True, "mu_input": dict(fam.mu_input),
                   "ensemble": "mu-conditioned" + (f" (default {ens})" if ens else ""),
                   "count_held_out": {"internal": count_errors(models, data.val, device, dtype, slopes=True),
                                      "external": (count_errors(models, data.external, device, dtype, slopes=True)
                                                   if data.external else None)}}
    card = {
        "name": c["name"], "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nearsight_version": __version__,
        "lattice": phys["lattice"], "t": phys["t"], "t2": phys["t2"], "J": phys["J"], "B": phys["B"],
        "kT": phys["kT"], "filling": phys["filling"], "mu": phys["mu"],
        "ensemble": "canonical" if phys["filling"] is not None else "grand canonical",
        **fam.card(model), "dtype": c["dtype"], "training_data": data.summary(), "held_out": held,
        "training": {k: c[k] for k in DEFAULTS if k not in ("datasets", "val_datasets", "out", "name", "resume",
                                                            "progress", "descriptor", "mpnn", "hidden",
                                                            "activation")} | info,
        **mu_card,
    }
    card = _finite(card)
    path = fam.save(str(out / f"{c['name']}.pt"), model, card)
    with atomic_path(str(out / f"{c['name']}.card.json")) as tmp, open(tmp, "w") as f:
        json.dump(card, f, indent=2)
    plot_learning_curve(history, out / "learning_curve.png")
    plot_parity(kept, out / "parity.png", held)
    return path


def _count_scales(c: dict, data: TrainingData) -> tuple[float, float]:
    """Scales of the count and site-count terms (config, else the spread of the training labels)."""
    def spread(x):
        return float(x.std()) if x.numel() > 1 and float(x.std()) > 0 else 1.0
    cs = c["count_scale"] or spread(torch.cat([fs.n_electrons / fs.lattice.N for fs in data.train]))
    dens = [fs.site_density.reshape(-1) for fs in data.train if fs.site_density is not None]
    ds = c["density_scale"] or (spread(torch.cat(dens)) if dens else 1.0)
    return cs, ds


def _finite(x):
    """The card as strict JSON: non-finite numbers (e.g. an undefined ratio) become None."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
