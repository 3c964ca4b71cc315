"""Electron solvers behind the common field-provider interface."""
from .base import FieldProvider, FieldResult, transverse
from .ed import EDProvider

__all__ = ["FieldProvider", "FieldResult", "transverse", "EDProvider"]
