"""Convolutional high-order layers (1d, 2d, 3d; plain and transposed).

Every tap of the kernel is its own learnable link function, in the same bases and weight layouts as the fully
connected layers (:mod:`hol.layers.fully_connected`):

    y[b, o, p] = sum_{c in group(o)} sum_delta f_{o,c,delta}(x[b, c, p*stride + delta*dilation - padding])
                 (+ bias[o])

with ``f_{o,c,delta}(x) = sum_m weight[o, c, delta, m] phi_m(z_c(x))``, ``z_c`` the map of input channel
``c``'s domain onto the reference domain (:mod:`hol.layers.domain`; one domain per input channel). Transposed
layers scatter instead of gather: each input tap ``x[b, c, q]`` adds ``f_{c,o,delta}(x[b, c, q])`` to output
position ``q*stride + delta*dilation - padding`` (positions outside the output are dropped), exactly the
geometry of ``nn.ConvTranspose``; output sizes are torch's in both cases.

Computation: one basis expansion ``E[b, c*K + m, *p] = phi_m(x[b, c, *p])`` (``[B, C, *sp] -> [B, C*K, *sp]``)
followed by ONE ``F.convNd`` / ``F.conv_transposeNd`` with the weight viewed as ``[O, C/groups * K, *kernel]``
(``[C*K, O/groups, *kernel]`` for transposed): the cost is that of a plain convolution with ``K`` times more
input channels, memory ``O(B C K |sp|)``. The expansion is built channels-last (``[B, *sp, C, K]``, which is
``[B, C*K, *sp]`` in ``torch.channels_last`` strides) and takes the input's memory format: kept as it is for a
channels-last input, copied once into the contiguous layout for a contiguous one. So memory formats behave as
for ``nn.ConvNd`` (the output and the input's gradient have the input's format; a contiguous input gave a
channels-last output, on which ``.view`` fails), and ``torch.compile`` with dynamic shapes works (Inductor
failed on the channels-last expansion of a contiguous input, "cannot determine truth value of Relational").

Padding (``padding_mode``):

* ``"zeros"`` (default, as high-order-layers-torch): the *expansion* is zero-padded, so a tap that falls on
  the padding contributes **0** -- the links only ever see real pixels, like a linear convolution's zero
  padding.
* ``"input_zeros"``: the *input* is zero-padded before the expansion, so a padded tap contributes **f(0)**
  (the link's value at 0, the centre of the default domain).
* ``"reflect"``, ``"replicate"``, ``"circular"``: the input is padded as torch's modes of the same name, so a
  padded tap contributes ``f`` of the reflected / replicated / wrapped pixel.

Transposed layers crop rather than pad, so they only take ``"zeros"``.

``rescale_output=True`` divides the sum of links by ``N = in_channels/groups * prod(kernel_size)`` (bias
added after): ``y = (sum f) / N + bias``. For a plain conv ``N`` is the number of links summed per output
(padded taps included); transposed layers use the same ``N``. ``N`` is also the fan-in of the initialization.
"""
from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_bool, check_choice, check_int, check_ints
from ..functional import basis_conv
from ..ops.lagrange import contraction_dtype
from .bases import Basis, make_basis
from .domain import fill_missing_domain, register_domain, reset_domain, to_reference
from .init import DEFAULT_INIT, INITS, init_link_values
from .inputs import check_input, script_unsupported
from .registry import BUILTIN_KINDS, KINDS, kind_info, register_conv

DIMS = (1, 2, 3)
CONV_BACKENDS = ("auto", "dense")
PADDING_MODES = ("zeros", "input_zeros", "reflect", "replicate", "circular")
_INPUT_PAD_MODES = {"input_zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                    "circular": "circular"}


class HighOrderConv(nn.Module):
    """A (transposed) convolution whose every tap is a function in a fixed basis.

    Args:
        kind: a convolutional high-order kind (``hol.layers.conv_kinds()``): its basis family.
        in_channels, out_channels: channels ``C``, ``O``.
        kernel_size, stride, padding, dilation, output_padding: as in torch, an int or a ``dim``-sequence;
            ``padding`` may also be ``"valid"`` or ``"same"`` (plain convolutions, ``"same"`` needs stride 1);
            ``output_padding`` only for transposed convolutions.
        dim: spatial dimensions, 1, 2 or 3.
        transpose: a transposed convolution (scatter instead of gather).
        n, segments, length, extrapolation, init, backend: the links, as in
            :class:`~hol.layers.fully_connected.HighOrderLinear` (``backend``: ``auto`` or ``dense``; the
            convolution always expands densely).
        groups: as in torch; must divide both channel counts.
        padding_mode: what a padded tap contributes (module docstring).
        rescale_output: divide the sum of links by ``N`` (module docstring).
        bias: add a learnable ``bias[o]``.
        device, dtype: of the parameters.

    Shape:
        input ``[B, C_in, *spatial]`` (or unbatched ``[C_in, *spatial]``), output ``[B, C_out, *spatial_out]``
        with torch's output sizes.

    Attributes:
        weight: ``[out, in/groups, *kernel, K]`` (conv) or ``[in, out/groups, *kernel, K]`` (transposed):
            torch's layout with the basis axis last; for Lagrange kinds the values of each link at its nodes.
        bias: ``[out]`` or ``None`` (default; the links' constants already act as one).
        domain_centre, domain_width: buffers ``[in_channels]``, the domain ``[c - w/2, c + w/2]`` of each
            input channel, mapped onto ``[-length/2, length/2]`` (:mod:`hol.layers.domain`).

    Raises:
        ValueError: naming the bad argument, its value and what is allowed.
    """

    basis: Basis
    weight: nn.Parameter
    bias: nn.Parameter | None

    def __init__(self, kind: str, in_channels: int, out_channels: int, kernel_size, *, dim: int = 2,
                 transpose: bool = False, n: int = 3, segments: int = 1, length: float = 2.0,
                 extrapolation: str = "polynomial", init: str = DEFAULT_INIT, backend: str = "auto", stride=1,
                 padding=0, dilation=1, groups: int = 1, output_padding=0, padding_mode: str = "zeros",
                 rescale_output: bool = False, bias: bool = False, device=None, dtype=None):
        super().__init__()
        spec = kind_info(kind)
        if spec.conv is not HighOrderConv or spec.basis is None:
            raise ValueError(f"unknown high-order conv kind {kind!r}; allowed: {', '.join(_conv_kinds())}")
        self.kind = kind
        self.dim = check_choice("dim", dim, DIMS)
        self.transpose = check_bool("transpose", transpose)
        self.in_channels = check_int("in_channels", in_channels, 1)
        self.out_channels = check_int("out_channels", out_channels, 1)
        self.groups = check_int("groups", groups, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups must divide in_channels and out_channels, got groups={groups} for "
                             f"in_channels={in_channels}, out_channels={out_channels}")
        self.kernel_size = check_ints("kernel_size", kernel_size, dim, 1)
        self.stride = check_ints("stride", stride, dim, 1)
        self.dilation = check_ints("dilation", dilation, dim, 1)
        if padding in ("valid", "same") and not transpose:
            if padding == "same" and self.stride != (1,) * dim:
                raise ValueError(f"padding='same' needs stride 1, got stride={self.stride}")
            self.padding = padding
        else:
            self.padding = check_ints("padding", padding, dim, 0)
        self.output_padding = check_ints("output_padding", output_padding, dim, 0)
        if not transpose and any(self.output_padding):
            raise ValueError("output_padding is only used by transposed convolutions, "
                             f"got {output_padding!r}")
        if any(op >= max(s, d)
               for op, s, d in zip(self.output_padding, self.stride, self.dilation, strict=True)):
            raise ValueError(f"output_padding must be smaller than stride or dilation, got "
                             f"output_padding={self.output_padding}, stride={self.stride}, "
                             f"dilation={self.dilation}")
        self.padding_mode = check_choice("padding_mode", padding_mode, PADDING_MODES)
        if transpose and padding_mode != "zeros":
            raise ValueError("padding_mode must be 'zeros' for transposed convolutions, "
                             f"got {padding_mode!r}")
        self.rescale_output = check_bool("rescale_output", rescale_output)
        check_bool("bias", bias)
        self.init = check_choice("init", init, INITS)
        self.backend = backend
        self.basis = make_basis(spec.basis, n=n, segments=segments, length=length,
                                extrapolation=extrapolation, dims=None, device=device, dtype=dtype)
        self.n, self.segments, self.length, self.extrapolation = n, segments, float(length), extrapolation
        factory_kwargs = {"device": device, "dtype": dtype}
        if transpose:
            shape = (in_channels, out_channels // groups, *self.kernel_size, self.basis.width)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size, self.basis.width)
        self.weight = nn.Parameter(torch.empty(shape, **factory_kwargs))
        register_domain(self, (in_channels,), length, **factory_kwargs)
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
        """Initialize the weights (``init``), the bias and the domains (the default domain), as after
        construction: also what materializes a layer built on the meta device (``to_empty()``)."""
        init_link_values(self.weight, self.basis, self.init, self.links_per_output)
        reset_domain(self)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def hparams(self) -> dict:
        """The keyword arguments rebuilding this layer: ``hol.layers.conv(**layer.hparams())``."""
        return {"kind": self.kind, "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, **{name: getattr(self, name) for name in _OPTIONS},
                "bias": self.bias is not None}

    def expand(self, x: Tensor) -> Tensor:
        """Basis expansion ``E[b, c*K + m, *p] = phi_m(z[b, c, *p])``, ``z`` the input in reference
        coordinates: ``[B, C, *sp] -> [B, C*K, *sp]``, in :func:`~hol.ops.lagrange.contraction_dtype` of
        ``x``'s dtype (float32 for float16 inputs, :mod:`hol.ops.lagrange`).

        The result has ``x``'s memory format (module docstring).
        """
        # dimensions counted from the front: the legacy ONNX exporter writes movedim(-1, 1) as a Transpose
        # with a negative index, which onnxruntime refuses
        last = x.dim() - 1
        channels_last = to_reference(self, x.movedim(1, last))  # [B, *sp, C]
        expansion = self.basis(channels_last).to(contraction_dtype(x.dtype)).flatten(-2)  # [B, *sp, C*K]
        return expansion.movedim(last, 1).contiguous(memory_format=memory_format(x))

    def conv_weight(self) -> Tensor:
        """The weight as a torch convolution over the expansion: ``[O, C/g * K, *kernel]`` (conv) or
        ``[C * K, O/g, *kernel]`` (transposed), scaled by ``1/N`` when ``rescale_output``."""
        last = self.weight.dim() - 1  # counted from the front, for the legacy ONNX exporter (see expand)
        if self.transpose:
            weight = self.weight.movedim(last, 1).flatten(0, 1)  # [C, K, O/g, *kernel] -> [C*K, O/g, *kernel]
        else:
            weight = self.weight.movedim(last, 2).flatten(1, 2)  # [O, C/g, K, *kernel] -> [O, C/g*K, *kernel]
        return weight / self.links_per_output if self.rescale_output else weight

    @property
    def backend(self) -> str:
        """``auto`` or ``dense`` (:data:`CONV_BACKENDS`; both the dense path), checked when set
        (``ValueError``)."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check_choice("backend", value, CONV_BACKENDS)

    def forward(self, x: Tensor) -> Tensor:
        spatial = ", ".join("DHW"[3 - self.dim:])

        def shape_ok(x: Tensor) -> bool:
            return x.dim() in (self.dim + 1, self.dim + 2) and x.shape[-self.dim - 1] == self.in_channels

        check_input(self, x, shape_ok, f"[B, {self.in_channels}, {spatial}] (or unbatched "
                    f"[{self.in_channels}, {spatial}])", self.weight)
        if x.dim() == self.dim + 1:
            return self.forward(x.unsqueeze(0)).squeeze(0)
        if self.transpose:
            return basis_conv(self.expand(x), self.conv_weight(), self.bias, transpose=True,
                              stride=self.stride, padding=self.padding, dilation=self.dilation,
                              groups=self.groups, output_padding=self.output_padding)
        padding = self.padding
        if self.padding_mode != "zeros":
            pad = _input_pad(padding, self.kernel_size, self.dilation)
            x, padding = F.pad(x, pad, mode=_INPUT_PAD_MODES[self.padding_mode]), 0
        return basis_conv(self.expand(x), self.conv_weight(), self.bias, stride=self.stride, padding=padding,
                          dilation=self.dilation, groups=self.groups)

    def _apply(self, fn, recurse=True):
        # Module.to(memory_format=torch.channels_last) converts every 4-D and 5-D tensor of a model, and
        # channels_last refuses 5-D ones ("required rank 4 tensor"): the weight of a 2-D layer,
        # [O, C/g, kh, kw, K], is 5-D. Such a tensor is converted (device, dtype) as a 4-D view and kept
        # contiguous; the layer's compute takes the input's memory format, not the weight's.
        def convert(tensor: Tensor) -> Tensor:
            try:
                return fn(tensor)
            except RuntimeError:
                if tensor.dim() != 5:
                    raise
                return fn(tensor.flatten(-2)).reshape(tensor.shape).contiguous()

        return super()._apply(convert, recurse)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        fill_missing_domain(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.basis.follow(self.weight)  # assign=True replaces the weight, wherever the basis' constants are

    def __prepare_scriptable__(self):
        raise script_unsupported(self)

    def extra_repr(self) -> str:
        defaults = option_defaults()
        parts = [f"kind={self.kind!r}", f"in_channels={self.in_channels}",
                 f"out_channels={self.out_channels}", f"kernel_size={self.kernel_size}"]
        for name in _OPTIONS:
            value, default = getattr(self, name), defaults[name]
            if value != default and value != (default,) * self.dim:
                parts.append(f"{name}={value!r}")
        if self.bias is not None:
            parts.append("bias=True")
        return ", ".join(parts)


def memory_format(x: Tensor) -> torch.memory_format:
    """The memory format of a batched image ``x`` ``[B, C, *sp]``: ``channels_last`` (4-D) or
    ``channels_last_3d`` (5-D) where ``x`` has those strides and not the contiguous ones, else
    ``contiguous_format``."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    if x.dim() in formats and not x.is_contiguous() and x.is_contiguous(memory_format=formats[x.dim()]):
        return formats[x.dim()]
    return torch.contiguous_format


def _input_pad(padding: tuple | str, kernel_size: tuple, dilation: tuple) -> list[int]:
    """``F.pad`` amounts (last dimension first) for padding the input itself."""
    if padding == "valid":
        return [0] * (2 * len(kernel_size))
    if padding == "same":  # torch's rule: total d*(k-1), the odd one extra on the right
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation, strict=True)]
        pairs = [(t // 2, t - t // 2) for t in totals]
    else:
        pairs = [(p, p) for p in padding]
    return [amount for pair in reversed(pairs) for amount in pair]


_OPTIONS = ("dim", "transpose", "n", "segments", "length", "extrapolation", "init", "backend", "stride",
            "padding", "dilation", "groups", "output_padding", "padding_mode", "rescale_output")


def option_defaults() -> dict:
    """The defaults of :class:`HighOrderConv`'s options (written once, in its signature): also those of the
    link options other conv kinds ignore (:func:`hol.layers.registry.check_unused_options`)."""
    parameters = inspect.signature(HighOrderConv).parameters
    return {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}


def _conv_kinds() -> list[str]:
    return sorted(name for name, kind in KINDS.items() if kind.conv is HighOrderConv)


CONV_BASES = ("polynomial", "continuous", "discontinuous", "fourier")
"""The basis families a convolution's links may have: one-dimensional links (no tensor-product links)."""

for _kind in BUILTIN_KINDS:
    if _kind.basis in CONV_BASES and not _kind.product:
        register_conv(_kind.name)(HighOrderConv)
