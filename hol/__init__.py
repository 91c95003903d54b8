"""hol: high-order layers for PyTorch.

The library: :mod:`hol.layers` (the layers, by kind), :mod:`hol.networks` (MLP, ConvNet), :mod:`hol.vae`
(a variational autoencoder of hol convolutions) and :mod:`hol.refine` (exact h/p refinement; the module is
callable, ``hol.refine(net, n=5)``). None of them imports the experiment
runner (:mod:`hol.runner`, the ``hol`` command), Lightning or Hydra.
"""
from . import layers, networks, refine, vae

__version__ = "0.1.0"
__all__ = ["layers", "networks", "refine", "vae"]
