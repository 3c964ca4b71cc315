"""Electron solvers behind the common field-provider interface."""
from .base import FieldProvider, FieldResult, SumProvider, transverse
from .classical import AnisotropyProvider, HeisenbergProvider
from .ed import EDProvider
from .negf import NEGFProvider, Strip

__all__ = ["FieldProvider", "FieldResult", "SumProvider", "AnisotropyProvider", "HeisenbergProvider", "transverse",
           "EDProvider", "NEGFProvider", "Strip"]
