"""Networks of hol layers: :class:`MLP`, :class:`ConvNet`, and :func:`build` to rebuild them from hparams.

High-order links are their own nonlinearity, so the networks put only a normalization (``hol.layers.norm``,
default ``max_abs``) between layers, which keeps activations in the links' domain ``[-L/2, L/2]``
(``max_abs``/``max_center`` map into ``[-1, 1]``, the default domain). The network input is not normalized:
it is expected in the domain already (e.g. pixels scaled to ``[-1, 1]``).

Every network's ``hparams()`` returns its constructor arguments plus ``"name"`` (``"mlp"`` or ``"conv"``),
with ``n`` and ``segments`` read from its layers, so after :func:`hol.refine` it describes the refined
network and ``build(net.hparams())`` followed by ``load_state_dict`` restores a checkpoint.

Network-wide options reach only the layer kinds that use them: ``n``, ``length``, ``extrapolation`` all
basis kinds; ``segments`` the piecewise kinds (``continuous``, ``discontinuous`` and their ``_prod``);
``alpha`` the product kinds; ``dims`` ``polynomial_nd``; ``init`` and ``bias`` every high-order kind.
The ``linear``/``relu`` baselines get none of them (they keep ``nn.Linear``'s / ``nn.ConvNd``'s bias).
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from torch import Tensor, nn

from .layers import registry
from .layers.bases import check_choice
from .layers.fc import FC_KINDS, PIECEWISE_FAMILIES
from .layers.norm import NORMS, norm

BASELINES = ("linear", "relu")
POOLINGS = ("avg", "max", "none")


def layer_options(kind: str, *, n: int, segments: int, length: float, extrapolation: str, init: str | None,
                  bias: bool, alpha: float | None = None, dims: int | None = None) -> dict:
    """The keyword options of layer ``kind`` among the network-wide ones (see the module docstring)."""
    if kind in BASELINES:
        return {}
    family, product = FC_KINDS.get(kind, (None, False))
    options = {"bias": bias} if init is None else {"bias": bias, "init": init}
    if product and alpha is not None:
        options["alpha"] = alpha
    if family == "identity":
        return options
    options.update(n=n, length=length, extrapolation=extrapolation)
    if family in PIECEWISE_FAMILIES or family is None:  # None: a custom registered kind gets every option
        options["segments"] = segments
    if family == "tensor":
        options["dims"] = dims
    return options


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_dropout(dropout) -> None:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")


def _check_not_nd(name: str, kind: str) -> None:
    if kind == "polynomial_nd":
        raise ValueError(f"{name} 'polynomial_nd' takes d-vectors, so it can only be the input_layer of an MLP")


def _refined_hparams(config: dict, layers) -> dict:
    """``config`` with ``n`` and ``segments`` as the hol layers among ``layers`` now have them."""
    hparams = dict(config)
    for key, layers_with_key in (("n", [m for m in layers if "n" in _layer_hparams(m)]),
                                 ("segments", [m for m in layers if _is_piecewise(m)])):
        values = {_layer_hparams(m)[key] for m in layers_with_key}
        if len(values) > 1:
            raise RuntimeError(f"the layers have different {key} {sorted(values)}; one network {key} cannot "
                               "describe them")
        if values:
            hparams[key] = values.pop()
    return hparams


def _layer_hparams(module: nn.Module) -> dict:
    return module.hparams() if callable(getattr(module, "hparams", None)) else {}


def _is_piecewise(module: nn.Module) -> bool:
    return FC_KINDS.get(getattr(module, "kind", None), ("",))[0] in PIECEWISE_FAMILIES


class MLP(nn.Module):
    """Fully connected network of hol layers with a normalization between layers.

    Layers, as in high-order-layers-torch: an input layer ``in_features -> hidden_width``, ``hidden_layers``
    layers ``hidden_width -> hidden_width`` and an output layer ``hidden_width -> out_features``
    (``hidden_layers + 2`` layers in all). After every layer but the last: ``normalization``, then dropout.

    Args:
        layer: fc kind of every layer (``hol.layers.kinds()``).
        in_features, out_features, hidden_layers, hidden_width: sizes (see above).
        n, segments, length, extrapolation, init, bias, alpha, dims: layer options, passed only to the kinds
            that use them (module docstring); ``init=None`` keeps the layers' default.
        normalization: one of ``hol.layers.NORMS``.
        input_layer, output_layer: kind of the first/last layer if not ``layer`` (e.g. ``"linear"``, or
            ``"polynomial_nd"`` as input layer for inputs ``[..., in_features, dims]``).
        dropout: dropout probability after each normalization.

    Shape:
        ``[..., in_features] -> [..., out_features]`` (``[..., in_features, dims]`` with a ``polynomial_nd``
        input layer).

    Examples::

        >>> net = MLP("continuous", 784, 10, hidden_layers=1, hidden_width=100, n=5, segments=2)
        >>> net(torch.rand(32, 784) * 2 - 1).shape
        torch.Size([32, 10])
    """

    def __init__(self, layer: str, in_features: int, out_features: int, hidden_layers: int, hidden_width: int, *,
                 n: int = 3, segments: int = 1, length: float = 2.0, normalization: str = "max_abs",
                 input_layer: str | None = None, output_layer: str | None = None, dropout: float = 0.0,
                 extrapolation: str = "polynomial", init: str | None = None, bias: bool = False,
                 alpha: float = 1.0, dims: int | None = None):
        super().__init__()
        self._config = {"layer": layer, "in_features": in_features, "out_features": out_features,
                        "hidden_layers": hidden_layers, "hidden_width": hidden_width, "n": n, "segments": segments,
                        "length": length, "normalization": normalization, "input_layer": input_layer,
                        "output_layer": output_layer, "dropout": dropout, "extrapolation": extrapolation,
                        "init": init, "bias": bias, "alpha": alpha, "dims": dims}
        for name in ("layer", "input_layer", "output_layer"):
            if self._config[name] is not None:
                check_choice(name, self._config[name], registry.kinds())
        _check_not_nd("layer", layer)
        _check_not_nd("output_layer", output_layer)
        _check_int("in_features", in_features, 1)
        _check_int("out_features", out_features, 1)
        _check_int("hidden_layers", hidden_layers, 0)
        _check_int("hidden_width", hidden_width, 1)
        check_choice("normalization", normalization, NORMS)
        _check_dropout(dropout)

        kinds = [input_layer or layer] + [layer] * hidden_layers + [output_layer or layer]
        widths = [in_features] + [hidden_width] * (hidden_layers + 1) + [out_features]
        options = {"n": n, "segments": segments, "length": length, "extrapolation": extrapolation, "init": init,
                   "bias": bias, "alpha": alpha, "dims": dims}
        self.layers = nn.ModuleList(
            registry.fc(kind, width_in, width_out, **layer_options(kind, **options))
            for kind, width_in, width_out in zip(kinds, widths, widths[1:])
        )
        self.norms = nn.ModuleList(norm(normalization, width) for width in widths[1:-1])
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        for layer, normalize in zip(self.layers, self.norms):
            x = self.dropout(normalize(layer(x)))
        return self.layers[-1](x)

    def hparams(self) -> dict:
        """Constructor arguments plus ``name="mlp"``, with ``n``/``segments`` as the layers now have them."""
        return {"name": "mlp", **_refined_hparams(self._config, self.layers)}


class ConvNet(nn.Module):
    """Convolutional classifier of hol conv layers: conv blocks, a pooled readout and a head.

    Block ``i`` (``channels[i-1] -> channels[i]``, ``channels[-1] = in_channels``): hol conv (``layer``,
    ``kernel_size``, ``stride``, ``padding``), ``normalization`` over each sample's channels and positions, then
    ``pooling`` (2x2 average or max, or none). The readout averages each channel's map down to
    ``readout_size`` positions per spatial dimension (``1``: global average pooling, so any image size works;
    larger keeps coarse spatial layout) and flattens it to ``channels[-1] * readout_size**dim`` features;
    then dropout and the ``head``: an fc kind, ``"linear"`` giving ``nn.Linear``.

    Args:
        layer: conv kind of every block (``hol.layers.conv_kinds()``).
        in_channels: image channels.
        channels: output channels of the blocks (one block each).
        kernel_size: conv kernel size (int or tuple).
        out_features: number of outputs (classes).
        n, segments, length, extrapolation, init, bias: layer options, passed only to the kinds that use them
            (module docstring), also to a high-order head.
        normalization: one of ``hol.layers.NORMS``.
        pooling: ``"avg"``, ``"max"`` or ``"none"``.
        head: fc kind of the head.
        dim: spatial dimensions (1, 2 or 3).
        padding: conv padding; ``None`` pads ``kernel_size // 2`` ("same" size for odd kernels at stride 1).
        stride: conv stride.
        readout_size: positions per spatial dimension kept by the readout.
        dropout: dropout probability before the head.

    Shape:
        ``[B, in_channels, *spatial] -> [B, out_features]``.

    Examples::

        >>> net = ConvNet("continuous", 1, [8, 16], 3, out_features=10, n=3, segments=2)
        >>> net(torch.rand(4, 1, 28, 28) * 2 - 1).shape
        torch.Size([4, 10])
    """

    def __init__(self, layer: str, in_channels: int, channels: Sequence[int], kernel_size, *, n: int = 3,
                 segments: int = 1, out_features: int, length: float = 2.0, normalization: str = "max_abs",
                 pooling: str = "avg", head: str = "linear", dim: int = 2, padding=None, stride=1,
                 readout_size: int = 1, dropout: float = 0.0, extrapolation: str = "polynomial",
                 init: str | None = None, bias: bool = False):
        super().__init__()
        channels = list(channels)
        self._config = {"layer": layer, "in_channels": in_channels, "channels": channels,
                        "kernel_size": kernel_size, "n": n, "segments": segments, "out_features": out_features,
                        "length": length, "normalization": normalization, "pooling": pooling, "head": head,
                        "dim": dim, "padding": padding, "stride": stride, "readout_size": readout_size,
                        "dropout": dropout, "extrapolation": extrapolation, "init": init, "bias": bias}
        check_choice("layer", layer, registry.conv_kinds())
        check_choice("head", head, registry.kinds())
        _check_not_nd("head", head)
        _check_int("in_channels", in_channels, 1)
        if not channels:
            raise ValueError("channels must list at least one block width, got []")
        for width in channels:
            _check_int("channels entry", width, 1)
        _check_int("out_features", out_features, 1)
        if dim not in (1, 2, 3):
            raise ValueError(f"dim must be 1, 2 or 3, got {dim!r}")
        _check_int("readout_size", readout_size, 1)
        check_choice("normalization", normalization, NORMS)
        check_choice("pooling", pooling, POOLINGS)
        _check_dropout(dropout)

        if padding is None:
            padding = tuple(k // 2 for k in kernel_size) if isinstance(kernel_size, Sequence) else kernel_size // 2
        options = {"n": n, "segments": segments, "length": length, "extrapolation": extrapolation, "init": init,
                   "bias": bias}
        widths = [in_channels] + channels
        self.blocks = nn.ModuleList(
            nn.Sequential(
                registry.conv(layer, width_in, width_out, kernel_size, dim=dim, padding=padding, stride=stride,
                              **layer_options(layer, **options)),
                norm(normalization, width_out, spatial_dims=dim),
                _pool(pooling, dim),
            )
            for width_in, width_out in pairwise(widths)
        )
        readout = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[dim]
        self.readout = nn.Sequential(readout(readout_size), nn.Flatten(1))
        self.dropout = nn.Dropout(dropout)
        self.head = registry.fc(head, channels[-1] * readout_size**dim, out_features, **layer_options(head, **options))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(self.dropout(self.readout(x)))

    def hparams(self) -> dict:
        """Constructor arguments plus ``name="conv"``, with ``n``/``segments`` as the layers now have them."""
        layers = [block[0] for block in self.blocks] + [self.head]
        return {"name": "conv", **_refined_hparams(self._config, layers)}


def _pool(pooling: str, dim: int) -> nn.Module:
    if pooling == "none":
        return nn.Identity()
    pools = {"avg": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), "max": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)}
    return pools[pooling][dim - 1](2)


NETWORKS = {"mlp": MLP, "conv": ConvNet}


def build(hparams: dict) -> nn.Module:
    """Rebuild a network from ``hparams``: a ``"name"`` key (``"mlp"`` or ``"conv"``) plus the constructor's
    keyword arguments, as ``net.hparams()`` returns them.

    Examples::

        >>> twin = build(net.hparams())
        >>> twin.load_state_dict(net.state_dict())
    """
    options = dict(hparams)
    name = options.pop("name", None)
    check_choice("network name", name, NETWORKS)
    return NETWORKS[name](**options)
