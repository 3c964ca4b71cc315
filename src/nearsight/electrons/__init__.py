"""Electron solvers behind the common field-provider interface."""
from .base import FieldProvider, FieldResult, SumProvider, transverse, transverse_rms_ratio
from .classical import AnisotropyProvider, HeisenbergProvider
from .ed import EDProvider
from .negf import NEGFProvider, Strip

__all__ = ["FieldProvider", "FieldResult", "SumProvider", "AnisotropyProvider", "HeisenbergProvider", "transverse",
           "transverse_rms_ratio",
           "EDProvider", "NEGFProvider", "Strip"]
