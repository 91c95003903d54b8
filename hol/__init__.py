"""hol: high-order layers for PyTorch and a Hydra/Lightning experiment runner."""
from . import layers

__version__ = "0.1.0"
__all__ = ["layers"]
