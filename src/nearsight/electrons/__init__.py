"""Electron solvers behind the common field-provider interface."""
from .base import FieldProvider, FieldResult, transverse
from .ed import EDProvider
from .negf import NEGFProvider, Strip

__all__ = ["FieldProvider", "FieldResult", "transverse", "EDProvider", "NEGFProvider", "Strip"]
