"""The plain torch baselines ``linear``, ``relu`` and ``tanh``: ``nn.Linear`` / ``nn.ConvNd`` /
``nn.ConvTransposeNd``, without (``linear``) or with a ReLU after them (``relu``), and ``nn.Linear`` with a
tanh after it (``tanh``, fully connected only: the standard PINN network is a tanh MLP).

They take torch's own options (``bias`` defaults to True, as in torch); the link options of the high-order
kinds (``n``, ``segments``, ...) do not apply to them: they must keep their defaults, and an unknown keyword
is refused (:func:`hol.layers.registry.check_unused_options`). The kinds are registered here.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..checks import check_choice
from . import convolution, fully_connected
from .convolution import DIMS, PADDING_MODES
from .registry import BUILTIN_KINDS, check_unused_options, kind_info, register_conv, register_fc


class ReLULinear(nn.Linear):
    """``relu(x W^T + b)``: the ``relu`` baseline."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(super().forward(x))


class TanhLinear(nn.Linear):
    """``tanh(x W^T + b)``: the ``tanh`` baseline."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(super().forward(x))


LINEAR_CLASSES: dict[str | None, type[nn.Linear]] = {None: nn.Linear, "relu": ReLULinear, "tanh": TanhLinear}
"""The fully connected baseline's class by its kind's activation."""


class _ReLU(nn.Module):
    """Mixin applying ``relu`` after a torch convolution: the ``relu`` baseline."""

    def forward(self, *args, **kwargs) -> Tensor:
        return torch.relu(super().forward(*args, **kwargs))


class ReLUConv1d(_ReLU, nn.Conv1d):
    """``relu(conv1d(x))``."""


class ReLUConv2d(_ReLU, nn.Conv2d):
    """``relu(conv2d(x))``."""


class ReLUConv3d(_ReLU, nn.Conv3d):
    """``relu(conv3d(x))``."""


class ReLUConvTranspose1d(_ReLU, nn.ConvTranspose1d):
    """``relu(conv_transpose1d(x))``."""


class ReLUConvTranspose2d(_ReLU, nn.ConvTranspose2d):
    """``relu(conv_transpose2d(x))``."""


class ReLUConvTranspose3d(_ReLU, nn.ConvTranspose3d):
    """``relu(conv_transpose3d(x))``."""


# (transpose, relu) -> dim -> class
_CONV_CLASSES: dict[tuple[bool, bool], dict[int, type[nn.Module]]] = {
    (False, False): {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d},
    (False, True): {1: ReLUConv1d, 2: ReLUConv2d, 3: ReLUConv3d},
    (True, False): {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d},
    (True, True): {1: ReLUConvTranspose1d, 2: ReLUConvTranspose2d, 3: ReLUConvTranspose3d},
}


def linear_baseline(kind: str, in_features: int, out_features: int, *, bias: bool = True, device=None,
                    dtype=None, **link_options) -> nn.Linear:
    """``nn.Linear`` (``linear``) or ``nn.Linear`` followed by its kind's activation (``relu``, ``tanh``); the
    link options must keep their defaults (``ValueError`` otherwise, or for an unknown keyword)."""
    check_unused_options(kind, link_options, fully_connected.option_defaults())
    cls = LINEAR_CLASSES[kind_info(kind).activation]
    layer = cls(in_features, out_features, bias=bias, device=device, dtype=dtype)
    layer.kind = kind  # type: ignore[assignment]  # a str attribute (nn.Module types its attributes as tensors)
    return layer


def conv_baseline(kind: str, in_channels: int, out_channels: int, kernel_size, *, dim: int = 2,
                  transpose: bool = False, stride=1, padding=0, dilation=1, groups: int = 1,
                  bias: bool = True, output_padding=0, padding_mode: str = "zeros", device=None, dtype=None,
                  **link_options) -> nn.Module:
    """``nn.ConvNd`` / ``nn.ConvTransposeNd`` (``linear``), with ReLU after it (``relu``); the link options
    must keep their defaults (``ValueError`` otherwise, or for an unknown keyword).
    ``padding_mode="input_zeros"`` is torch's ``"zeros"`` (a linear link has ``f(0) = 0``)."""
    check_unused_options(kind, link_options, convolution.option_defaults())
    check_choice("dim", dim, DIMS)
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    cls = _CONV_CLASSES[(bool(transpose), kind_info(kind).activation == "relu")][dim]
    mode = "zeros" if padding_mode == "input_zeros" else padding_mode
    extra = {"output_padding": output_padding} if transpose else {}
    layer = cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                groups=groups, bias=bias, padding_mode=mode, device=device, dtype=dtype, **extra)
    layer.kind = kind  # type: ignore[assignment]  # a str attribute (nn.Module types its attributes as tensors)
    return layer


for _kind in BUILTIN_KINDS:
    if _kind.baseline:
        register_fc(_kind.name)(linear_baseline)
        if _kind.activation in (None, "relu"):
            register_conv(_kind.name)(conv_baseline)
