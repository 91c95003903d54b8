"""Baseline layers of coordinate networks (implicit representations): the kinds ``fourier_features``, ``sine``
and ``sine_first``, registered here with their records.

* ``fourier_features``: random Fourier features (Tancik et al. 2020, "Fourier Features Let Networks Learn High
  Frequency Functions in Low Dimensional Domains", eq. 5), a fixed encoding
  ``gamma(x) = [cos(2 pi B x), sin(2 pi B x)]`` with ``B ~ N(0, scale^2)`` drawn once from torch's generator
  and kept as a buffer (in the state dict, not trained). ``scale = 5`` on the layers' ``[-1, 1]`` is the
  paper's best ``sigma = 10`` for natural images on ``[0, 1]`` (a coordinate range half as wide).
* ``sine`` and ``sine_first``: SIREN layers (Sitzmann et al. 2020, "Implicit Neural Representations with
  Periodic Activation Functions", sec. 3.2) ``sin(omega_0 (x W^T + b))`` with ``omega_0 = 30``; ``sine``
  initializes ``W ~ U(-sqrt(6/in)/omega_0, sqrt(6/in)/omega_0)`` (hidden layers), ``sine_first``
  ``W ~ U(-1/in, 1/in)`` (the first layer, whose frequencies span several periods of the input domain); the
  bias is ``nn.Linear``'s.

A ReLU MLP on Fourier features is ``MLP("relu", ..., input_layer="fourier_features", output_layer="linear")``,
a SIREN ``MLP("sine", ..., input_layer="sine_first", output_layer="linear")``. Like the ``linear``/``relu``
baselines these kinds have no link functions: they take none of the link options (those must keep their
defaults), have no convolutional form, and :func:`hol.refine` leaves them as they are.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..checks import check_int, check_number
from .fully_connected import option_defaults
from .registry import LayerKind, check_unused_options, register_fc

FOURIER_FEATURES_SCALE = 5.0
"""Standard deviation of the frequencies ``B`` of ``fourier_features`` (module docstring)."""
SIREN_OMEGA = 30.0
"""SIREN's ``omega_0`` (Sitzmann et al. 2020, sec. 3.2)."""


class FourierFeatures(nn.Module):
    """Random Fourier features ``[cos(2 pi x B_c^T), sin(2 pi x B_s^T)]`` of the input (module docstring).

    ``B`` is ``[ceil(out/2), in]``, ``B_c = B`` and ``B_s`` its first ``floor(out/2)`` rows, so an odd
    ``out_features`` has one cosine more than sines.

    Args:
        in_features, out_features: sizes.
        scale: standard deviation of the entries of ``B`` (frequencies per unit of ``x``).
        device, dtype: of the buffer ``B``.

    Shape:
        ``[..., in_features] -> [..., out_features]``.

    Raises:
        ValueError: naming the bad argument, its value and what is allowed.
    """

    kind = "fourier_features"
    frequencies: Tensor

    def __init__(self, in_features: int, out_features: int, *, scale: float = FOURIER_FEATURES_SCALE,
                 device=None, dtype=None):
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self.scale = check_number("scale", scale, 0, above=True)
        frequencies = torch.empty(math.ceil(out_features / 2), in_features, device=device, dtype=dtype)
        self.register_buffer("frequencies", frequencies)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the frequencies ``B ~ N(0, scale^2)`` (torch's generator): also what materializes a layer
        built on the meta device (``to_empty()``)."""
        with torch.no_grad():
            self.frequencies.normal_(0.0, self.scale)

    def forward(self, x: Tensor) -> Tensor:
        phase = 2 * math.pi * x @ self.frequencies.T  # [..., ceil(out/2)]
        return torch.cat([phase.cos(), phase[..., :self.out_features // 2].sin()], dim=-1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, scale={self.scale}"


class SineLinear(nn.Linear):
    """``sin(omega (x W^T + b))``, a SIREN layer (module docstring).

    Args:
        in_features, out_features, bias, device, dtype: as ``nn.Linear``.
        omega: the frequency factor ``omega_0``.
        first: SIREN's first-layer initialization ``U(-1/in, 1/in)``, else ``U(-sqrt(6/in)/omega, ...)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, omega: float = SIREN_OMEGA,
                 first: bool = False, device=None, dtype=None):
        self.omega = check_number("omega", omega, 0, above=True)
        self.first = first
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)

    @property
    def kind(self) -> str:
        """The layer kind this layer is: ``sine_first`` or ``sine``."""
        return "sine_first" if self.first else "sine"

    def reset_parameters(self) -> None:
        super().reset_parameters()  # the bias as nn.Linear's
        bound = 1 / self.in_features if self.first else math.sqrt(6 / self.in_features) / self.omega
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.omega * super().forward(x))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, omega={self.omega}, first={self.first}"


@register_fc(LayerKind("fourier_features", baseline=True))
def fourier_features(kind: str, in_features: int, out_features: int, *, device=None, dtype=None,
                     **link_options) -> FourierFeatures:
    """The ``fourier_features`` kind: :class:`FourierFeatures` (the link options must keep their defaults)."""
    check_unused_options(kind, link_options, option_defaults())
    return FourierFeatures(in_features, out_features, device=device, dtype=dtype)


@register_fc(LayerKind("sine", baseline=True, activation="sine"))
def sine(kind: str, in_features: int, out_features: int, *, bias: bool = True, device=None, dtype=None,
         **link_options) -> SineLinear:
    """The ``sine`` kind: :class:`SineLinear` with the hidden-layer initialization (the link options must
    keep their defaults)."""
    check_unused_options(kind, link_options, option_defaults())
    return SineLinear(in_features, out_features, bias=bias, device=device, dtype=dtype)


@register_fc(LayerKind("sine_first", baseline=True, activation="sine"))
def sine_first(kind: str, in_features: int, out_features: int, *, bias: bool = True, device=None, dtype=None,
               **link_options) -> SineLinear:
    """The ``sine_first`` kind: :class:`SineLinear` with the first-layer initialization (the link options
    must keep their defaults)."""
    check_unused_options(kind, link_options, option_defaults())
    return SineLinear(in_features, out_features, bias=bias, first=True, device=device, dtype=dtype)
