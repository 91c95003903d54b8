"""The links of a layer or a network as samples, and their fits (:mod:`hol.symbolic.fit`).

A link ``f_oi`` of a :class:`~hol.layers.HighOrderLinear` is a function of the layer's actual input ``x_i``
(not of the reference coordinate its basis uses), defined on the input's domain ``[c_i - w_i/2, c_i + w_i/2]``
(:mod:`hol.layers.domain`; ``[-L/2, L/2]`` for the linear links of ``product``, which have none). It is
sampled at ``points`` equally spaced values spanning that domain, or at given inputs (for a network: each
layer's inputs when the network runs on given samples, so each link is fitted where the data take it). The
link values are computed in float64 (on a float64 copy of the layer).

Fits are keyed ``(output, input)`` for a layer and ``(layer, output, input)`` for a network, with ``layer``
the index in ``net.layers``.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..checks import check_int
from ..layers.domain import CENTRE, WIDTH
from ..layers.fully_connected import HighOrderLinear
from ..networks import MLP
from ..samples import eval_mode
from .fit import LinkFit, fit_link
from .library import Candidate


def check_layer(layer: nn.Module, what: str = "layer") -> HighOrderLinear:
    """``layer`` if it is a :class:`~hol.layers.HighOrderLinear` with links of one variable, else
    ``ValueError`` (one line)."""
    if not isinstance(layer, HighOrderLinear):
        raise ValueError(f"{what} must be a HighOrderLinear (a fully connected hol layer with links), got "
                         f"{type(layer).__name__}")
    if layer.dims is not None:
        raise ValueError(f"{what}: the links of kind {layer.kind!r} take {layer.dims}-vectors; symbolic fits "
                         "need links of one variable")
    return layer


def check_mlp(net: nn.Module) -> MLP:
    """``net`` if it is a :class:`hol.networks.MLP`, else ``ValueError`` (one line)."""
    if not isinstance(net, MLP):
        raise ValueError(f"net must be a hol.networks.MLP, got {type(net).__name__}")
    return net


def domain_samples(layer: HighOrderLinear, points: int = 101) -> Tensor:
    """``points`` equally spaced float64 values spanning each input's domain. Shape: ``[points, I]``."""
    check_int("points", points, 5)
    centre = getattr(layer, CENTRE, None)
    if centre is None:
        low = torch.full((layer.in_features,), -layer.length / 2, dtype=torch.float64)
        high = -low
    else:
        centre, width = centre.detach().cpu().double(), getattr(layer, WIDTH).detach().cpu().double()
        low, high = centre - width / 2, centre + width / 2
    steps = torch.linspace(0, 1, points, dtype=torch.float64)[:, None]
    return low + steps * (high - low)


def link_values(layer: HighOrderLinear, x: Tensor) -> Tensor:
    """Every link's value ``f_oi(x_i)`` in float64 (on a float64 copy of the layer, on the CPU).
    Shape: ``[N, I] -> [N, O, I]``."""
    layer64 = copy.deepcopy(check_layer(layer)).to("cpu", torch.float64)
    with torch.no_grad():
        return layer64.links(x.detach().to("cpu", torch.float64))


def fit_layer(layer: nn.Module, inputs: Tensor | None = None,
              library: Iterable[str | Candidate] | None = None, *, points: int = 101,
              links: Iterable[tuple[int, int]] | None = None,
              **options) -> dict[tuple[int, int], LinkFit]:
    """Fit links of a :class:`~hol.layers.HighOrderLinear` (:func:`hol.symbolic.fit.fit_link`).

    Args:
        layer: the layer (``polynomial_nd``'s links of d-vectors are refused).
        inputs: the layer's inputs to fit on, ``[..., I]``; ``None``: ``points`` values spanning each input's
            domain (:func:`domain_samples`).
        library: candidate functions (:func:`hol.symbolic.library.candidates`; ``None``: all built-in ones).
        links: the ``(output, input)`` pairs to fit; ``None``: all.
        **options: of :func:`~hol.symbolic.fit.fit_link` (``tolerance``, ``grid``, ``extent``, ``starts``).

    Returns:
        ``{(output, input): LinkFit}``.

    Raises:
        ValueError: another layer, inputs of the wrong shape, a link out of range, or as ``fit_link``.
    """
    layer = check_layer(layer)
    if inputs is None:
        x = domain_samples(layer, points)
    else:
        if inputs.dim() < 1 or inputs.shape[-1] != layer.in_features:
            raise ValueError(f"inputs must have shape [..., {layer.in_features}], got {list(inputs.shape)}")
        x = inputs.detach().reshape(-1, layer.in_features).to("cpu", torch.float64)
    values = link_values(layer, x)
    pairs = [(o, i) for o in range(layer.out_features) for i in range(layer.in_features)]
    if links is not None:
        chosen = list(links)
        wrong = [pair for pair in chosen if pair not in pairs]
        if wrong:
            raise ValueError(f"links must be (output, input) pairs of a {layer.in_features} -> "
                             f"{layer.out_features} layer, got {wrong[0]!r}")
        pairs = chosen
    return {(o, i): fit_link(x[:, i], values[:, o, i], library, **options) for o, i in pairs}


def layer_inputs(net: nn.Module, samples: Tensor) -> dict[int, Tensor]:
    """The inputs every layer of ``net.layers`` receives when the MLP ``net`` (in eval mode, without
    gradients) runs on ``samples``: ``{index: [N, in_features]}``. Raises ``ValueError`` for another
    network."""
    net = check_mlp(net)
    seen: dict[int, Tensor] = {}
    hooks = [layer.register_forward_pre_hook(
        lambda module, args, index=index: seen.__setitem__(index, args[0].detach()))
        for index, layer in enumerate(net.layers)]
    try:
        with eval_mode(net), torch.no_grad():
            net(samples)
    finally:
        for hook in hooks:
            hook.remove()
    return {index: x.reshape(-1, x.shape[-1]) for index, x in seen.items()}


def fit_network(net: nn.Module, samples: Tensor | None = None,
                library: Iterable[str | Candidate] | None = None, *, points: int = 101,
                **options) -> dict[tuple[int, int, int], LinkFit]:
    """Fit every link of every :class:`~hol.layers.HighOrderLinear` of an MLP (other layers are skipped:
    ``linear`` baselines have no links, a :class:`~hol.symbolic.fix.SymbolicLinear` has its fits).

    Args:
        net: a :class:`hol.networks.MLP`.
        samples: network inputs ``[N, in_features]``: each layer's links are fitted on the inputs it receives
            (:func:`layer_inputs`); ``None``: on ``points`` values spanning each layer's input domains.
        library, **options: as :func:`fit_layer`.

    Returns:
        ``{(layer, output, input): LinkFit}``.

    Raises:
        ValueError: ``net`` is no MLP, or as :func:`fit_layer`.
    """
    net = check_mlp(net)
    inputs = layer_inputs(net, samples) if samples is not None else {}
    fits: dict[tuple[int, int, int], LinkFit] = {}
    for index, layer in enumerate(net.layers):
        if isinstance(layer, HighOrderLinear):
            layer_fits = fit_layer(layer, inputs.get(index), library, points=points, **options)
            fits.update({(index, o, i): fit for (o, i), fit in layer_fits.items()})
    return fits
