"""Networks of hol layers: :class:`MLP`, :class:`ConvNet`, and :func:`build` to rebuild them (and
:class:`hol.vae.VAE`) from hparams.

High-order links are their own nonlinearity, so the networks put only a normalization (``hol.layers.norm``,
default ``max_abs``) between layers, which keeps activations in the links' domain ``[-L/2, L/2]``
(``max_abs``/``max_center`` map into ``[-1, 1]``, the default domain). The network input is expected in the
domain already (e.g. pixels scaled to ``[-1, 1]``), or an :class:`MLP` maps it there from known intervals
(``input_domains``, :class:`InputScaling`: a formula's variables on their own intervals).

Layer options. A network takes its layers as one spec, as timm's ``Mlp`` takes ``act_layer``: ``layer`` is a
kind name plus keyword options (``MLP("continuous", ..., n=5, segments=2)``) or a mapping
``{"kind": "continuous", "n": 5, ...}`` (the runner's ``layer`` config node). The options are network-wide and
reach only the layers whose kind takes them (:attr:`hol.layers.LayerKind.options`): e.g. ``segments`` the
piecewise kinds, ``alpha`` the product kinds, nothing the ``linear``/``relu`` baselines (which keep
``nn.Linear``'s / ``nn.ConvNd``'s bias). An option no kind takes raises ``ValueError``.

Every network's ``hparams()`` returns its constructor arguments plus ``"name"`` (``"mlp"`` or ``"conv"``),
with ``n`` and ``segments`` read from its layers, so after :func:`hol.refine` it describes the refined
network and ``build(net.hparams())`` followed by ``load_state_dict`` restores a checkpoint.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
from typing import Any, cast

import torch
from torch import Tensor, nn

from .checks import check_choice, check_int, check_interval, check_number
from .layers import registry
from .layers.normalization import NORMS, norm
from .layers.registry import LINK_OPTIONS, kind_info

POOLINGS = ("avg", "max", "none")


def layer_spec(layer: str | Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``{"kind": ..., **options}`` from a kind name or a mapping with ``kind``, and keyword ``options``
    (which win over the mapping's); options set to ``None`` are left out (the layers' defaults apply). Raises
    ``ValueError`` for a missing kind or an option no layer kind takes."""
    spec = dict(layer) if isinstance(layer, Mapping) else {"kind": layer}
    spec.update(options)
    spec = {key: value for key, value in spec.items() if value is not None}  # None: the layer's default
    if "kind" not in spec:
        raise ValueError(f"layer must be a kind name or a mapping with a 'kind', got {spec!r}")
    unknown = sorted(str(key) for key in spec if key != "kind" and key not in LINK_OPTIONS)
    if unknown:
        raise ValueError(f"unknown layer option(s) {', '.join(unknown)}; allowed: {', '.join(LINK_OPTIONS)}")
    return spec


def layer_options(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``spec`` that layer ``kind`` takes (see the module docstring)."""
    taken = kind_info(kind).options
    return {key: value for key, value in spec.items() if key in taken}


def _check_not_tensor(name: str, kind: str | None) -> None:
    if kind is not None and kind_info(kind).basis == "tensor":
        raise ValueError(f"{name} {kind!r} takes d-vectors, so it can only be the input_layer of an MLP")


def _end_spec(spec: dict[str, Any], end: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec of an MLP's first or last layer: ``spec``, with the kind ``end`` or updated by the mapping
    ``end`` (its options win)."""
    if end is None:
        return spec
    if isinstance(end, Mapping):
        return {**spec, **layer_spec(end, {})}
    return {**spec, "kind": end}


def _refined_spec(spec: dict[str, Any], layers: Iterable[nn.Module]) -> dict[str, Any]:
    """``spec`` with ``n`` and ``segments`` as the hol layers among ``layers`` now have them."""
    spec = dict(spec)
    hparams = [layer_hparams() for m in layers if callable(layer_hparams := getattr(m, "hparams", None))]
    for key in ("n", "segments"):
        values = {h[key] for h in hparams if key in h}
        if len(values) > 1:
            raise RuntimeError(f"the layers have different {key} {sorted(values)}; one network {key} cannot "
                               "describe them")
        if values:
            spec[key] = values.pop()
    return spec


class InputScaling(nn.Module):
    """The fixed affine map of each input from its interval ``[low_i, high_i]`` onto ``[-1, 1]``,
    ``(x_i - c_i) / h_i`` with centre ``c_i`` and half-width ``h_i`` (buffers ``centre``, ``half_width``;
    exact for ``[-1, 1]`` itself).

    Args:
        domains: one pair ``[low, high]`` (``low < high``) per input.

    Shape:
        ``[..., len(domains)] -> [..., len(domains)]``.

    Raises:
        ValueError: naming the bad pair.
    """

    centre: Tensor
    half_width: Tensor

    def __init__(self, domains: Sequence[Sequence[float]]):
        super().__init__()
        self.pairs = [check_interval(f"input_domains[{i}]", pair) for i, pair in enumerate(domains)]
        if not self.pairs:
            raise ValueError("input_domains must give one [low, high] per input, got []")
        self.register_buffer("centre", torch.empty(len(self.pairs), dtype=torch.float64))
        self.register_buffer("half_width", torch.empty(len(self.pairs), dtype=torch.float64))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill the buffers from the intervals: also what materializes a module built on the meta device
        (``to_empty()``)."""
        bounds = torch.tensor(self.pairs, dtype=torch.float64)
        with torch.no_grad():
            self.centre.copy_((bounds[:, 0] + bounds[:, 1]) / 2)
            self.half_width.copy_((bounds[:, 1] - bounds[:, 0]) / 2)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.centre.to(x.dtype)) / self.half_width.to(x.dtype)

    def domains(self) -> list[list[float]]:
        """The intervals ``[low, high]`` as given, one per input (whatever dtype the buffers are cast to)."""
        return [list(pair) for pair in self.pairs]

    def extra_repr(self) -> str:
        return "domains=" + str([[round(low, 6), round(high, 6)] for low, high in self.domains()])


class MLP(nn.Module):
    """Fully connected network of hol layers with a normalization between layers.

    Layers, as in high-order-layers-torch: an input layer ``in_features -> hidden_width``, ``hidden_layers``
    layers ``hidden_width -> hidden_width`` and an output layer ``hidden_width -> out_features``
    (``hidden_layers + 2`` layers in all); or, with ``widths``, layers ``in_features -> widths[0] -> ... ->
    widths[-1] -> out_features`` (``len(widths) + 1`` layers: ``widths = [w] * (h + 1)`` is ``hidden_layers=h,
    hidden_width=w``). After every layer but the last: ``normalization``, then dropout.

    Args:
        layer: fc kind of every layer (``hol.layers.kinds()``), or a mapping ``{"kind": ..., **options}``.
        in_features, out_features, hidden_layers, hidden_width: sizes (see above).
        widths: the width of every hidden value, in order (at least one); given, it replaces
            ``hidden_layers`` and ``hidden_width``.
        input_domains: one interval ``[low, high]`` per input, which :class:`InputScaling` maps onto
            ``[-1, 1]`` before the first layer (the network is then a function of the inputs on their own
            intervals); ``None``: the inputs go to the first layer as they are.
        normalization: one of ``hol.layers.NORMS``.
        input_layer, output_layer: kind of the first/last layer if not ``layer``'s (e.g. ``"linear"``, or
            ``"polynomial_nd"`` as input layer for inputs ``[..., in_features, dims]``), or a mapping
            ``{"kind": ..., **options}`` whose options win over the network-wide ones for that layer (e.g. the
            seed's positional embedding ``{"kind": "continuous", "segments": 64}``: many segments on the
            coordinates, few elsewhere).
        dropout: dropout probability after each normalization.
        **options: layer options (``n``, ``segments``, ``length``, ``extrapolation``, ``init``, ``bias``,
            ``alpha``, ``dims``, ``backend``), passed to the layers whose kind takes them (module docstring).

    Shape:
        ``[..., in_features] -> [..., out_features]`` (``[..., in_features, dims]`` with a ``polynomial_nd``
        input layer).

    Raises:
        ValueError: naming the bad argument, its value and what is allowed.

    Examples::

        >>> import torch, hol
        >>> net = MLP("continuous", 784, 10, hidden_layers=1, hidden_width=100, n=5, segments=2)
        >>> net(torch.rand(32, 784) * 2 - 1).shape
        torch.Size([32, 10])
    """

    def __init__(self, layer: str | Mapping[str, Any], in_features: int, out_features: int,
                 hidden_layers: int = 1, hidden_width: int = 20, *, widths: Sequence[int] | None = None,
                 normalization: str = "max_abs", input_layer: str | Mapping[str, Any] | None = None,
                 output_layer: str | Mapping[str, Any] | None = None, dropout: float = 0.0,
                 input_domains: Sequence[Sequence[float]] | None = None, **options):
        super().__init__()
        spec = layer_spec(layer, options)
        first, last = _end_spec(spec, input_layer), _end_spec(spec, output_layer)
        for name, value in (("layer", spec), ("input_layer", first), ("output_layer", last)):
            check_choice(name, value["kind"], registry.kinds())
        _check_not_tensor("layer", spec["kind"])
        _check_not_tensor("output_layer", last["kind"])
        check_int("in_features", in_features, 1)
        check_int("out_features", out_features, 1)
        check_int("hidden_layers", hidden_layers, 0)
        check_int("hidden_width", hidden_width, 1)
        if widths is not None:
            if isinstance(widths, (str, Mapping)) or not isinstance(widths, Sequence) or not widths:
                raise ValueError(f"widths must list the width of every hidden value (at least one), "
                                 f"got {widths!r}")
            widths = [check_int(f"widths[{i}]", width, 1) for i, width in enumerate(widths)]
        check_choice("normalization", normalization, NORMS)
        if normalization == "tanh" and "tanh" in (first["kind"], spec["kind"]):
            raise ValueError("normalization 'tanh' after layer 'tanh' (nn.Linear then tanh) would apply tanh "
                             "twice; use normalization 'none' with the tanh layer")
        check_number("dropout", dropout, 0, 1, below=True)
        self.input_scaling = None if input_domains is None else InputScaling(input_domains)
        if self.input_scaling is not None:
            if len(self.input_scaling.pairs) != in_features:
                raise ValueError(f"input_domains must give one [low, high] per input ({in_features}), got "
                                 f"{len(self.input_scaling.pairs)}")
            if kind_info(first["kind"]).basis == "tensor":
                raise ValueError(f"input_domains cannot scale the d-vector inputs of input_layer "
                                 f"{first['kind']!r}")
        self._config: dict[str, Any] = {"layer": spec, "in_features": in_features,
                        "out_features": out_features, "hidden_layers": hidden_layers,
                        "hidden_width": hidden_width, "widths": widths, "normalization": normalization,
                        "input_layer": input_layer, "output_layer": output_layer, "dropout": dropout,
                        "input_domains": None if self.input_scaling is None else self.input_scaling.domains()}
        self.widths = list(widths) if widths is not None else [hidden_width] * (hidden_layers + 1)
        """The width of every hidden value."""

        specs = [first] + [spec] * (len(self.widths) - 1) + [last]
        widths = [in_features, *self.widths, out_features]
        self.layers = nn.ModuleList(
            registry.fc(spec_i["kind"], width_in, width_out, **layer_options(spec_i["kind"], spec_i))
            for spec_i, width_in, width_out in zip(specs, widths[:-1], widths[1:], strict=True)
        )
        self.norms = nn.ModuleList(norm(normalization, width) for width in widths[1:-1])
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.input_scaling is not None:
            x = self.input_scaling(x)
        for layer, normalize in zip(self.layers, self.norms, strict=False):  # the last layer: no norm
            x = self.dropout(normalize(layer(x)))
        return self.layers[-1](x)

    def hparams(self) -> dict:
        """Constructor arguments plus ``name="mlp"``, with ``n``/``segments`` as the layers now have them (an
        ``input_layer``/``output_layer`` mapping as its own layer has them, ``layer`` as the others)."""
        config = dict(self._config)
        layers = list(self.layers)
        own_first, own_last = (isinstance(config[key], Mapping) for key in ("input_layer", "output_layer"))
        if own_first:
            config["input_layer"] = _refined_spec(config["input_layer"], layers[:1])
        if own_last:
            config["output_layer"] = _refined_spec(config["output_layer"], layers[-1:])
        config["layer"] = _refined_spec(config["layer"], layers[int(own_first):len(layers) - int(own_last)])
        return {"name": "mlp", **config}


class ConvNet(nn.Module):
    """Convolutional classifier of hol conv layers: conv blocks, a pooled readout and a head.

    Block ``i`` (``channels[i-1] -> channels[i]``, ``channels[-1] = in_channels``): hol conv (``layer``,
    ``kernel_size``, ``stride``, ``padding``), ``normalization`` over each sample's channels and positions,
    then ``pooling`` (2x2 average or max, or none). The readout averages each channel's map down to
    ``readout_size`` positions per spatial dimension (``1``: global average pooling, so any image size works;
    larger keeps coarse spatial layout) and flattens it to ``channels[-1] * readout_size**dim`` features;
    then dropout and the ``head``: an fc kind, ``"linear"`` giving ``nn.Linear``.

    Args:
        layer: conv kind of every block (``hol.layers.conv_kinds()``), or a mapping
            ``{"kind": ..., **options}``.
        in_channels: image channels.
        channels: output channels of the blocks (one block each).
        kernel_size: conv kernel size (int or tuple).
        out_features: number of outputs (classes).
        normalization: one of ``hol.layers.NORMS``.
        pooling: ``"avg"``, ``"max"`` or ``"none"``.
        head: fc kind of the head (gets the layer options its kind takes).
        dim: spatial dimensions (1, 2 or 3).
        padding: conv padding; ``None`` pads ``kernel_size // 2`` ("same" size for odd kernels at stride 1).
        stride: conv stride.
        readout_size: positions per spatial dimension kept by the readout.
        dropout: dropout probability before the head.
        **options: layer options, as for :class:`MLP`.

    Shape:
        ``[B, in_channels, *spatial] -> [B, out_features]``.

    Raises:
        ValueError: naming the bad argument, its value and what is allowed.

    Examples::

        >>> import torch, hol
        >>> net = ConvNet("continuous", 1, [8, 16], 3, out_features=10, n=3, segments=2)
        >>> net(torch.rand(4, 1, 28, 28) * 2 - 1).shape
        torch.Size([4, 10])
    """

    def __init__(self, layer: str | Mapping[str, Any], in_channels: int, channels: Sequence[int],
                 kernel_size, *, out_features: int, normalization: str = "max_abs", pooling: str = "avg",
                 head: str = "linear", dim: int = 2, padding=None, stride=1, readout_size: int = 1,
                 dropout: float = 0.0, **options):
        super().__init__()
        spec = layer_spec(layer, options)
        kind = spec["kind"]
        channels = list(channels)
        check_choice("layer", kind, registry.conv_kinds())
        check_choice("head", head, registry.kinds())
        _check_not_tensor("head", head)
        check_int("in_channels", in_channels, 1)
        if not channels:
            raise ValueError("channels must list at least one block width, got []")
        for width in channels:
            check_int("channels entry", width, 1)
        check_int("out_features", out_features, 1)
        check_choice("dim", dim, (1, 2, 3))
        check_int("readout_size", readout_size, 1)
        check_choice("normalization", normalization, NORMS)
        check_choice("pooling", pooling, POOLINGS)
        check_number("dropout", dropout, 0, 1, below=True)
        self._config: dict[str, Any] = {"layer": spec, "in_channels": in_channels, "channels": channels,
                        "kernel_size": kernel_size, "out_features": out_features,
                        "normalization": normalization, "pooling": pooling, "head": head, "dim": dim,
                        "padding": padding, "stride": stride, "readout_size": readout_size,
                        "dropout": dropout}

        if padding is None:
            padding = (tuple(k // 2 for k in kernel_size) if isinstance(kernel_size, Sequence)
                       else kernel_size // 2)
        widths = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                registry.conv(kind, width_in, width_out, kernel_size, dim=dim, padding=padding, stride=stride,
                              **layer_options(kind, spec)),
                norm(normalization, width_out, spatial_dims=dim),
                _pool(pooling, dim),
            )
            for width_in, width_out in pairwise(widths)
        )
        readout = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dim]
        self.readout = nn.Sequential(readout(readout_size), nn.Flatten(1))
        self.dropout = nn.Dropout(dropout)
        self.head = registry.fc(head, channels[-1] * readout_size**dim, out_features,
                                **layer_options(head, spec))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(self.dropout(self.readout(x)))

    def hparams(self) -> dict:
        """Constructor arguments plus ``name="conv"``, with ``n``/``segments`` as the layers now have them."""
        layers = [cast(nn.Sequential, block)[0] for block in self.blocks] + [self.head]
        return {"name": "conv", **self._config, "layer": _refined_spec(self._config["layer"], layers)}


def _pool(pooling: str, dim: int) -> nn.Module:
    if pooling == "none":
        return nn.Identity()
    pools = {"avg": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
             "max": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)}
    return pools[pooling][dim - 1](2)


NETWORKS: dict[str, type[nn.Module]] = {"mlp": MLP, "conv": ConvNet}
"""The networks :func:`build` knows by name; :mod:`hol.vae` adds ``"vae"`` (imported with :mod:`hol`)."""


def build(hparams: Mapping[str, Any]) -> nn.Module:
    """Rebuild a network from ``hparams``: a ``"name"`` key (``"mlp"``, ``"conv"`` or ``"vae"``) plus the
    constructor's keyword arguments, as ``net.hparams()`` returns them.

    Examples::

        >>> import torch, hol
        >>> net = MLP("continuous", 4, 2, hidden_layers=1, hidden_width=8, n=3, segments=2)
        >>> twin = build(net.hparams())
        >>> twin.load_state_dict(net.state_dict())
        <All keys matched successfully>
    """
    options = dict(hparams)
    name = options.pop("name", None)
    check_choice("network name", name, NETWORKS)
    return NETWORKS[name](**options)
