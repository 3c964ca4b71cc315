import numpy as np
import pytest
import torch

from nearsight.states import random_spins


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def fd_check(provider, spins: np.ndarray, rng, h: float = 1e-5, n_dirs: int = 3):
    """Largest relative mismatch between -dE/dS . d (central differences) and fields . d over random d.

    The energy is differentiated as a function of unconstrained 3-vectors (the provider's ``_compute`` accepts
    any vectors), which is what h_i = -dE/dS_i means.
    """
    S = torch.as_tensor(spins, dtype=torch.float64)
    if S.dim() == 2:
        S = S[None]
    res = provider._compute(S)
    worst = 0.0
    for _ in range(n_dirs):
        d = torch.as_tensor(rng.standard_normal(S.shape))
        num = (provider._compute(S + h * d).energy - provider._compute(S - h * d).energy) / (2 * h)
        ana = -(res.fields * d).sum((-1, -2))
        worst = max(worst, float(((num - ana).abs() / ana.abs().clamp_min(1e-3)).max()))
    return worst
