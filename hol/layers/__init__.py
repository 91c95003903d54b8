"""hol.layers: high-order layers in pure torch (no Lightning, no Hydra).

``fc(kind, ...)`` and ``conv(kind, ...)`` build layers by name, ``kinds()`` lists them, ``norm(name, ...)``
builds the normalizations used between layers.
"""
from . import bases

# Submodules first: the factories ``fc`` and ``conv`` imported from .registry below must shadow their names.
from .conv import CONV_KINDS, HighOrderConv, build_conv, build_conv_baseline
from .fc import FC_KINDS, HighOrderLinear, build_baseline, build_fc
from .norm import NORMS, norm
from .registry import conv, conv_kinds, fc, kinds, register_conv, register_fc

for _kind in FC_KINDS:
    register_fc(_kind)(build_fc)
for _kind in ("linear", "relu"):
    register_fc(_kind)(build_baseline)
for _kind in CONV_KINDS:
    register_conv(_kind)(build_conv)
for _kind in ("linear", "relu"):
    register_conv(_kind)(build_conv_baseline)

__all__ = [
    "NORMS",
    "HighOrderConv",
    "HighOrderLinear",
    "bases",
    "conv",
    "conv_kinds",
    "fc",
    "kinds",
    "norm",
    "register_conv",
    "register_fc",
]
