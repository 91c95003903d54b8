"""Adaptive domains: move each hol layer's per-input domains to the ranges its inputs take, keeping its links.

A hol layer maps input ``i`` from its domain ``[c_i - w_i/2, c_i + w_i/2]`` onto the reference domain of its
basis (:mod:`hol.layers.domain`). Training moves the values a layer receives (the outputs of the layer before
it), so a hidden layer's inputs may leave its domain, where its links extrapolate, or fill a small part of it,
where most of its segments see no data. ``adapt_domains(module, samples)`` returns a copy of ``module`` in
which every adaptable layer's domains span the ranges its inputs take on ``samples``, with the same link
functions as far as mathematics allows (the KAN libraries' grid update from samples, pykan's
``update_grid_from_samples`` and efficient-kan's ``update_grid``, with exact projections).

Which layers: fully connected and convolutional hol layers (any submodule with a ``Basis`` ``.basis``, a
``.weight`` and ``.hparams()``, as for :func:`hol.refine`) whose links are Lagrange polynomials: the kinds
``polynomial``, ``continuous``, ``discontinuous``, their ``_prod`` product units and ``polynomial_nd`` (one
domain per input and dimension). Fourier links are periodic with the period of their domain, so moving it is
no projection of the same function: ``fourier`` layers keep their domains (they still have them, to set by
hand). ``product`` (linear links) and the ``linear``/``relu`` baselines have none.

Ranges. ``samples`` (a tensor of network inputs, or an iterable of such batches) are run through the module
in eval mode without gradients; a forward pre-hook on every adaptable layer records the smallest and largest
value of each of its inputs (each layer sees its own inputs, propagated through the network as it is). For a
convolution padding its input with zeros (``padding_mode="input_zeros"``) the value 0 counts as well. The new
domain of input ``i`` is ``[lo_i - m r_i, hi_i + m r_i]`` with ``r_i = hi_i - lo_i`` and ``m = margin``; an
input whose values do not spread (``r_i`` at rounding level of its values and old domain, e.g. a constant
input) keeps its domain. Every layer is adapted from the same forward pass.

Projection (every transform in float64, cast to the layer's dtype at the end; the new domain is first rounded
to the layer's dtype so the projection is onto the domain the layer will use). With ``z`` the new reference
coordinate, the old link is ``g(a_i + b_i z)`` with ``b_i = w_new / w_old`` and ``a_i = (c_new - c_old) L /
w_old``: an affine map of its reference function. Each link's new coefficients are the least-squares fit of
these values on the midpoints of ``4 n S`` equal cells of the new reference domain, one linear map per input
shared by all of its links (``polynomial_nd``: one per input and dimension, applied along that dimension of
the tensor-product coefficients, which is the least-squares fit on the tensor grid). Where the old link is a
polynomial of degree ``< n`` on every new segment, it lies in the new space and the fit reproduces it exactly
(to rounding): e.g. any domain change of ``polynomial`` and ``polynomial_nd`` links with polynomial
extrapolation; piecewise links whose new segments each lie in one old segment (or in the extrapolated
continuation of an end segment). Otherwise (an old break inside a new segment, or a new domain reaching where
a ``clamp``/``linear``/``mirror`` extrapolation changes the function) it is the least-squares projection.

The change is measured on every adapted layer: ``max |f_new(x) - f_old(x)|`` over all of its links and over
each new domain, sampled at ``4 n`` points in every cell between consecutive breaks of the new grid and of the
old one (both functions are polynomials there), cell ends included as limits from the cell's side
(``polynomial_nd``: on the tensor grid of these points per dimension). :func:`adapt_domains` records the
largest as ``adapt_max_change`` on the returned module; :func:`adapt_domains_with_report` returns it per
layer.

Rescaling hidden layers (``rescale=True``, default). The composition ``B(A(x))`` of two layers is unchanged
when ``A``'s outputs are mapped affinely and ``B``'s domains follow; only the parametrization changes. After
adapting, ``B``'s domain may be a small interval (measured on the two-variable KAN example, a hidden range of
width 0.06), so a small change of ``A``'s coefficients moves ``B``'s inputs across many of its segments: the
loss is then ill conditioned in ``A``'s coefficients (an earlier ladder stalled at a test RMSE of 1.7e-4 where
the rescaled one reached 1e-6; on ``conf/experiment/function_2d.yaml``'s ladder both reach 5e-9). In a
:class:`hol.networks.MLP` without normalization and dropout, where ``A``'s output ``j`` is ``B``'s input
``j``, adapting therefore rescales ``A`` instead (:func:`rescale_hidden`): ``A``'s outputs become
``(y_j - c_j) L / w_j`` (exact: ``A`` sums links that reproduce constants) and ``B`` keeps the default domain,
which its inputs now span. Product units and layers used twice are not rescaled.

:func:`hol.refine` works on adapted networks (it refines in reference coordinates and carries the domains),
and adapting a refined network projects onto its finer grid.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .checks import check_bool, check_number
from .layers.bases import Basis, LagrangeBasis, TensorLagrangeBasis
from .layers.convolution import HighOrderConv
from .layers.domain import CENTRE, WIDTH
from .layers.fully_connected import HighOrderLinear
from .networks import MLP
from .refine import is_hol_layer
from .samples import eval_mode, sample_batches

_CHUNK_ELEMENTS = 1 << 22  # bound on the float64 blocks built at once (inputs x samples x coefficients)
_FLAT_SPREAD = 64  # an input spreading less than this many ulps of its values keeps its domain


def adapt_domains(module: nn.Module, samples: Tensor | Iterable[Tensor], margin: float = 0.0,
                  rescale: bool = True) -> nn.Module:
    """A copy of ``module`` whose hol layers' domains span the ranges their inputs take on ``samples``.

    The input is left untouched. The largest change of a link function (module docstring) is recorded on the
    result as the float attribute ``adapt_max_change`` (``0.0`` when no layer was adapted).

    Args:
        module: any ``nn.Module``; adaptable hol layers anywhere in its tree are adapted (the module itself
            may be one).
        samples: inputs of ``module``, a tensor or an iterable of batches, each a tensor of inputs or a tuple
            (or list) whose first entry is (e.g. a ``DataLoader`` of a ``TensorDataset(x, y)``).
        margin: widen each range by this fraction of its width on both sides.
        rescale: in :class:`hol.networks.MLP` networks without normalization and dropout, rescale each hidden
            layer so that its outputs span the next layer's reference domain (module docstring).

    Raises:
        ValueError: ``margin`` negative, ``samples`` empty or giving a layer non-finite inputs.

    Examples::

        >>> import torch, hol
        >>> _ = torch.manual_seed(0)
        >>> net = hol.networks.MLP("continuous", 2, 1, 0, 1, normalization="none", n=4, segments=2).double()
        >>> x = torch.rand(100, 2, dtype=torch.float64) * 2 - 1
        >>> plain = hol.adapt_domains(net, x, rescale=False)
        >>> plain.layers[1].domain_width.item() != 2  # the hidden value's range, not [-1, 1]
        True
        >>> adapted = hol.adapt_domains(net, x)  # the hidden layer rescaled instead: its outputs span [-1, 1]
        >>> adapted.layers[1].domain_width.item()
        2.0
        >>> bool((adapted(x) - net(x)).abs().max() <= adapted.adapt_max_change + 1e-12)
        True
    """
    adapted, report = adapt_domains_with_report(module, samples, margin, rescale)
    adapted.adapt_max_change = max(report.values(), default=0.0)  # type: ignore[assignment]  # a float attribute
    return adapted


@torch.no_grad()
def adapt_domains_with_report(module: nn.Module, samples: Tensor | Iterable[Tensor], margin: float = 0.0,
                              rescale: bool = True) -> tuple[nn.Module, dict[str, float]]:
    """Like :func:`adapt_domains`, returning ``(adapted_module, report)`` with ``report[name]`` the max
    change of each adapted layer, ``name`` its qualified name in the module tree (``""`` for ``module``
    itself). Layers that are not adaptable or saw no samples are not listed."""
    check_number("margin", margin, 0)
    check_bool("rescale", rescale)
    adapted = copy.deepcopy(module)
    ranges = input_ranges(adapted, samples)
    report = {}
    for name, layer in adapted.named_modules():
        if name in ranges:
            low, high = ranges[name]
            centre, width = _new_domain(layer, low, high, margin)
            report[name] = move_domain(layer, centre, width)
    if rescale:
        for network in adapted.modules():
            if isinstance(network, MLP):
                rescale_hidden(network)
    return adapted, report


@torch.no_grad()
def rescale_hidden(net: MLP) -> None:
    """In place: for every pair of consecutive layers ``A -> B`` of an MLP without normalization and dropout,
    where ``A`` sums nodal links (a non-product hol layer with Lagrange links) and ``B`` has per-input
    domains, rescale ``A`` so that its output ``j`` becomes ``(y_j - c_j) L / w_j`` (its links' values shifted
    by ``-c_j / I`` and scaled; with a bias, the bias shifted) and give ``B`` the default domain: the same
    function, with ``B``'s inputs in its reference domain (module docstring)."""
    hparams = net.hparams()
    if hparams["normalization"] != "none" or hparams["dropout"] != 0:
        return
    layers = list(net.layers)
    if len({id(layer) for layer in layers}) < len(layers):
        return  # a layer used twice: rescaling it for one successor would change it for the other
    for before, after in itertools.pairwise(layers):
        basis = getattr(before, "basis", None)
        if not (isinstance(before, HighOrderLinear) and not before.product and isinstance(basis, Basis)
                and basis.nodal and isinstance(getattr(after, CENTRE, None), Tensor)):
            continue
        if parametrize.is_parametrized(before, "weight"):
            continue
        centre, width = getattr(after, CENTRE), getattr(after, WIDTH)
        scale = (cast(float, after.length) / width.double()).to(before.weight.dtype)  # [J]
        shift = centre.to(before.weight.dtype)
        if before.bias is not None:
            before.bias.sub_(shift).mul_(scale)
        else:
            before.weight.sub_(shift.reshape(-1, *([1] * (before.weight.dim() - 1))) / before.in_features)
        before.weight.mul_(scale.reshape(-1, *([1] * (before.weight.dim() - 1))))
        centre.zero_()
        width.fill_(cast(float, after.length))


def is_adaptable(module: nn.Module) -> bool:
    """Whether :func:`adapt_domains` moves the domains of ``module``: a hol layer with per-input domains and
    Lagrange links (module docstring)."""
    return (is_hol_layer(module) and isinstance(getattr(module, CENTRE, None), Tensor)
            and isinstance(module.basis, LagrangeBasis | TensorLagrangeBasis))


@torch.no_grad()
def input_ranges(module: nn.Module, samples: Tensor | Iterable[Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
    """``{name: (low, high)}``: the smallest and largest value of every input of every adaptable layer of
    ``module`` (by qualified name) over ``samples``, run through ``module`` in eval mode (each submodule's
    train/eval mode is restored afterwards). ``low`` and ``high`` are float64 tensors of the layer's domain
    shape (``[I]``, ``[I, d]`` or ``[C_in]``). Layers the samples do not reach are not listed.

    Raises:
        ValueError: ``samples`` empty, not tensors (or tuples of inputs and targets), or giving a layer
            non-finite inputs.
    """
    layers = {name: layer for name, layer in module.named_modules() if is_adaptable(layer)}
    found: dict[str, list[Tensor]] = {}

    def recorder(name: str):
        def hook(layer: nn.Module, args: tuple) -> None:
            values = _per_input(layer, args[0])  # [N, *domain shape]
            if values.shape[0]:
                bounds = [values.amin(0).double(), values.amax(0).double()]
                if name in found:
                    bounds = [torch.minimum(found[name][0], bounds[0]),
                              torch.maximum(found[name][1], bounds[1])]
                found[name] = bounds
        return hook

    handles = [layer.register_forward_pre_hook(recorder(name)) for name, layer in layers.items()]
    try:
        with eval_mode(module):
            batches = 0
            for batch in sample_batches(samples):
                module(batch)
                batches += 1
        if not batches:
            raise ValueError("samples must hold at least one input, got none")
    finally:
        for handle in handles:
            handle.remove()
    for name, (low, high) in found.items():
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ValueError(f"samples give layer {name or type(module).__name__!r} non-finite inputs; "
                             "adapt domains on finite samples")
    return {name: (low, high) for name, (low, high) in found.items()}


def _per_input(layer: nn.Module, x: Tensor) -> Tensor:
    """The inputs of ``layer`` as rows of its domain shape: ``[N, *domain shape]`` (with the padding value
    0 of ``input_zeros`` convolutions)."""
    shape = tuple(getattr(layer, CENTRE).shape)
    if isinstance(layer, HighOrderConv):
        channels = x.dim() - layer.dim - 1  # 0 for unbatched inputs, 1 for batched ones
        rows = x.detach().movedim(channels, -1).reshape(-1, *shape)
        if _pads_with_zeros(layer):
            rows = torch.cat((rows, rows.new_zeros(1, *shape)))
        return rows
    return x.detach().reshape(-1, *shape)


def _pads_with_zeros(layer: HighOrderConv) -> bool:
    if layer.padding_mode != "input_zeros" or layer.padding == "valid":
        return False
    if layer.padding == "same":
        return any(size > 1 for size in layer.kernel_size)
    return any(cast(tuple, layer.padding))


def _new_domain(layer: nn.Module, low: Tensor, high: Tensor, margin: float) -> tuple[Tensor, Tensor]:
    """Centre and width (float64, rounded to the layer's dtype) spanning ``[low, high]`` widened by
    ``margin``; inputs without spread keep their domain."""
    old_centre, old_width = getattr(layer, CENTRE).double(), getattr(layer, WIDTH).double()
    spread = high - low
    low, high = low - margin * spread, high + margin * spread
    dtype = getattr(layer, CENTRE).dtype
    centre = (0.5 * (low + high)).to(dtype).double()
    width = (high - low).to(dtype).double()
    scale = torch.maximum(torch.maximum(low.abs(), high.abs()), old_width)
    flat = (spread <= _FLAT_SPREAD * torch.finfo(dtype).eps * scale) | ~(width > 0)
    return torch.where(flat, old_centre, centre), torch.where(flat, old_width, width)


@torch.no_grad()
def move_domain(layer: nn.Module, centre: Tensor, width: Tensor) -> float:
    """Move the domains of one adaptable hol layer (:func:`is_adaptable`) in place to ``centre +- width/2``,
    projecting its links (module docstring); return the max change of a link function.

    Shapes: ``centre``, ``width`` as the layer's ``domain_centre`` (values are cast to the layer's dtype).

    Raises:
        ValueError: a layer that is not adaptable or has a parametrized weight, domains of another shape, or
            widths that are not positive and finite.
    """
    if not is_adaptable(layer):
        raise ValueError(f"cannot move the domains of {type(layer).__name__}: only hol layers with Lagrange "
                         "links (polynomial, continuous, discontinuous, their _prod, polynomial_nd) adapt")
    if parametrize.is_parametrized(layer, "weight"):
        raise ValueError(f"cannot move the domains of {type(layer).__name__}: its weight is parametrized")
    old_centre, old_width = getattr(layer, CENTRE), getattr(layer, WIDTH)
    centre = torch.as_tensor(centre).to(old_centre).double()
    width = torch.as_tensor(width).to(old_width).double()
    if centre.shape != old_centre.shape or width.shape != old_width.shape:
        raise ValueError(f"domains of {type(layer).__name__} must have shape {tuple(old_centre.shape)}, got "
                         f"centre {tuple(centre.shape)} and width {tuple(width.shape)}")
    if not (torch.isfinite(centre).all() and torch.isfinite(width).all() and (width > 0).all()):
        raise ValueError(f"domains need finite centres and positive finite widths, got centre "
                         f"{centre.tolist()} and width {width.tolist()}")
    basis = cast(Basis, layer.basis)
    axis_basis = _axis_basis(basis)
    dims = basis.dims if isinstance(basis, TensorLagrangeBasis) else 1
    # one affine map per input (and dimension): old reference coordinate = a + b * new reference coordinate
    b = (width / old_width.double()).reshape(-1)
    a = ((centre - old_centre.double()) * (basis.length / old_width.double())).reshape(-1)
    weight = cast(Tensor, layer.weight)
    links = _links_by_input(layer, weight.detach().double(), dims, axis_basis.width)  # [I, L, K1 x dims]
    maps = _projection_maps(axis_basis, a, b).reshape(links.shape[0], dims, axis_basis.width, -1)
    new_links = _along_axes(links, maps)
    change = _max_change(links, new_links, axis_basis, a, b, dims)
    weight.copy_(_weight_from_links(layer, new_links, weight.shape).to(weight.dtype))
    old_centre.copy_(centre)
    old_width.copy_(width)
    return change


def _change_points(basis: LagrangeBasis, a: Tensor, b: Tensor) -> Tensor:
    """Points (new reference coordinates) where the change is measured: ``4 n`` equally spaced points in every
    cell between consecutive breaks of the new grid and of the old grid mapped into it (and the old domain's
    ends, where an extrapolation other than ``polynomial`` starts), each cell's ends moved inside the cell by
    ``1e-9`` of the domain (at most a quarter of the cell), so both functions are evaluated on the cell's side
    of every break. Shape: ``a, b [N] -> [N, 4 n C]``."""
    half, segments = 0.5 * basis.length, basis.segments
    grid = -half + basis.length * torch.arange(segments + 1, dtype=torch.float64) / segments
    old_breaks = grid if basis.extrapolation != "polynomial" else grid[1:-1]
    mapped = ((old_breaks - a[:, None]) / b[:, None]).clamp(-half, half)  # [N, B]
    breaks = torch.cat((grid.expand(a.shape[0], -1), mapped), dim=1).sort(dim=1).values
    left, right = breaks[:, :-1, None], breaks[:, 1:, None]  # [N, C, 1]
    width = right - left
    inset = torch.clamp(0.25 * width, max=1e-9 * basis.length)
    t = torch.linspace(0, 1, 4 * basis.n, dtype=torch.float64)
    points = left + inset + t * (width - 2 * inset)
    # an empty cell (old breaks outside the new domain, clamped onto its ends) measures at the middle of the
    # widest cell instead, away from every break
    widest = width.argmax(dim=1, keepdim=True)
    middle = 0.5 * (left.gather(1, widest) + right.gather(1, widest))
    return torch.where(width > 0, points, middle).flatten(1)


def _axis_basis(basis: Basis) -> LagrangeBasis:
    """The one-dimensional basis along each axis of the links' coefficients, in float64."""
    if isinstance(basis, TensorLagrangeBasis):
        return LagrangeBasis(basis.n, 1, basis.length, True, basis.extrapolation, dtype=torch.float64)
    lagrange = cast(LagrangeBasis, basis)
    return LagrangeBasis(lagrange.n, lagrange.segments, lagrange.length, lagrange.continuous,
                         lagrange.extrapolation, dtype=torch.float64)


def _links_by_input(layer: nn.Module, weight: Tensor, dims: int, width: int) -> Tensor:
    """The weight as ``[inputs, links per input, K1, ..., K1]`` (``dims`` axes of ``K1 = width``), inputs in
    the order of the flattened domain (``polynomial_nd``: input ``i`` and dimension ``j`` at ``i d + j``,
    dimension ``j`` on axis ``j``)."""
    if isinstance(layer, HighOrderConv):
        groups, channels = layer.groups, layer.in_channels
        if layer.transpose:  # [C, O/g, *kernel, K]
            return weight.reshape(channels, -1, width)
        grouped = weight.reshape(groups, weight.shape[0] // groups, weight.shape[1], -1, width)  # g, O/g, C/g
        return grouped.permute(0, 2, 1, 3, 4).reshape(channels, -1, width)
    by_input = weight.transpose(0, 1)  # [I, O, K]
    return by_input.reshape(by_input.shape[0], by_input.shape[1], *([width] * dims))


def _weight_from_links(layer: nn.Module, links: Tensor, shape: torch.Size) -> Tensor:
    """Inverse of :func:`_links_by_input`."""
    if isinstance(layer, HighOrderConv):
        if layer.transpose:
            return links.reshape(shape)
        groups = layer.groups
        grouped = links.reshape(groups, shape[1], shape[0] // groups, -1, shape[-1])  # [g, C/g, O/g, k, K]
        return grouped.permute(0, 2, 1, 3, 4).reshape(shape)
    return links.reshape(links.shape[0], links.shape[1], -1).transpose(0, 1).reshape(shape)


def _projection_maps(basis: LagrangeBasis, a: Tensor, b: Tensor) -> Tensor:
    """``T[j]`` with new coefficients ``T[j] @ old`` for the affine maps ``z_old = a[j] + b[j] z_new``: the
    least-squares fit on the midpoints of ``4 n S`` equal cells of the reference domain.

    Shape: ``a, b [N] -> [N, K, K]``.
    """
    points = 4 * basis.n * basis.segments
    z = basis.length * ((torch.arange(points, dtype=torch.float64) + 0.5) / points - 0.5)
    pseudo_inverse = torch.linalg.pinv(basis(z))  # [K, P]
    step = max(1, _CHUNK_ELEMENTS // (points * basis.width))
    return torch.cat([pseudo_inverse @ basis(a[start:start + step, None] + b[start:start + step, None] * z)
                      for start in range(0, a.shape[0], step)])  # [N, K, P] @ [N, P, K]


def _along_axes(links: Tensor, matrices: Tensor) -> Tensor:
    """``links [I, L, K, ..., K]`` with axis ``2 + j`` of input ``i`` contracted with ``matrices[i, j]``
    (``[I, dims, M, K]``): ``[I, L, M, ..., M]``."""
    for axis in range(matrices.shape[1]):
        moved = links.movedim(2 + axis, -1)  # [I, L, ..., K]
        flat = moved.reshape(moved.shape[0], -1, moved.shape[-1])
        out = torch.bmm(flat, matrices[:, axis].transpose(1, 2))  # [I, rest, M]
        links = out.reshape(*moved.shape[:-1], out.shape[-1]).movedim(-1, 2 + axis)
    return links


def _max_change(old: Tensor, new: Tensor, basis: LagrangeBasis, a: Tensor, b: Tensor, dims: int) -> float:
    """``max |f_new - f_old|`` over all links on the sample of :func:`_change_points` (module docstring)."""
    z = _change_points(basis, a, b)  # [I * dims, P]
    points = z.shape[1]
    new_values = basis(z).reshape(old.shape[0], dims, points, basis.width)  # [I, dims, P, K]
    old_values = basis(a[:, None] + b[:, None] * z).reshape(old.shape[0], dims, points, basis.width)
    per_input = max(1, _CHUNK_ELEMENTS // (old[0].numel() // basis.width ** dims * points ** dims))
    change = 0.0
    for start in range(0, old.shape[0], per_input):
        chunk = slice(start, start + per_input)
        difference = (_along_axes(new[chunk], new_values[chunk])
                      - _along_axes(old[chunk], old_values[chunk]))
        if difference.numel():
            change = max(change, difference.abs().max().item())
    return change

