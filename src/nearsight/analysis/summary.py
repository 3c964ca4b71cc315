"""The study's ``summary.md`` and the optional KPM-LLG comparison of early-time ``L(t)``."""
from __future__ import annotations

import os

import numpy as np

from .pipeline import LABELS

REVIEW = ("Chern, Fan, Zhang & Zhang (review, /work/shared/papers): chiral domains of the tetrahedral state grow "
          "as L ~ t (Fan, Zhang & Chern, PRB 110, 245105 (2024)); ferromagnetic clusters of the n = 0.485 "
          "double-exchange model grow as L ~ t^(1/3) (LSW) early and then freeze (Zhang & Chern, PRL 127, 146401)")


def kpm_comparison(cfg: dict, card: dict, kc: dict, log=print) -> dict:
    """ML-LLG and KPM-LLG ensembles on ``kc['size']`` from the same initial states (same seeds, so also the same
    bath noise draws), analyzed alike; ``z = |L_ml - L_kpm| / sqrt(err_ml^2 + err_kpm^2)`` per frame."""
    from ..lattice import Lattice
    from .pipeline import analyze
    from .study import _kpm_provider, _ml_provider, run_ensemble
    lat = Lattice(card["lattice"], int(kc.get("size", 48)))
    sub = dict(cfg)
    out = os.path.join(cfg["out"], "kpm_compare")
    steps, every, R = int(kc.get("steps", 1000)), int(kc.get("every", 50)), int(kc.get("replicas", 4))
    log(f"KPM comparison on {lat!r}: {R} replicas, {steps} steps")
    ml = _ml_provider(cfg, lat, cfg["device"])
    p_ml, t_ml = run_ensemble(ml, lat, sub, os.path.join(out, "runs"), "ml", replicas=R, steps=steps, every=every,
                              log=log)
    kpm = _kpm_provider(card, kc, lat)
    p_kpm, t_kpm = run_ensemble(kpm, lat, sub, os.path.join(out, "runs"), "kpm", replicas=R, steps=steps,
                                every=every, log=log)
    a = cfg["analysis"]
    kw = dict(order=a.get("order", "auto"), threshold=a.get("threshold"), n_boot=200, make_movie=False,
              export=False, max_fraction=0.5, span=1e9)
    r_ml = analyze(p_ml, os.path.join(out, "ml"), **kw)["result"]
    r_kpm = analyze(p_kpm, os.path.join(out, "kpm"), **kw)["result"]
    t = r_ml["time"]
    rows = {}
    for k in r_ml["lengths"]:
        d = r_ml["lengths"][k] - r_kpm["lengths"][k]
        e = np.sqrt(r_ml["length_errors"][k] ** 2 + r_kpm["length_errors"][k] ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(e > 0, np.abs(d) / e, np.nan)
        rows[k] = {"max_z": float(np.nanmax(z[1:])) if np.isfinite(z[1:]).any() else None,
                   "t_max_z": float(t[1:][np.nanargmax(z[1:])]) if np.isfinite(z[1:]).any() else None}
    from .figures import plot_lengths
    prim = "domain_moment"
    fig = plot_lengths(t, {"ML-LLG": (r_ml["lengths"][prim], r_ml["length_errors"][prim]),
                           "KPM-LLG": (r_kpm["lengths"][prim], r_kpm["length_errors"][prim])},
                       os.path.join(out, "ml_vs_kpm.png"), system_length=r_ml["system_length"],
                       title=f"ML vs KPM, {lat.L1}x{lat.L2}, {R} replicas ({LABELS[prim]})")
    return {"lattice": repr(lat), "replicas": R, "steps": steps, "z": rows, "plot": fig,
            "timing": {"ml": t_ml, "kpm": t_kpm}}


def _fmt_fit(f: dict) -> str:
    if "error" in f:
        return f"no fit ({f['error']})"
    return f"{f['exponent']:.3f} [{f['ci_low']:.3f}, {f['ci_high']:.3f}]"


def write_summary(cfg: dict, card: dict, res: dict, timing: dict, comparison: dict | None) -> str:
    out = cfg["out"]
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    ens = card.get("ensemble") or ("canonical" if card.get("filling") is not None else "grand canonical")
    phys = (f"J = {card['J']:g}, t = {card.get('t', 1):g}, "
            + (f"filling n = {card['filling']:g}" if card.get("filling") is not None else f"mu = {card['mu']:g}")
            + f", {ens}, electronic kT = {card['kT']:g} (labels)")
    fits, prim, win = res["fits"], res["primary"], res["window"]
    ref = cfg.get("reference") or {}
    lines = [f"# Study: {cfg.get('name', '')}", "", str(cfg.get("description", "")).strip(), "",
             f"Command: `nearsight study {os.path.relpath(cfg['config_path'])}"
             + (f" --set {' '.join(cfg['overrides'])}" if cfg["overrides"] else "") + "`", ""]
    if cfg["overrides"]:
        lines += [f"**Overridden settings** ({' '.join(cfg['overrides'])}): this is not the config's full study.", ""]
    lines += ["## Setup", "",
              f"* model: `{card.get('name')}` ({card['lattice']} lattice; {phys}); cutoff {card.get('cutoff')} "
              f"(a field sees spins within {2 * float(card.get('cutoff', 0)):g})",
              f"* lattice {res['lattice']}, {res['n_replicas']} replicas, quench from `{cfg['initial']}` spins, "
              f"bath kT = {cfg['bath_kT']:g}, alpha = {cfg['alpha']:g}, dt = {cfg['dt']:g}, {cfg['steps']} steps "
              f"(t = {res['t_max']:g}), frames every {cfg['every']} steps, device `{cfg['device']}`",
              f"* order `{res['order']}`; domain variable: {res['domain_variable']}",
              f"* run: {timing['run_total_s']:.1f} s wall"
              + (f", {1e6 * timing['wall_s'] / timing['site_steps']:.2f} us per site-step (integration only)"
                 if timing.get("site_steps") else " (all trajectories reused)")
              + f"; analysis {timing['analysis_s']:.1f} s", ""]
    if timing.get("site_steps"):
        us = 1e6 * timing["wall_s"] / timing["site_steps"]
        lines += [f"At that cost, {cfg['size']}x{cfg['size']} x {cfg['replicas']} replicas x {cfg['steps']} steps "
                  f"= {cfg['size'] ** 2 * cfg['replicas'] * cfg['steps']:.3g} site-steps takes "
                  f"{cfg['size'] ** 2 * cfg['replicas'] * cfg['steps'] * us * 1e-6 / 3600:.2f} h on this device.", ""]
    lines += ["## Growth exponents", "",
              f"Fit of ln L = a ln t + c over t = {win[0]:.4g} .. {win[1]:.4g}; 95% intervals from a percentile "
              f"bootstrap over replicas (frames of one run are correlated: the replicas are the independent units).", "",
              "| length | a [95% CI] | L at window end | L / L_system | growth in window |", "|---|---|---|---|---|"]
    for k, f in fits.items():
        mark = " (primary)" if k == prim else ""
        if "error" in f:
            lines.append(f"| {LABELS[k]}{mark} | {_fmt_fit(f)} | | | |")
        else:
            lines.append(f"| {LABELS[k]}{mark} | {_fmt_fit(f)} | {f['L_end_of_window']:.3g} | "
                         f"{f['L_over_system']:.3f} | x{f['growth_factor_in_window']:.2f} |")
    lines.append("")
    pf = fits.get(prim, {})
    if "exponent" in pf:
        notes = []
        for a, name in (ref.get("exponents") or {}).items():
            inside = pf["ci_low"] <= float(a) <= pf["ci_high"]
            notes.append(f"{name} (a = {float(a):.3g}): {'inside' if inside else 'outside'} the interval")
        lines += [f"**Primary ({LABELS[prim]}): a = {_fmt_fit(pf)}.** " + "; ".join(notes) + ".", ""]
        caveats = []
        if pf["growth_factor_in_window"] < 5:
            caveats.append(f"L grows only x{pf['growth_factor_in_window']:.2f} inside the window (the issue asks "
                           f"for x5 or more): the exponent is an effective, pre-asymptotic one")
        if pf["L_over_system"] > 0.2:
            caveats.append(f"L reaches {pf['L_over_system']:.2f} of the system size: finite-size bending is likely")
        caveats.append(f"finite size: the window ends where L < {cfg['analysis'].get('max_fraction', 0.25)} of the "
                       f"system length ({res['system_length']:g}); beyond, the few remaining domains and the "
                       f"periodic boundaries slow the growth")
        lines += ["Caveats: " + "; ".join(caveats) + ".", ""]
    lines += [f"Reference: {ref.get('text', REVIEW)}", ""]
    if ref.get("model_note"):
        lines += [f"Model note: {ref['model_note']}", ""]
    fin = res["final"]
    lines += ["## Last frame", "",
              f"mean |scalar chirality| {fin['abs_chirality']:.3f}, nn correlation {fin['nn_correlation']:.3f}; "
              f"wall length within 7.5 degrees of the lattice directions: {fin['aligned_wall_fraction']:.2f} of the "
              f"total (isotropic walls: {fin['isotropic_wall_fraction']:.2f}).", ""]
    if "cluster_threshold" in res:
        lines += [f"FM clusters: sites whose nearest-neighbour bonds all have S_i.S_j > {res['cluster_threshold']:g} "
                  f"(periodic connectivity).", ""]
    lines += [f"Hole density: {res['hole_density']}", ""]
    if comparison:
        lines += ["## ML-LLG against KPM-LLG", "",
                  f"{comparison['lattice']}, {comparison['replicas']} replicas each from the same initial states, "
                  f"{comparison['steps']} steps. Largest |L_ml - L_kpm| / combined bootstrap error per length:", ""]
        for k, z in comparison["z"].items():
            lines.append(f"* {LABELS[k]}: max z = {z['max_z']:.2f} at t = {z['t_max_z']:.4g}" if z["max_z"] is not None
                         else f"* {LABELS[k]}: no error estimate")
        lines += ["", f"![ML vs KPM]({rel(comparison['plot'])})", ""]
    else:
        lines += ["## ML-LLG against KPM-LLG", "", "Not run (`kpm_compare.enabled: false`). The local model's wall "
                  "motion is the weakest link of a coarsening study (docs/nearsightedness.md: a wall between opposite "
                  "chiralities carries edge channels); enable it to validate L(t) on the lattice you can afford.", ""]
    files = res["files"]
    lines += ["## Pictures", ""]
    for key, title in (("lengths", "L(t)"), ("local_slope", "local exponent"), ("snapshots", "domain maps"),
                       ("sq_domain", "S(q) of the domain variable"), ("sq_spin", "spin S(q)"),
                       ("cluster_sizes", "cluster sizes"), ("walls", "wall orientation"), ("movie", "movie")):
        if key in files:
            lines.append(f"![{title}]({rel(files[key])})")
    lines += ["", "Data: `analysis/series.csv` (all lengths with bootstrap errors), `analysis/fits.json`; exports: "
              "`analysis/last_frame.ovf` (OVF 2.0), `analysis/last_frame.vtk` (ParaView).", ""]
    path = os.path.join(out, "summary.md")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))
    return path
