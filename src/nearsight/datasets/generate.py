"""Training datasets from LLG quench trajectories (docs/nearsightedness.md §3: label the frames the model will meet).

For each bath temperature in ``kTs``, ``replicas`` quenches from random spins are integrated with the chosen
provider; every ``every`` steps after ``skip`` a frame is kept with its exact energy and fields (the provider's
own labels, float64). Each temperature block is saved under ``OUT.parts/`` as it completes, so an interrupted
generation resumes at the next block (a finished block is reused only if made with the same settings, a driver
model file checked by its name and SHA-256, wherever it now lies; otherwise the resume is refused); the final
dataset is written atomically.

With a ``driver`` (typically an :class:`~nearsight.ml.provider.MLProvider` trained on a first round of such
data) the quenches are integrated with the driver and only the kept frames are labelled by ``provider``: a frame
then costs one ED evaluation instead of the ``2 * every`` evaluations of the Heun steps between two frames, so
many more independent trajectories fit the same budget. The labels stay exact; only the sampling of
configurations comes from the driver (recorded in the dataset's ``driver`` attributes).

:func:`relabel_dataset` keeps a dataset's configurations and replaces its labels by another provider's (another
electronic temperature, ensemble or solver).

Besides ``energy`` and ``fields`` a dataset stores, per frame, the label extras the provider gives (ED gives all
three, float64): ``mu [F]`` (the chemical potential of the labels; the solved ``mu*`` in canonical mode),
``n_electrons [F]`` (``N = -dOmega/dmu``), ``site_density [F, N]`` (``n_i``, summing to ``N``) and, at ``kT > 0``,
``dn_dmu [F]`` (the compressibility ``dN/dmu`` at the labels' ``mu``: it turns a count error into a ``mu`` error).

**Labels over a window of mu** (``mu_window=(lo, hi)``, issue 22): every kept frame is labelled grand-canonically
(energy ``Omega(mu)`` plus Zeeman, fields at fixed ``mu``) at its own ``mu``, drawn uniformly from the window by
:func:`window_mu` — for block ``b`` (one bath temperature; a relabel is block 0) with ``F_b`` frames in stored
order, ``mu = lo + (hi - lo) * numpy.random.default_rng([mu_window_seed, b]).random(F_b)``. The quenches
themselves run in the provider's (or driver's) own ensemble, e.g. canonical at the target filling, so the frames
are the ones canonical dynamics meets. Such a dataset records ``mu_window`` and ``mu_window_seed``, has the
attributes ``mu`` and ``filling`` unset (the labels have no single ensemble: read the per-frame ``mu``), and keeps
the ensemble of the quenches as ``dynamics_mu`` / ``dynamics_filling`` (when the labelling provider drove them).
"""
from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
from tqdm import tqdm

from ..dynamics.run import run_llg
from ..fields import FieldProvider
from ..errors import NearsightError
from ..hamiltonian import SDModel
from ..io import check_writable, open_h5, read_attrs, read_dataset, write_dataset
from ..states import make_state
from ..trajectory import settings_mismatch


#: per-frame label extras stored next to energy and fields when the provider returns them
LABEL_EXTRAS = ("mu", "n_electrons", "site_density", "dn_dmu")


def parse_mu_window(value) -> tuple[float, float] | None:
    """``(lo, hi)`` from ``[lo, hi]`` or ``"lo,hi"`` (None stays None); a clear error unless finite with lo < hi."""
    if value is None:
        return None
    try:
        lo, hi = (float(x) for x in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise NearsightError(f"mu_window must be two numbers LO,HI (e.g. mu_window: [-5.2, -3.4]), got "
                             f"{value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise NearsightError(f"mu_window must be finite with LO < HI, got {value!r}; give e.g. [-5.2, -3.4]")
    return lo, hi


def window_mu(window: tuple[float, float], seed: int, block: int, n: int) -> np.ndarray:
    """The per-frame chemical potentials of block ``block`` (``n`` frames) drawn uniformly from ``window``."""
    lo, hi = window
    return lo + (hi - lo) * np.random.default_rng([int(seed), int(block)]).random(n)


def _check_window(provider: FieldProvider, window) -> tuple[float, float] | None:
    window = parse_mu_window(window)
    if window is not None and not callable(getattr(provider, "at_mu", None)):
        raise NearsightError(f"mu_window needs labels at a given mu per frame, which the {provider.name!r} provider "
                             f"does not evaluate; label with solver ed")
    return window


def _window_attrs(window, seed: int, ensemble: dict | None) -> dict:
    """Attributes of a dataset labelled over a mu window (module docstring); ``ensemble``: the quench ensemble."""
    if window is None:
        return {}
    out = {"mu_window": list(window), "mu_window_seed": int(seed), "mu": None, "filling": None}
    if ensemble is not None:
        out.update(dynamics_mu=ensemble.get("mu"), dynamics_filling=ensemble.get("filling"))
    return out


def _quench_settings(provider: FieldProvider, *, kTs, replicas, steps, every, skip, dt, alpha, scheme, seed,
                     initial, noise, driver, window) -> dict:
    """The settings of a quench generation (checked; every block stores them with its ``kT_block``)."""
    if not kTs or min(kTs) < 0:
        raise NearsightError("kTs (bath temperatures of the quenches) must be a non-empty list of numbers >= 0")
    if replicas < 1 or steps < 1 or every < 1 or skip < 0 or skip > steps:
        raise NearsightError("need replicas >= 1, steps >= 1, every >= 1 and 0 <= skip <= steps")
    if driver is not None and driver.lattice != provider.lattice:
        raise NearsightError(f"the driver runs on {driver.lattice!r} but the labels are for {provider.lattice!r}; "
                             f"build both for the same lattice")
    settings = {**provider.describe(), "replicas": replicas, "steps": steps, "every": every, "skip": skip,
                "dt": dt, "alpha": alpha, "scheme": scheme, "seed": seed, "initial": initial, "noise": noise}
    if driver is not None:
        settings.update({f"driver_{k}": v for k, v in driver.describe().items()
                         if v is not None and k not in ("lattice", "L1", "L2")})
    settings.update(_window_attrs(window, seed, None if driver is not None else provider.describe()))
    return settings


def _quench_attrs(settings: dict, kTs) -> dict:
    return {**settings, "generator": "llg-quench", "kTs": kTs}


def quench_attrs(provider: FieldProvider, *, kTs, replicas: int, steps: int, every: int, skip: int = 0,
                 dt: float = 0.05, alpha: float = 0.5, scheme: str = "heun", seed: int = 0, initial: str = "random",
                 noise: float = 0.0, driver: FieldProvider | None = None, mu_window=None) -> dict:
    """The attributes :func:`generate_dataset` with these arguments writes into its dataset (provenance aside),
    without running anything: compare them with an existing dataset's by :func:`dataset_mismatch`."""
    kTs = [float(k) for k in kTs]
    return _quench_attrs(_quench_settings(provider, kTs=kTs, replicas=replicas, steps=steps, every=every, skip=skip,
                                          dt=dt, alpha=alpha, scheme=scheme, seed=seed, initial=str(initial),
                                          noise=noise, driver=driver, window=_check_window(provider, mu_window)), kTs)


def dataset_mismatch(path: str, attrs: dict, *, only_given: bool = False) -> str | None:
    """How the settings ``attrs`` (:func:`quench_attrs` / :func:`relabel_attrs`) differ from those the dataset
    ``path`` was made with — ``"KEY is NEW now but OLD in the file"`` for the first difference — or ``None``.
    Provenance is not compared, a model file is compared by name and SHA-256, and a relabelling's ``source`` by its
    file name (the same dataset may be reached by another path). ``only_given``: compare the keys of ``attrs``
    only (a partial description, e.g. a relabelling's physics when its source is gone)."""
    old = dict(read_attrs_of(path))
    new = dict(attrs)
    if only_given:          # a model file that is there is compared by its SHA-256 too (settings_mismatch adds it)
        keep = set(new) | {k[:-len("path")] + "sha256" for k, v in new.items()
                           if k.endswith("model_path") and isinstance(v, str) and os.path.isfile(v)}
        old = {k: v for k, v in old.items() if k in keep}
    for d in (old, new):
        if isinstance(d.get("source"), str):
            d["source"] = os.path.basename(d["source"])
    return settings_mismatch(old, new)


def generate_dataset(provider: FieldProvider, out: str, *, kTs, replicas: int, steps: int, every: int,
                     skip: int = 0, dt: float = 0.05, alpha: float = 0.5, scheme: str = "heun", seed: int = 0,
                     initial: str = "random", noise: float = 0.0, driver: FieldProvider | None = None,
                     mu_window=None, label_batch: int = 16, progress: bool = True) -> str:
    """Write the dataset ``out`` (see the module docstring) and return its path. ``driver``: a provider that
    integrates the quenches in place of ``provider`` (same lattice), whose kept frames ``provider`` labels.
    ``mu_window``: ``(lo, hi)`` — label every frame at its own ``mu`` from the window (seeded by ``seed``)."""
    window = _check_window(provider, mu_window)
    kTs = [float(k) for k in kTs]
    initial = str(initial)
    settings = _quench_settings(provider, kTs=kTs, replicas=replicas, steps=steps, every=every, skip=skip, dt=dt,
                                alpha=alpha, scheme=scheme, seed=seed, initial=initial, noise=noise, driver=driver,
                                window=window)
    check_writable(out)
    parts = out + ".parts"
    os.makedirs(parts, exist_ok=True)
    lat = provider.lattice
    for b, kT in enumerate(kTs):
        part = os.path.join(parts, f"block{b:03d}.h5")
        if os.path.exists(part):  # finished before an interruption: reuse only if made with these settings
            diff = settings_mismatch(read_attrs_of(part), {**settings, "kT_block": kT})
            if diff:
                raise NearsightError(f"{part!r} was made with other settings ({diff}); delete {parts!r} to start over")
            continue
        s0 = make_state(initial, lat, seed=seed * 1000 + b, noise=noise, batch=replicas)
        frames = []
        own_labels = driver is None and window is None

        def keep(step, t, spins, res, _f=frames):
            if step >= skip:
                labels = () if not own_labels else (res.fields.detach().cpu().numpy(),
                                                    res.energy.detach().cpu().numpy(), _extras_np(res))
                _f.append((t, spins.cpu().numpy(), *labels))

        run_llg(driver or provider, s0, steps=steps, dt=dt, alpha=alpha, kT=kT, scheme=scheme,
                seed=seed * 1000 + b, every=every, observers=[keep], progress=progress)
        t = np.array([f[0] for f in frames])
        sp = np.stack([f[1] for f in frames], 1)  # [B, F, N, 3]
        if own_labels:
            fi, en = (np.stack([f[k] for f in frames], 1).reshape(-1, *f_shape)
                      for k, f_shape in ((2, (lat.N, 3)), (3, ())))
            ex = {k: np.stack([f[4][k] for f in frames], 1).reshape(len(fi), *frames[0][4][k].shape[1:])
                  for k in frames[0][4]}
        else:
            mu = None if window is None else window_mu(window, seed, b, sp.shape[0] * sp.shape[1])
            fi, en, ex = _label(provider, sp.reshape(-1, lat.N, 3), label_batch, progress, mu)
        traj = np.repeat(np.arange(replicas) + b * replicas, len(frames))
        write_dataset(part, sp.reshape(-1, lat.N, 3), fi, en, trajectory=traj, time=np.tile(t, replicas),
                      kT_llg=np.full(traj.shape, kT), attrs={**settings, "kT_block": kT}, extra=ex)
    arrays = [read_dataset(os.path.join(parts, f"block{b:03d}.h5"))[0] for b in range(len(kTs))]
    cat = {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]}
    attrs = _quench_attrs(settings, kTs)
    write_dataset(out, cat["spins"], cat["fields"], cat["energy"], trajectory=cat["trajectory"], time=cat["time"],
                  kT_llg=cat["kT_llg"], attrs=attrs, extra={k: cat[k] for k in LABEL_EXTRAS if k in cat})
    shutil.rmtree(parts)
    return out


def relabel_dataset(provider: FieldProvider, source: str, out: str, *, mu_window=None, seed: int = 0,
                    source_mu: bool = False, label_batch: int = 16, progress: bool = True) -> str:
    """Write ``out``: the configurations of the dataset ``source`` with ``provider``'s exact labels. The sampling
    record (trajectory ids, times, bath temperatures, generator settings) is kept; the physics attributes are
    the provider's, and ``source`` names where the configurations came from (its ensemble as ``source_mu`` /
    ``source_filling``). With ``mu_window`` every frame is labelled at its own ``mu`` (module docstring; block 0,
    seeded by ``seed``) and the provider's own ``mu`` / filling are not used. ``source_mu=True`` labels every frame
    at the ``mu`` the source's labels have (its per-frame ``mu``, and its ``mu_window`` / seed are kept): the same
    labels again, e.g. with extras the source was made without (``dn_dmu``)."""
    check_writable(out)
    arrays, attrs = read_dataset(source)
    lat = provider.lattice
    if (attrs.get("lattice"), attrs.get("L1"), attrs.get("L2")) != (lat.kind, lat.L1, lat.L2):
        raise NearsightError(f"{source!r} holds {attrs.get('lattice')} {attrs.get('L1')}x{attrs.get('L2')} "
                             f"configurations but the labels are asked for {lat!r}; give the source's lattice and size")
    if source_mu:
        if mu_window is not None:
            raise NearsightError("give mu_window (draw new mu) or source_mu (keep the source's), not both")
        if "mu" not in arrays or attrs.get("mu_window") is None:
            raise NearsightError(f"source_mu needs a source labelled over a mu window (per-frame mu); {source!r} "
                                 f"is not: relabel it with mu_window or at the provider's own mu / filling")
        mu = np.asarray(arrays["mu"], dtype=np.float64)
        window = _check_window(provider, attrs["mu_window"])
        seed = int(attrs.get("mu_window_seed", seed))
    else:
        window = _check_window(provider, mu_window)
        mu = None if window is None else window_mu(window, seed, 0, len(arrays["spins"]))
    fields, energy, extras = _label(provider, arrays["spins"], label_batch, progress, mu)
    write_dataset(out, arrays["spins"], fields, energy, trajectory=arrays["trajectory"], time=arrays.get("time"),
                  kT_llg=arrays.get("kT_llg"), extra=extras,
                  attrs=_relabel_attrs(provider, attrs, source, window, seed))
    return out


def _relabel_attrs(provider: FieldProvider, source_attrs: dict, source: str, window, seed: int) -> dict:
    # the source's physics is replaced by the new labels'
    physics = {"provider", "kind", "mu_window", "mu_window_seed", *(f.name for f in dataclasses.fields(SDModel))}
    kept = {k: v for k, v in source_attrs.items() if k not in physics}
    return {**kept, **provider.describe(), "source": source, "source_provider": source_attrs.get("provider"),
            "source_kT": source_attrs.get("kT"), "source_mu": source_attrs.get("mu"),
            "source_filling": source_attrs.get("filling"), **_window_attrs(window, seed, None)}


def relabel_physics(provider: FieldProvider, *, mu_window=None, seed: int = 0, source_mu: bool = False) -> dict:
    """The part of :func:`relabel_attrs` that does not need the source: the new labels' physics (with
    ``source_mu`` the window is the source's, so ``mu`` / ``filling`` are left out). Compare it with
    :func:`dataset_mismatch` ``(only_given=True)``."""
    out = provider.describe()
    if source_mu:
        return {k: v for k, v in out.items() if k not in ("mu", "filling")}
    return {**out, **_window_attrs(_check_window(provider, mu_window), seed, None)}


def relabel_attrs(provider: FieldProvider, source: str, *, mu_window=None, seed: int = 0,
                  source_mu: bool = False, source_attrs: dict | None = None) -> dict:
    """The attributes :func:`relabel_dataset` with these arguments writes (provenance aside), without labelling:
    compare them with an existing dataset's by :func:`dataset_mismatch`. Reads only ``source``'s attributes, or
    takes them as ``source_attrs`` (e.g. :func:`quench_attrs` of the source's spec, when the file is gone)."""
    attrs = read_attrs_of(source) if source_attrs is None else dict(source_attrs)
    if source_mu:
        window = _check_window(provider, attrs.get("mu_window"))
        seed = int(attrs.get("mu_window_seed", seed))
    else:
        window = _check_window(provider, mu_window)
    return _relabel_attrs(provider, attrs, source, window, seed)


def read_attrs_of(path: str) -> dict:
    """A dataset's attributes, without reading its arrays."""
    with open_h5(path, "dataset") as f:
        return read_attrs(f)


def _extras_np(res) -> dict:
    """The label extras of a result (:data:`LABEL_EXTRAS` it has) as float64 numpy arrays."""
    return {k: res.extras[k].detach().cpu().numpy().astype(np.float64) for k in LABEL_EXTRAS if k in res.extras}


def _label(provider: FieldProvider, spins: np.ndarray, batch: int, progress: bool, mu: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Exact fields, energies and label extras of ``spins [F, N, 3]``, ``batch`` frames per call; with ``mu [F]``
    each frame grand-canonically at its own chemical potential (``provider.at_mu``)."""
    fields, energy, extras = [], [], []
    for i in tqdm(range(0, len(spins), batch), desc=f"labels ({provider.name})", unit="batch", disable=not progress,
                  leave=False):
        r = provider(spins[i:i + batch]) if mu is None else provider.at_mu(spins[i:i + batch], mu[i:i + batch])
        fields.append(r.fields.detach().cpu().numpy())
        energy.append(r.energy.detach().cpu().numpy())
        extras.append(_extras_np(r))
    ex = {k: np.concatenate([e[k] for e in extras]) for k in extras[0]} if extras else {}
    return np.concatenate(fields).astype(np.float64), np.concatenate(energy).astype(np.float64), ex
