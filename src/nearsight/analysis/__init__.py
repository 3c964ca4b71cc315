"""Analysis of spin configurations and trajectories: order parameters, structure factors, domains, locality."""
from .observables import (domain_size, mean_chirality, nn_correlation, peaks, sign_clusters, site_chirality,
                          site_nn_correlation, structure_factor, triangle_chirality)

__all__ = ["domain_size", "mean_chirality", "nn_correlation", "peaks", "sign_clusters", "site_chirality",
           "site_nn_correlation", "structure_factor", "triangle_chirality"]
