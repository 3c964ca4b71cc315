"""Random domain-wall snapshots on a strip: the sampler of the driven model's labelled configurations.

:func:`draw_snapshots` draws, call by call, a bias and a batch of noisy walls (uniform wall position, width, tilt
and noise amplitude in given ranges); a labelling step (NEGF, in ``examples/domain_wall.py``) evaluates each batch
at its bias. The draws depend on the generator only, so replaying them with a file's seed gives that file's
configurations again, with the clean wall and the noise amplitude behind each.
"""
from __future__ import annotations

import numpy as np

from ..states import domain_wall, normalize


def draw_snapshots(sr: dict, strip, rng, count: int, per: int):
    """The snapshot sampler: for each NEGF call a bias and ``per`` draws (clean wall, noise amplitude, noisy
    spins) — uniform wall position, width, tilt and noise amplitude in the ranges of ``sr`` (``bias``, ``x0``,
    ``width``, ``noise``: ``[lo, hi]`` each) on ``strip``. Replaying it with a file's seed gives that file's
    configurations again, with the wall and the amplitude behind each."""
    for _ in range((count + per - 1) // per):
        V = float(rng.uniform(*sr["bias"]))
        draws = []
        for _ in range(per):
            s0 = domain_wall(strip, rng.uniform(*sr["x0"]), rng.uniform(*sr["width"]), phi=rng.uniform(0, 2 * np.pi))
            amp = float(rng.uniform(*sr["noise"]))
            draws.append((s0, amp, normalize(s0 + amp * rng.standard_normal(s0.shape))))
        yield V, draws
