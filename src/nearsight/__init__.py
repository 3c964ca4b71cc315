"""nearsight: machine-learned exchange fields for large-scale LLG dynamics of itinerant magnets."""
from .errors import NearsightError
from .hamiltonian import SDModel
from .lattice import Lattice

__version__ = "0.1.0"
__all__ = ["Lattice", "SDModel", "NearsightError", "__version__"]
