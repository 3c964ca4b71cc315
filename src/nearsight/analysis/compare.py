"""ML-LLG (or KPM-LLG) against ED-LLG: the same thermal quench from random spins, ensemble averages against time
(``nearsight compare``).

Both ensembles use identical settings (lattice, physics — read from the model's card —, dt, alpha, bath kT,
number of replicas) and independent random initial spins and noise (different seeds), so the two replica means
are independent estimates and the combined standard error ``sqrt(se_ED^2 + se_X^2)`` is the right yardstick. For
each recorded time the table holds the replica mean and standard error of the nearest-neighbour spin correlation
and of a second observable for ED and the tested solver, and their difference in units of that standard error
(``z``). The second observable is the mean ``|scalar chirality|`` on the triangular lattice and the
ferromagnetic-site fraction on the square lattice (sites whose four bonds all have ``S_i . S_j > 0.5``: the
hole-rich puddles of the double-exchange model, :func:`nearsight.analysis.clusters.fm_sites`).

**Paired** (``paired=True``): both ensembles start from the *same* random spins (replica r of ED and of the tested
solver share S(t=0)) with independent noise, and z is the mean of the per-replica differences over its own
standard error. Early on the two members of a pair are strongly correlated, so this test is much sharper than the
independent one there (the independent starts alone differ by ~1-2 SE at t = 0); later the noise decorrelates them.

**ED cache** (``ed_cache=FILE.npz``): the ED ensemble (which dominates the cost: 52 min for 8 replicas of 16x16
square) is read from FILE when FILE was written for the same physics, lattice and run settings, and written there
otherwise, so a retrained model is compared with the same ED runs at the cost of its own runs only.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from ..errors import NearsightError
from ..io import atomic_path, check_writable
from . import observables as obs
from .clusters import fm_sites

#: the run settings of a comparison and their defaults
SETTINGS = {"size": 12, "replicas": 8, "steps": 600, "every": 50, "dt": 0.05, "alpha": 0.5, "bath_kT": 0.005,
            "seed": 3}
OBSERVABLES = ("nn", "second")
FM_THRESHOLD = 0.5


def second_observable(lat) -> tuple[str, str]:
    """``(key, label)`` of the second compared observable on ``lat`` (module docstring)."""
    return ("fm", "FM-site fraction") if lat.kind == "square" else ("chi", "<|chi|>")


def _second(sp: np.ndarray, lat) -> np.ndarray:
    if second_observable(lat)[0] == "fm":
        return fm_sites(sp, lat, FM_THRESHOLD).mean(-1)
    return np.abs(obs.triangle_chirality(sp, lat)).mean(-1)


@dataclass
class Comparison:
    """Replica series ``[T, R]`` of each observable for ED and the tested solver, at times ``t [T]``."""
    t: np.ndarray
    ed: dict
    tested: dict
    name: str
    paired: bool
    replicas: int
    second: tuple = ("chi", "<|chi|>")

    def z(self, q: str) -> np.ndarray:
        """``[T]``: (mean tested - mean ED) over the combined (independent) or paired standard error."""
        e, m = self.ed[q], self.tested[q]
        R = self.replicas
        se = (np.std(m - e, axis=1, ddof=1) if self.paired
              else np.sqrt(e.var(axis=1, ddof=1) + m.var(axis=1, ddof=1))) / np.sqrt(R)
        diff = m.mean(1) - e.mean(1)
        return np.where(se > 1e-12, diff / np.where(se > 1e-12, se, 1.0), 0.0)

    def worst(self) -> float:
        """The largest ``|z|`` over both observables and every time after t = 0."""
        return float(max(np.abs(self.z(q)[1:]).max(initial=0.0) for q in OBSERVABLES))


def check_settings(s: dict) -> None:
    """One-line errors for run settings that cannot work."""
    for k, lo in (("size", 2), ("replicas", 2), ("steps", 1), ("every", 1), ("seed", 0)):
        if not isinstance(s[k], int) or s[k] < lo:
            raise NearsightError(f"--{k.replace('_', '-')} must be an integer >= {lo}, got {s[k]!r}"
                                 + (" (the standard errors need two replicas)" if k == "replicas" else ""))
    for k in ("dt", "alpha", "bath_kT"):
        if not np.isfinite(s[k]) or s[k] < 0 or (k == "dt" and s[k] == 0):
            raise NearsightError(f"--{k.replace('_', '-')} must be a finite number {'> 0' if k == 'dt' else '>= 0'}, "
                                 f"got {s[k]!r}")


def series(provider, s0, s: dict, lat, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ensemble: times ``[T]``, nearest-neighbour correlation and the second observable ``[T, R]``."""
    from ..dynamics import run_llg
    frames = []
    run_llg(provider, s0, steps=s["steps"], dt=s["dt"], alpha=s["alpha"], kT=s["bath_kT"], seed=seed,
            every=s["every"], observers=[lambda step, t, sp, res: frames.append((t, sp.cpu().numpy()))])
    t = np.array([f[0] for f in frames])
    sp = np.stack([f[1] for f in frames])
    return t, obs.nn_correlation(sp, lat), _second(sp, lat)


def _prefix_frames(cached: dict, settings: dict) -> int:
    """Frames of a cached ED run that are exactly the run ``settings`` asks for (0 if none): the same settings but
    more steps, with ``steps`` a multiple of ``every``. The noise of step k does not depend on the run's length, so
    the first ``steps // every + 1`` frames of the longer run are the shorter run, bit for bit."""
    if not isinstance(cached, dict) or set(cached) != set(settings):
        return 0
    same = all(cached[k] == settings[k] for k in settings if k != "steps")
    ok = same and settings["steps"] <= cached["steps"] and settings["steps"] % settings["every"] == 0
    return settings["steps"] // settings["every"] + 1 if ok else 0


def ed_series(path: str | None, settings: dict, compute, log=print):
    """The ED ensemble's (t, nn, second observable): from the cache file ``path`` if it holds these ``settings``, else computed
    and written there (atomically)."""
    key = json.dumps(settings, sort_keys=True)
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        check_writable(path, "--ed-cache")      # before the ED runs, not after them
    if path and os.path.exists(path):
        try:
            with np.load(path) as f:
                if str(f["settings"]) == key:
                    log(f"ED ensemble read from {path}")
                    return f["t"], f["nn"], f["second"]
                frames = _prefix_frames(json.loads(str(f["settings"])), settings)
                if frames:                     # a longer run of the same ensemble: its first frames are this run
                    log(f"ED ensemble read from {path} (its first {frames} frames: the cache ran longer)")
                    return f["t"][:frames], f["nn"][:frames], f["second"][:frames]
                log(f"{path} holds ED runs of other settings; recomputing and replacing it")
        except (OSError, KeyError, ValueError) as exc:
            log(f"{path} is not a readable ED cache ({type(exc).__name__}); recomputing and replacing it")
    t, nn, chi = compute()
    if path:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, settings=key, t=t, nn=nn, second=chi)
        log(f"ED ensemble written to {path}")
    return t, nn, chi


def compare(tested, ed, model, lat, s: dict, *, name: str, paired: bool = False, ed_cache: str | None = None,
            log=print) -> Comparison:
    """Run (or read) the ED ensemble with the provider ``ed`` and the ensemble of ``tested`` on ``lat`` with the
    settings ``s`` (:data:`SETTINGS`); ``model``: the SDModel of both (it keys the ED cache)."""
    from ..states import make_state
    check_settings(s)
    out = {}
    for k, who in enumerate(("ED", name)):
        seed = s["seed"] + 1000 * k    # independent noise; independent starts unless paired
        s0 = make_state("random", lat, seed=s["seed"] if paired else seed, batch=s["replicas"])
        if who == "ED":                # its starts and noise depend on the seed only, paired or not
            key = {"physics": model.to_dict(), "lattice": [lat.kind, lat.L1, lat.L2], "seed": s["seed"],
                   "second": second_observable(lat)[0],
                   **{opt: s[opt] for opt in ("replicas", "steps", "every", "dt", "alpha", "bath_kT")}}
            out["ED"] = ed_series(ed_cache, key, lambda: series(ed, s0, s, lat, seed), log)  # noqa: B023
        else:
            out[who] = series(tested, s0, s, lat, seed)
    t = out["ED"][0]
    as_dict = {w: dict(zip(OBSERVABLES, (np.asarray(v[1]), np.asarray(v[2])))) for w, v in out.items()}
    return Comparison(t, as_dict["ED"], as_dict[name], name, paired, s["replicas"], second_observable(lat))


def table(c: Comparison) -> list[str]:
    """The printed table: per time, mean±SE of each observable for ED and the tested solver, and z."""
    X, R = c.name, c.replicas
    q2 = c.second[0]
    lines = [f"{'t':>6} | {'nn ED':>16} {'nn ' + X:>16} {'z':>5} | {q2 + ' ED':>16} {q2 + ' ' + X:>16} {'z':>5}"]
    zs = {q: c.z(q) for q in OBSERVABLES}
    for k in range(len(c.t)):
        row = f"{c.t[k]:6.1f} |"
        for q in OBSERVABLES:
            e, m = c.ed[q][k], c.tested[q][k]
            row += (f" {e.mean():8.4f}±{e.std(ddof=1) / np.sqrt(R):6.4f} {m.mean():8.4f}±"
                    f"{m.std(ddof=1) / np.sqrt(R):6.4f} {zs[q][k]:5.1f} |")
        lines.append(row)
    lines.append(f"largest |difference| / {'paired' if c.paired else 'combined'} standard error over t > 0: "
                 f"{c.worst():.1f} ({len(c.t) - 1} times x 2 observables; |z| < 3 expected for agreeing ensembles)")
    return lines


def plot(c: Comparison, path: str, title: str) -> None:
    """Both observables against time, ED and the tested solver with standard-error bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    R = c.replicas
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, (q, lab) in enumerate((("nn", "<S_i.S_j>_nn"), ("second", c.second[1]))):
        for who, v, st in (("ED", c.ed[q], "o-"), (c.name, c.tested[q], "s--")):
            ax[i].errorbar(c.t, v.mean(1), v.std(1, ddof=1) / np.sqrt(R), fmt=st, ms=3, capsize=2, label=who)
        ax[i].set(xlabel="t (hbar/t)", ylabel=lab)
        ax[i].legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
