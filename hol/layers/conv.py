"""Convolutional high-order layers (1d, 2d, 3d; plain and transposed).

Every tap of the kernel is its own learnable link function, in the same bases and weight layouts as the fully
connected layers (:mod:`hol.layers.fc`):

    y[b, o, p] = sum_{c in group(o)} sum_delta f_{o,c,delta}(x[b, c, p*stride + delta*dilation - padding])
                 (+ bias[o])

with ``f_{o,c,delta}(x) = sum_m weight[o, c, delta, m] phi_m(x)``. Transposed layers scatter instead of
gather: each input tap ``x[b, c, q]`` adds ``f_{c,o,delta}(x[b, c, q])`` to output position
``q*stride + delta*dilation - padding`` (positions outside the output are dropped), exactly the geometry of
``nn.ConvTranspose``; output sizes are torch's in both cases.

Computation: one basis expansion ``E[b, c*K + m, *p] = phi_m(x[b, c, *p])`` (``[B, C, *sp] -> [B, C*K, *sp]``)
followed by ONE ``F.convNd`` / ``F.conv_transposeNd`` with the weight viewed as ``[O, C/groups * K, *kernel]``
(``[C*K, O/groups, *kernel]`` for transposed): the cost is that of a plain convolution with ``K`` times more
input channels, memory ``O(B C K |sp|)``. The expansion is built channels-last (``[B, *sp, C, K]``, which is
``[B, C*K, *sp]`` in ``torch.channels_last`` strides) so it is never copied.

Padding (``padding_mode``):

* ``"zeros"`` (default, as high-order-layers-torch): the *expansion* is zero-padded, so a tap that falls on
  the padding contributes **0** -- the links only ever see real pixels, like a linear convolution's zero
  padding.
* ``"input_zeros"``: the *input* is zero-padded before the expansion, so a padded tap contributes **f(0)**
  (the link's value at the centre of the domain).
* ``"reflect"``, ``"replicate"``, ``"circular"``: the input is padded as torch's modes of the same name, so a
  padded tap contributes ``f`` of the reflected / replicated / wrapped pixel.

Transposed layers crop rather than pad, so they only take ``"zeros"``.

``rescale_output=True`` divides the sum of links by ``N = in_channels/groups * prod(kernel_size)`` (bias
added after): ``y = (sum f) / N + bias``. For a plain conv ``N`` is the number of links summed per output
(padded taps included); transposed layers use the same ``N``. ``N`` is also the fan-in of the initialization.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bases import Basis, check_choice
from .fc import DEFAULT_INIT, INITS, _check_int, init_link_values, make_basis

CONV_KINDS = ("polynomial", "continuous", "discontinuous", "fourier")
DIMS = (1, 2, 3)
PADDING_MODES = ("zeros", "input_zeros", "reflect", "replicate", "circular")
_INPUT_PAD_MODES = {"input_zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                    "circular": "circular"}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
CONV_DEFAULTS = {"dim": 2, "transpose": False, "n": 3, "segments": 1, "length": 2.0, "stride": 1,
                 "padding": 0, "dilation": 1, "groups": 1, "extrapolation": "polynomial",
                 "init": DEFAULT_INIT, "rescale_output": False, "output_padding": 0, "padding_mode": "zeros"}


class HighOrderConv(nn.Module):
    """A (transposed) convolution whose every tap is a function in a fixed ``basis``.

    Build it with :func:`hol.layers.conv`; the constructor takes already validated, per-dimension tuples.

    Shape:
        input ``[B, C_in, *spatial]`` (or unbatched ``[C_in, *spatial]``), output ``[B, C_out, *spatial_out]``
        with torch's output sizes.

    Attributes:
        weight: ``[out, in/groups, *kernel, K]`` (conv) or ``[in, out/groups, *kernel, K]`` (transposed):
            torch's layout with the basis axis last; for Lagrange kinds the values of each link at its nodes.
        bias: ``[out]`` or ``None`` (default; the links' constants already act as one).
    """

    def __init__(self, kind: str, basis: Basis, in_channels: int, out_channels: int, kernel_size: tuple, *,
                 dim: int, transpose: bool, n: int, segments: int, length: float, stride: tuple,
                 padding: tuple | str, dilation: tuple, groups: int, bias: bool, extrapolation: str,
                 init: str, rescale_output: bool, output_padding: tuple, padding_mode: str, device=None,
                 dtype=None):
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        self.kind, self.basis = kind, basis
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.dim, self.transpose = dim, transpose
        self.n, self.segments, self.length, self.extrapolation = n, segments, float(length), extrapolation
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.output_padding, self.padding_mode = output_padding, padding_mode
        self.init, self.rescale_output = init, rescale_output
        if transpose:
            shape = (in_channels, out_channels // groups, *kernel_size, basis.width)
        else:
            shape = (out_channels, in_channels // groups, *kernel_size, basis.width)
        self.weight = nn.Parameter(torch.empty(shape, **factory_kwargs))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory_kwargs))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @property
    def links_per_output(self) -> int:
        """``N = in_channels/groups * prod(kernel_size)``: the fan-in and the ``rescale_output`` divisor."""
        return self.in_channels // self.groups * math.prod(self.kernel_size)

    def reset_parameters(self) -> None:
        init_link_values(self.weight, self.basis, self.init, self.links_per_output)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def hparams(self) -> dict:
        """The keyword arguments rebuilding this layer: ``hol.layers.conv(**layer.hparams())``."""
        return {"kind": self.kind, "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "dim": self.dim, "transpose": self.transpose, "n": self.n,
                "segments": self.segments, "length": self.length, "stride": self.stride,
                "padding": self.padding, "dilation": self.dilation, "groups": self.groups,
                "bias": self.bias is not None, "extrapolation": self.extrapolation, "init": self.init,
                "rescale_output": self.rescale_output, "output_padding": self.output_padding,
                "padding_mode": self.padding_mode}

    def expand(self, x: Tensor) -> Tensor:
        """Basis expansion ``E[b, c*K + m, *p] = phi_m(x[b, c, *p])``: ``[B, C, *sp] -> [B, C*K, *sp]``.

        The result has channels-last strides (no copy of the ``K`` times larger tensor).
        """
        channels_last = x.movedim(1, -1)  # [B, *sp, C]
        expansion = self.basis(channels_last).flatten(-2)  # [B, *sp, C*K]
        return expansion.movedim(-1, 1)

    def conv_weight(self) -> Tensor:
        """The weight as a torch convolution over the expansion: ``[O, C/g * K, *kernel]`` (conv) or
        ``[C * K, O/g, *kernel]`` (transposed), scaled by ``1/N`` when ``rescale_output``."""
        if self.transpose:
            weight = self.weight.movedim(-1, 1).flatten(0, 1)  # [C, K, O/g, *kernel] -> [C*K, O/g, *kernel]
        else:
            weight = self.weight.movedim(-1, 2).flatten(1, 2)  # [O, C/g, K, *kernel] -> [O, C/g*K, *kernel]
        return weight / self.links_per_output if self.rescale_output else weight

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (self.dim + 1, self.dim + 2) or x.shape[-self.dim - 1] != self.in_channels:
            raise ValueError(f"expected input [B, {self.in_channels}, <{self.dim} spatial dims>] "
                             f"(or unbatched), got shape {tuple(x.shape)}")
        if x.dim() == self.dim + 1:
            return self.forward(x.unsqueeze(0)).squeeze(0)
        weight = self.conv_weight()
        if self.transpose:
            return _CONV_TRANSPOSE[self.dim](self.expand(x), weight, self.bias, self.stride, self.padding,
                                             self.output_padding, self.groups, self.dilation)
        padding = self.padding
        if self.padding_mode != "zeros":
            pad = _input_pad(padding, self.kernel_size, self.dilation)
            x, padding = F.pad(x, pad, mode=_INPUT_PAD_MODES[self.padding_mode]), 0
        return _CONV[self.dim](self.expand(x), weight, self.bias, self.stride, padding, self.dilation,
                               self.groups)

    def extra_repr(self) -> str:
        parts = [f"kind={self.kind!r}", f"in_channels={self.in_channels}",
                 f"out_channels={self.out_channels}", f"kernel_size={self.kernel_size}"]
        for name, default in CONV_DEFAULTS.items():
            value = getattr(self, name)
            if value != default and value != (default,) * self.dim:
                parts.append(f"{name}={value!r}")
        if self.bias is not None:
            parts.append("bias=True")
        return ", ".join(parts)


def _input_pad(padding: tuple | str, kernel_size: tuple, dilation: tuple) -> list[int]:
    """``F.pad`` amounts (last dimension first) for padding the input itself."""
    if padding == "valid":
        return [0] * (2 * len(kernel_size))
    if padding == "same":  # torch's rule: total d*(k-1), the odd one extra on the right
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
        pairs = [(t // 2, t - t // 2) for t in totals]
    else:
        pairs = [(p, p) for p in padding]
    return [amount for pair in reversed(pairs) for amount in pair]


def _tuple(name: str, value, dim: int, minimum: int) -> tuple:
    """``value`` (int or sequence of ``dim`` ints, each ``>= minimum``) as a ``dim``-tuple."""
    values = (value,) * dim if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(values, (tuple, list)) or len(values) != dim
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values)):
        raise ValueError(f"{name} must be an integer >= {minimum} or a sequence of {dim} such integers, "
                         f"got {value!r}")
    return tuple(values)


def build_conv(kind: str, in_channels: int, out_channels: int, kernel_size, *, dim: int = 2,
               transpose: bool = False, n: int = 3, segments: int = 1, length: float = 2.0, stride=1,
               padding=0, dilation=1, groups: int = 1, bias: bool = False, extrapolation: str = "polynomial",
               init: str = DEFAULT_INIT, rescale_output: bool = False, output_padding=0,
               padding_mode: str = "zeros", device=None, dtype=None) -> HighOrderConv:
    """Builder behind :func:`hol.layers.conv` for the high-order kinds; validates every argument.

    ``kind`` is one of ``polynomial, continuous, discontinuous, fourier`` (bases as in :func:`hol.layers.fc`);
    ``dim`` 1, 2 or 3; ``transpose`` selects the transposed convolution. ``kernel_size``, ``stride``,
    ``padding``, ``dilation`` and ``output_padding`` are ints or ``dim``-sequences as in torch; ``padding``
    may also be ``"valid"`` or ``"same"`` (plain conv only, ``"same"`` needs stride 1). ``padding_mode``
    decides what a padded tap contributes (see :mod:`hol.layers.conv`).
    """
    if isinstance(dim, bool) or dim not in DIMS:
        raise ValueError(f"dim must be 1, 2 or 3, got {dim!r}")
    if transpose not in (False, True):
        raise ValueError(f"transpose must be True or False, got {transpose!r}")
    transpose = bool(transpose)
    _check_int("in_channels", in_channels, 1)
    _check_int("out_channels", out_channels, 1)
    _check_int("groups", groups, 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups must divide in_channels and out_channels, got groups={groups} for "
                         f"in_channels={in_channels}, out_channels={out_channels}")
    kernel_size = _tuple("kernel_size", kernel_size, dim, 1)
    stride = _tuple("stride", stride, dim, 1)
    dilation = _tuple("dilation", dilation, dim, 1)
    if padding in ("valid", "same") and not transpose:
        if padding == "same" and stride != (1,) * dim:
            raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
    else:
        padding = _tuple("padding", padding, dim, 0)
    output_padding = _tuple("output_padding", output_padding, dim, 0)
    if not transpose and any(output_padding):
        raise ValueError(f"output_padding is only used by transposed convolutions, got {output_padding}")
    if any(op >= max(s, d) for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"output_padding must be smaller than stride or dilation, got "
                         f"output_padding={output_padding}, stride={stride}, dilation={dilation}")
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    if transpose and padding_mode != "zeros":
        raise ValueError(f"padding_mode must be 'zeros' for transposed convolutions, got {padding_mode!r}")
    for name, value in (("bias", bias), ("rescale_output", rescale_output)):
        if value not in (False, True):
            raise ValueError(f"{name} must be True or False, got {value!r}")
    check_choice("init", init, INITS)
    basis = make_basis(kind, n=n, segments=segments, length=length, extrapolation=extrapolation, dims=None,
                       device=device, dtype=dtype)
    return HighOrderConv(kind, basis, in_channels, out_channels, kernel_size, dim=dim, transpose=transpose,
                         n=n, segments=segments, length=length, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bool(bias), extrapolation=extrapolation,
                         init=init, rescale_output=bool(rescale_output), output_padding=output_padding,
                         padding_mode=padding_mode, device=device, dtype=dtype)


class _ReLU:
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
_BASELINES = {
    (False, False): {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d},
    (False, True): {1: ReLUConv1d, 2: ReLUConv2d, 3: ReLUConv3d},
    (True, False): {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d},
    (True, True): {1: ReLUConvTranspose1d, 2: ReLUConvTranspose2d, 3: ReLUConvTranspose3d},
}


def build_conv_baseline(kind: str, in_channels: int, out_channels: int, kernel_size, *, dim: int = 2,
                        transpose: bool = False, stride=1, padding=0, dilation=1, groups: int = 1,
                        bias: bool = True, output_padding=0, padding_mode: str = "zeros", device=None,
                        dtype=None, **ignored) -> nn.Module:
    """``nn.ConvNd`` / ``nn.ConvTransposeNd`` (``linear``), with ReLU after it (``relu``); basis options are
    ignored. ``bias`` defaults to True as in torch; ``padding_mode="input_zeros"`` is torch's ``"zeros"``
    (a linear link has ``f(0) = 0``)."""
    if isinstance(dim, bool) or dim not in DIMS:
        raise ValueError(f"dim must be 1, 2 or 3, got {dim!r}")
    check_choice("padding_mode", padding_mode, PADDING_MODES)
    cls = _BASELINES[(bool(transpose), kind == "relu")][dim]
    mode = "zeros" if padding_mode == "input_zeros" else padding_mode
    extra = {"output_padding": output_padding} if transpose else {}
    layer = cls(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                groups=groups, bias=bias, padding_mode=mode, device=device, dtype=dtype, **extra)
    layer.kind = kind
    return layer
