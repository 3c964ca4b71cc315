"""Nearsightedness analysis: how far does a site's transverse field feel the spins around it?

For a configuration ``S`` and a site ``i``, replace every spin farther than ``R`` from ``i`` by the same region of
an independent configuration ``S'`` of the same kind, and measure the change of ``h_perp_i`` (the part of the
field perpendicular to ``S_i``). The profile

    eta(R) = sqrt(< |h_perp_i(mixed_R) - h_perp_i(S)|^2 >) / sqrt(< |h_perp_i(S)|^2 >)

(averaged over sites and draws) is the error floor that any model seeing only a radius ``R`` must meet, and
tells which cutoff a local ML model needs (docs/nearsightedness.md §2 quotes figures from an independent code).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..fields import FieldProvider, transverse
from ..errors import NearsightError, as_spins


@dataclass
class LocalityResult:
    radii: np.ndarray        # [R]
    ratio: np.ndarray        # [R] eta(R)
    per_draw: np.ndarray     # [draws, sites, R] |dh_perp| / rms h_perp (for error bars)
    rms_field: float

    def table(self) -> str:
        lines = ["   R   rms|dh_perp| / rms|h_perp|   (spread over draws)"]
        for k, R in enumerate(self.radii):
            per = np.sqrt((self.per_draw[..., k] ** 2).mean(-1))
            lines.append(f"{R:5.2f}   {100 * self.ratio[k]:8.2f}%   ({100 * per.min():.2f}% .. {100 * per.max():.2f}%)")
        return "\n".join(lines)


def mixed_configuration(base: np.ndarray, other: np.ndarray, dist: np.ndarray, R: float) -> np.ndarray:
    """``base`` within distance ``R`` of the centre, ``other`` beyond it."""
    return np.where((dist <= R + 1e-9)[:, None], base, other)


def locality_profile(provider: FieldProvider, configs, radii, *, others=None, sites_per_draw: int = 3,
                     seed: int = 0, progress: bool = True) -> LocalityResult:
    """eta(R) for ``provider`` on configurations ``configs [C, N, 3]`` (one draw each).

    The far region of draw ``c`` comes from ``others[c]`` if given, else from ``configs[(c+1) % C]``
    (independent configurations of the same kind). Sites are drawn at random (``seed``).
    """
    lat = provider.lattice
    S, _ = as_spins(configs, lat.N, name="configurations")
    S = S.cpu().numpy()
    if others is None:
        if len(S) < 2:
            raise NearsightError("the locality analysis needs at least 2 configurations (one supplies the far "
                                 "region of the other)")
        O = np.roll(S, -1, axis=0)
    else:
        O, _ = as_spins(others, lat.N, name="far-region configurations")
        O = O.cpu().numpy()
        if len(O) != len(S):
            raise NearsightError(f"give as many far-region configurations as configurations ({len(S)})")
    radii = np.asarray(sorted(float(r) for r in radii))
    if len(radii) == 0 or radii.min() <= 0:
        raise NearsightError("radii must be positive numbers, e.g. 2,3,4,6")
    rng = np.random.default_rng(seed)
    dh = np.zeros((len(S), sites_per_draw, len(radii)))
    href = np.zeros((len(S), sites_per_draw))
    for c in tqdm(range(len(S)), desc="locality draws", disable=not progress):
        sites = rng.choice(lat.N, size=sites_per_draw, replace=False)
        batch = [S[c]]
        for i in sites:
            d = lat.distances_from(i)
            batch += [mixed_configuration(S[c], O[c], d, R) for R in radii]
        res = provider.compute(np.stack(batch))
        st = torch.as_tensor(np.stack(batch), dtype=res.fields.dtype, device=res.fields.device)
        hp = transverse(res.fields, st).detach().cpu().numpy()
        for k, i in enumerate(sites):
            h0 = hp[0, i]
            href[c, k] = np.linalg.norm(h0)
            dh[c, k] = np.linalg.norm(hp[1 + k * len(radii): 1 + (k + 1) * len(radii), i] - h0, axis=-1)
    rms = float(np.sqrt((href ** 2).mean()))
    ratio = np.sqrt((dh ** 2).mean((0, 1))) / rms
    return LocalityResult(radii=radii, ratio=ratio, per_draw=dh / rms, rms_field=rms)
