"""Checks of the input a layer is given, at the layer's boundary: one line naming the layer, what it expects
and what it got, instead of an error from deep inside a matrix product. Shapes and dtypes only: free at run
time. Also the one-line error of ``torch.jit.script``, which hol layers do not support."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def check_input(layer: nn.Module, x: Tensor, shape_ok: Callable[[Tensor], bool], expected: str,
                weight: Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is a tensor of the right shape (``shape_ok(x)``, asked once ``x`` is
    known to be a tensor; ``expected`` describes it, e.g. ``"[..., 6]"``) and a floating dtype that matches
    ``weight``'s (under ``torch.autocast``, which casts the operands itself as for ``nn.Linear``, any floating
    dtype but float64 for weights that are not: autocast leaves float64 as it is). The message names ``layer``
    (its class and ``extra_repr``), formatted only when there is an error."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{_name(layer)}: expected a tensor {expected}, got {type(x).__name__}")
    if not shape_ok(x):
        raise ValueError(f"{_name(layer)}: expected input {expected}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{_name(layer)}: expected a floating-point input, got dtype {x.dtype}")
    autocast_takes = _autocasting(x.device.type) and torch.float64 not in (x.dtype, weight.dtype)
    if x.dtype != weight.dtype and not autocast_takes:  # autocast leaves float64 as it is
        raise ValueError(f"{_name(layer)}: the input's dtype {x.dtype} differs from the weights' "
                         f"{weight.dtype}; convert the input or the layer (layer.to({x.dtype}))")


def _name(layer: nn.Module) -> str:
    return f"{type(layer).__name__}({layer.extra_repr()})"


def _autocasting(device_type: str) -> bool:
    """Whether ``torch.autocast`` is on for the device type (never for types without autocast, e.g. meta)."""
    return torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type)


def script_unsupported(layer: nn.Module) -> TypeError:
    """The error ``torch.jit.script`` of a hol layer raises (from ``__prepare_scriptable__``, before
    TorchScript fails deep inside on the layer's Python): TorchScript, deprecated in torch, is not supported;
    the graph captures that are."""
    return TypeError(f"torch.jit.script does not support hol layers ({type(layer).__name__}); capture them "
                     "with torch.compile, torch.export or torch.jit.trace")
