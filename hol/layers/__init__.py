"""hol.layers: high-order layers in pure torch (no Lightning, no Hydra).

``fc(kind, ...)`` and ``conv(kind, ...)`` build layers by name, ``kinds()`` / ``conv_kinds()`` list the names
and ``kind_info(name)`` tells what a kind is (:class:`~hol.layers.registry.LayerKind`); ``norm(name, ...)``
builds the normalizations used between layers. The layer classes :class:`HighOrderLinear` and
:class:`HighOrderConv` can also be constructed directly, like ``nn.Linear`` and ``nn.Conv2d``.

Modules: ``bases`` (the link functions' bases), ``init`` (initialization), ``fully_connected``,
``convolution``, ``baselines`` (``linear``, ``relu``, ``tanh``), ``coordinates`` (the coordinate networks'
baselines ``fourier_features``, ``sine``, ``sine_first``), ``normalization``, ``registry``, ``sparse`` (the
segment-sparse compute path).
"""
# Importing the layer modules attaches their builders to the kinds of the registry.
from . import bases, init
from .baselines import ReLULinear, TanhLinear
from .convolution import HighOrderConv
from .coordinates import FourierFeatures, SineLinear
from .fully_connected import HighOrderLinear
from .normalization import NORMS, norm
from .registry import LayerKind, conv, conv_kinds, fc, kind_info, kinds, register_conv, register_fc

__all__ = [
    "NORMS",
    "FourierFeatures",
    "HighOrderConv",
    "HighOrderLinear",
    "LayerKind",
    "ReLULinear",
    "SineLinear",
    "TanhLinear",
    "bases",
    "conv",
    "conv_kinds",
    "fc",
    "init",
    "kind_info",
    "kinds",
    "norm",
    "register_conv",
    "register_fc",
]
