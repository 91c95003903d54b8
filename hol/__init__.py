"""hol: high-order layers for PyTorch and a Hydra/Lightning experiment runner."""
from . import layers, networks
from .refine import refine

__version__ = "0.1.0"
__all__ = ["layers", "networks", "refine"]
