"""The layer kinds: one :class:`LayerKind` record per name, with its fully connected and convolutional
builders.

Everything hol knows about a kind lives in its record: the basis family of its links, whether it is a product
unit or a plain torch baseline, which options it takes, and its builders. The built-in records are the table
:data:`BUILTIN_KINDS` below; each layer module attaches its builder to the kinds it serves, where the builder
is defined (``fully_connected.py``, ``convolution.py``, ``baselines.py``), with :func:`register_fc` /
:func:`register_conv`; the baselines of coordinate networks (``fourier_features``, ``sine``, ``sine_first``)
are registered with their records where they are defined (``coordinates.py``), as a user registers a kind.
Everything else (``kinds()``, the options a network passes to each layer, whether
refinement changes its segments) is derived from the records.

A builder is called as ``builder(kind, *sizes, **options)`` and returns an ``nn.Module``. Unknown names raise
``ValueError`` listing the sorted choices. Registering another record under a taken name, or a second builder
of the same sort for a name, warns and replaces the old one (timm's habit, so a user can override a kind).
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..checks import check_choice
from .bases import BASIS_OPTIONS, PIECEWISE_FAMILIES

Builder = Callable[..., nn.Module]

LINK_OPTIONS = ("n", "segments", "length", "extrapolation", "init", "bias", "alpha", "dims", "backend")
"""Every option of a high-order kind; a kind takes the subset :attr:`LayerKind.options` names."""


@dataclass(frozen=True)
class LayerKind:
    """What one layer kind is.

    Attributes:
        name: the kind's name (``hol.layers.fc(name, ...)``).
        basis: basis family of its links (a key of :data:`hol.layers.bases.BASIS_OPTIONS`); ``None`` for
            baselines and for custom kinds registered by name only.
        product: a product unit, ``y_o = prod_i (1 + f_oi) - 1 - (1 - alpha) sum_i f_oi``.
        baseline: a plain torch layer (``nn.Linear`` / ``nn.ConvNd``), no links.
        activation: baselines: the activation after the layer (``"relu"``, ``"tanh"``) or ``None``.
        fc: builder of the fully connected layer, or ``None``.
        conv: builder of the convolutional layer, or ``None``.
    """

    name: str
    basis: str | None = None
    product: bool = False
    baseline: bool = False
    activation: str | None = None
    fc: Builder | None = None
    conv: Builder | None = None

    @property
    def piecewise(self) -> bool:
        """Links are piecewise polynomials on segments (``segments`` applies, h-refinement changes it)."""
        return self.basis in PIECEWISE_FAMILIES

    @property
    def sparse_capable(self) -> bool:
        """The segment-sparse compute path (``backend="sparse"``) applies."""
        return self.piecewise and not self.product

    @property
    def fused_capable(self) -> bool:
        """The fused basis-and-product operator (``backend="fused"``) applies: Lagrange links of one variable
        (``continuous``, ``discontinuous``, ``polynomial``), not product units."""
        return (self.piecewise or self.basis == "polynomial") and not self.product

    @property
    def options(self) -> frozenset[str]:
        """The network-wide options (:data:`LINK_OPTIONS`) this kind takes: none for baselines, all of them
        for custom kinds registered by name (their builders decide), else its basis family's plus ``init``,
        ``bias``, ``backend`` and, for product units, ``alpha``."""
        if self.baseline:
            return frozenset()
        if self.basis is None:
            return frozenset(LINK_OPTIONS)
        return frozenset(BASIS_OPTIONS[self.basis]) | {"init", "bias", "backend"} | (
            {"alpha"} if self.product else set())

    def describes_like(self, other: LayerKind) -> bool:
        """Same name, basis, product, baseline and activation (the builders may differ)."""
        return (self.name, self.basis, self.product, self.baseline, self.activation) == (
            other.name, other.basis, other.product, other.baseline, other.activation)


BUILTIN_KINDS = (
    LayerKind("polynomial", basis="polynomial"),
    LayerKind("continuous", basis="continuous"),
    LayerKind("discontinuous", basis="discontinuous"),
    LayerKind("fourier", basis="fourier"),
    LayerKind("polynomial_nd", basis="tensor"),
    LayerKind("product", basis="identity", product=True),
    LayerKind("polynomial_prod", basis="polynomial", product=True),
    LayerKind("continuous_prod", basis="continuous", product=True),
    LayerKind("discontinuous_prod", basis="discontinuous", product=True),
    LayerKind("linear", baseline=True),
    LayerKind("relu", baseline=True, activation="relu"),
    LayerKind("tanh", baseline=True, activation="tanh"),
)
"""hol's own kinds (their builders are attached by the layer modules)."""

KINDS: dict[str, LayerKind] = {kind.name: kind for kind in BUILTIN_KINDS}


def _register(kind: LayerKind | str, sort: str) -> Callable[[Builder], Builder]:
    record = kind if isinstance(kind, LayerKind) else KINDS.get(kind, LayerKind(kind))

    def decorator(builder: Builder) -> Builder:
        old = KINDS.get(record.name)
        if old is not None and not old.describes_like(record):
            warnings.warn(f"layer kind {record.name!r} registered again as {record!r}; replacing {old!r}",
                          stacklevel=3)
            old = None
        if old is not None and getattr(old, sort) not in (None, builder):
            warnings.warn(f"{sort} layer kind {record.name!r} registered again; "
                          f"replacing {getattr(old, sort)!r}", stacklevel=3)
        base = old or record
        KINDS[record.name] = (dataclasses.replace(base, fc=builder) if sort == "fc" else
                              dataclasses.replace(base, conv=builder))
        return builder

    return decorator


def register_fc(kind: LayerKind | str) -> Callable[[Builder], Builder]:
    """Decorator registering a fully connected builder for ``kind`` (a :class:`LayerKind`, or a name: an
    existing record gets the builder, a new name becomes a custom kind that takes every option)."""
    return _register(kind, "fc")


def register_conv(kind: LayerKind | str) -> Callable[[Builder], Builder]:
    """Decorator registering a convolutional builder for ``kind`` (as :func:`register_fc`)."""
    return _register(kind, "conv")


def check_unused_options(kind: str, options: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Refuse the options a layer of ``kind`` would not use: a name that is no option of its builder (not in
    ``defaults``, e.g. a misspelt keyword), and an option the kind does not take (:attr:`LayerKind.options`)
    set to other than its default (the user would expect an effect there is not).

    Raises:
        ValueError: naming the option, its value and the options the kind takes.
    """
    taken = kind_info(kind).options
    for name, value in options.items():
        if name not in defaults:
            raise ValueError(f"unknown option {name}={value!r} for a layer of kind {kind!r}; options: "
                             f"{', '.join(sorted(defaults))}")
        if name not in taken and not _same(value, defaults[name]):
            takes = ", ".join(sorted(taken)) or "none of the link options"
            raise ValueError(f"{name} is not an option of kind {kind!r} (it takes {takes}), "
                             f"got {name}={value!r}")


def _same(value: Any, default: Any) -> bool:
    """``value == default`` as one truth value (``False`` for a tensor or an array, whose comparison is
    elementwise)."""
    try:
        return bool(value == default)
    except (RuntimeError, ValueError, TypeError):
        return False


def kind_info(name: str) -> LayerKind:
    """The record of the registered kind ``name``; ``ValueError`` listing the kinds for an unknown name."""
    check_choice("layer kind", name, KINDS)
    return KINDS[name]


def kinds() -> list[str]:
    """The registered fully connected layer kinds, sorted."""
    return sorted(name for name, kind in KINDS.items() if kind.fc is not None)


def conv_kinds() -> list[str]:
    """The registered convolutional layer kinds, sorted."""
    return sorted(name for name, kind in KINDS.items() if kind.conv is not None)


def fc(kind: str, in_features: int, out_features: int, **options) -> nn.Module:
    """Build a fully connected layer ``[..., in_features] -> [..., out_features]`` of a registered ``kind``.

    High-order kinds take the options of :class:`hol.layers.HighOrderLinear` (those of
    :attr:`LayerKind.options`), baselines (``linear``, ``relu``) those of ``nn.Linear``.

    Raises:
        ValueError: an unknown kind (the message lists the kinds) or a bad option.

    Examples::

        >>> import torch, hol
        >>> layer = hol.layers.fc("continuous", 784, 100, n=5, segments=2)
        >>> layer(torch.rand(32, 784) * 2 - 1).shape
        torch.Size([32, 100])
    """
    builder = KINDS[check_choice("fc layer kind", kind, kinds())].fc
    assert builder is not None  # kinds() lists the kinds with an fc builder
    return builder(kind, in_features, out_features, **options)


def conv(kind: str, in_channels: int, out_channels: int, kernel_size, **options) -> nn.Module:
    """Build a convolutional layer of a registered ``kind``: :class:`hol.layers.HighOrderConv` for the
    high-order kinds, ``nn.ConvNd`` / ``nn.ConvTransposeNd`` (with ReLU for ``relu``) for the baselines.

    Raises:
        ValueError: an unknown kind (the message lists the conv kinds) or a bad option.

    Examples::

        >>> import torch, hol
        >>> layer = hol.layers.conv("discontinuous", 3, 16, 3, n=3, segments=4, padding=1)
        >>> layer(torch.rand(8, 3, 32, 32) * 2 - 1).shape
        torch.Size([8, 16, 32, 32])
    """
    builder = KINDS[check_choice("conv layer kind", kind, conv_kinds())].conv
    assert builder is not None  # conv_kinds() lists the kinds with a conv builder
    return builder(kind, in_channels, out_channels, kernel_size, **options)
