"""hol: high-order layers for PyTorch.

The library: :mod:`hol.layers` (the layers, by kind), :mod:`hol.networks` (MLP, ConvNet), :mod:`hol.vae`
(a variational autoencoder of hol convolutions), :mod:`hol.refine` (exact h/p refinement; the module is
callable, ``hol.refine(net, n=5)``) and :mod:`hol.adapt` (adaptive domains, ``hol.adapt_domains(net,
samples)``). None of them imports the experiment runner (:mod:`hol.runner`, the ``hol`` command), Lightning
or Hydra.
"""
from . import adapt, layers, networks, refine, vae
from .adapt import adapt_domains

__version__ = "0.1.0"
__all__ = ["adapt", "adapt_domains", "layers", "networks", "refine", "vae"]
