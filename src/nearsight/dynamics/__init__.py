"""Stochastic LLG: the equation (llg), the schemes (integrators) and the run loop (run)."""
from .integrators import SCHEMES, Heun, ImplicitMidpoint, LLGState, SemiImplicitMidpoint, make_integrator
from .llg import cayley_step, llg_rhs, rotation_vector
from .run import RunResult, run_llg

__all__ = ["SCHEMES", "Heun", "ImplicitMidpoint", "SemiImplicitMidpoint", "LLGState", "make_integrator",
           "cayley_step", "llg_rhs", "rotation_vector", "RunResult", "run_llg"]
