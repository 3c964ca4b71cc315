"""Group-theoretical magnetic descriptors: local spin environments -> features invariant under every symmetry.

    spins [B,N,3] ──► lattice fields (pair dot products, triangle chiralities)          variables.py
                 ──► gather: the V variables around each site (one index_select)
                 ──► irrep coefficients of the site point group (fixed matrices)      groups.py
                 ──► power spectrum, phases w.r.t. block references, bispectrum        invariants.py
                 ──► features [B,N,F]

The features of site ``i`` are invariant under global O(3) spin rotations (``S -> -S`` included: chirality
enters only in even products), lattice translations and every operation of the site point group (C4v on
the square lattice, C6v on the triangular), smooth in the spins, and depend only on spins within
``Descriptor.cutoff`` of ``i``. The class and its defaults: descriptor.py; the derivation: the module docstrings.
"""
from .descriptor import CONFIG_VERSION, DEFAULTS, Descriptor, build_descriptor
from .groups import PointGroup

__all__ = ["Descriptor", "build_descriptor", "DEFAULTS", "CONFIG_VERSION", "PointGroup"]
