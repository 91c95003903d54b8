"""hol: high-order layers for PyTorch.

The library: :mod:`hol.layers` (the layers, by kind), :mod:`hol.networks` (MLP, ConvNet), :mod:`hol.vae`
(a variational autoencoder of hol convolutions), :mod:`hol.refine` (exact h/p refinement; the module is
callable, ``hol.refine(net, n=5)``), :mod:`hol.adapt` (adaptive domains, ``hol.adapt_domains(net,
samples)``), :mod:`hol.prune` (link and unit scores, pruning; callable, ``hol.prune(net, samples)``) and
:mod:`hol.symbolic` (symbolic links and the formula a network computes). None of them imports the
experiment runner (:mod:`hol.runner`, the ``hol`` command), Lightning or Hydra.
"""
import importlib

from . import adapt, layers, networks, prune, refine, vae
from .adapt import adapt_domains

__version__ = "0.1.0"
__all__ = ["adapt", "adapt_domains", "layers", "networks", "prune", "refine", "symbolic", "vae"]


def __getattr__(name: str):
    # hol.symbolic loads sympy and scipy.optimize (half a second): on first use, not with every import hol
    if name == "symbolic":
        return importlib.import_module(".symbolic", __name__)
    raise AttributeError(f"module 'hol' has no attribute {name!r}")
