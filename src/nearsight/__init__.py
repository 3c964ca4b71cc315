"""nearsight: machine-learned exchange fields for large-scale LLG dynamics of itinerant magnets.

The top-level names are imported on first use, so that ``import nearsight`` (and the ``nearsight`` command's
start-up, which installs its Ctrl-C handling first) does not pull in torch before it is needed.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["Lattice", "SDModel", "NearsightError", "__version__"]
_LAZY = {"Lattice": ".lattice", "SDModel": ".hamiltonian", "NearsightError": ".errors"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'nearsight' has no attribute {name!r}")
