"""Electron solvers (and the classical terms added to them) behind the field-provider interface of
:mod:`nearsight.fields`: exact diagonalization, the kernel polynomial method, NEGF on a biased strip."""
from .classical import AnisotropyProvider, HeisenbergProvider
from .ed import EDProvider
from .kpm import KPMProvider
from .negf import NEGFProvider

__all__ = ["AnisotropyProvider", "HeisenbergProvider", "EDProvider", "KPMProvider", "NEGFProvider"]
