"""Analysis of spin configurations and trajectories: order parameters, structure factors, domains, locality; a
model's held-out error beside its label floor (validate) and its dynamics against ED (compare)."""
from .observables import (domain_size, mean_chirality, nn_correlation, peaks, sign_clusters, site_chirality,
                          site_nn_correlation, structure_factor, triangle_chirality)

__all__ = ["domain_size", "mean_chirality", "nn_correlation", "peaks", "sign_clusters", "site_chirality",
           "site_nn_correlation", "structure_factor", "triangle_chirality"]
