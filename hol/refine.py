"""h/p refinement of every hol layer inside any ``nn.Module`` tree.

``refine(module, n=..., segments=...)`` returns a copy of ``module`` in which every hol layer (fully
connected, convolutional or transposed convolutional: any submodule with a :class:`~hol.layers.bases.Basis`
``.basis``, a ``.weight`` whose last dimension holds the ``K`` coefficients of each link, and ``.hparams()``)
is rebuilt with order ``n`` and/or ``S = segments`` and carries the same link functions, exactly where the
new basis contains the old one and as a least-squares projection where it does not.

Which layers change:

* ``n`` applies to every basis kind (``polynomial``, ``continuous``, ``discontinuous``, ``fourier``,
  ``polynomial_nd`` and the ``*_prod`` kinds). For Fourier links ``n`` is the number of harmonics.
* ``segments`` applies to the piecewise kinds (``continuous``, ``discontinuous`` and their ``_prod``) only.
* ``product`` (linear links) and the ``linear``/``relu`` baselines are left untouched.

Mathematics (every transform in float64, cast back to the layer's dtype at the end). Each link
``f(x) = sum_m w[m] phi_m(x)`` is mapped by one linear map ``w_new = w_old A`` shared by all links:

* **Exact** (the new space contains the old one):

  - Lagrange kinds with ``n_new >= n_old`` and ``S_new`` a multiple of ``S_old`` (p-, h- or hp-refinement):
    the new nodal values are the old piecewise polynomial evaluated at the new nodes. A new segment lies
    inside exactly one old segment, the one containing its midpoint; all of its nodes, its end nodes
    included, are evaluated with that old segment's polynomial, so a new end node on an old break takes
    the old limit from the new segment's side (this is what keeps ``discontinuous`` jumps exact).
    Since every new segment carries its old segment's polynomial, the refined links are identical to the
    old ones everywhere, extrapolation outside the domain included.
  - ``polynomial_nd``: the same one-dimensional map applied along every dimension (tensor product).
  - ``fourier`` with more harmonics: the new coefficients are zero (the interleaved layout appends).

* **Approximate** (coarsening, or a segment count that is not a multiple of the old one): the least-squares
  projection onto the new space on a uniform sample of the domain (midpoints of ``P`` equal cells, ``P`` a
  multiple of both segment counts so no sample sits on a break, at least ``4 n`` samples per segment);
  for ``polynomial_nd`` the tensor product of the one-dimensional projections; for ``fourier`` with fewer
  harmonics the truncated series, which is the ``L^2`` projection.

Every refined layer's max change, ``max |f_new(x) - f_old(x)|`` over all of its links and over that sample
of the domain, is measured and reported: ``refine`` records the largest one on the returned module as
``refine_max_change``; :func:`refine_with_report` returns it per layer. Exact refinements report rounding
error only (~1e-16 relative in float64).

The refined layers are rebuilt through :func:`hol.layers.fc` / :func:`hol.layers.conv` from their
``hparams()`` with the new ``n``/``segments``, so their ``hparams()`` (and those of the networks in
:mod:`hol.networks`, which read their layers) describe the refined model and a checkpoint of it can be
rebuilt and loaded. Everything else about a refined layer carries over: each parameter's ``requires_grad``,
train/eval mode, dtype, device, attributes set on it and its parametrizations (``weight_norm``, registered
again on the refined weight, whose value it keeps); hooks cannot (they may depend on the old shapes), nor a
parametrization that does not take the new shape, and refining a layer that has them warns.

This module is itself callable: ``hol.refine(net, n=5)`` is :func:`refine` (so the module is not shadowed by
its main function, and ``from hol.refine import refine_with_report`` works as well).
"""
from __future__ import annotations

import copy
import math
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .checks import check_int
from .layers import registry
from .layers.bases import (
    Basis,
    FourierBasis,
    IdentityBasis,
    LagrangeBasis,
    TensorLagrangeBasis,
    fourier_basis,
)
from .layers.fully_connected import HighOrderLinear
from .layers.registry import kind_info
from .ops.lagrange import chebyshev_lobatto_nodes, lagrange_basis, lagrange_transform, piecewise_expand

_CHUNK_ELEMENTS = 1 << 22  # bound on the [links, samples] blocks evaluated at once when measuring changes


def refine(module: nn.Module, n: int | None = None, segments: int | None = None) -> nn.Module:
    """A copy of ``module`` with every hol layer at order ``n`` and/or ``segments`` segments.

    The input is left untouched. The largest change of any link function (see the module docstring) is
    recorded on the result as the float attribute ``refine_max_change`` (``0.0`` when no layer changed).

    Args:
        module: any ``nn.Module``; hol layers anywhere in its tree are refined (the module itself may be one).
        n: new order (nodes per segment; harmonics for ``fourier``), or ``None`` to keep each layer's.
        segments: new segment count of the piecewise kinds, or ``None`` to keep each layer's.

    Examples::

        >>> import torch, hol
        >>> net = hol.networks.MLP("continuous", 4, 2, 1, 8, n=2)
        >>> finer = hol.refine(net, n=5, segments=4)  # same function, more freedom
        >>> finer.refine_max_change < 1e-6  # rounding only (float32): the refinement is exact
        True
        >>> x = torch.rand(16, 4) * 2 - 1
        >>> torch.allclose(finer(x), net(x), atol=1e-5)
        True
    """
    refined, report = refine_with_report(module, n, segments)
    refined.refine_max_change = max(report.values(), default=0.0)  # type: ignore[assignment]  # a float attribute
    return refined


@torch.no_grad()
def refine_with_report(module: nn.Module, n: int | None = None,
                       segments: int | None = None) -> tuple[nn.Module, dict[str, float]]:
    """Like :func:`refine`, returning ``(refined_module, report)`` with ``report[name]`` the max change of
    each refined layer, ``name`` its qualified name in the module tree (``""`` for ``module`` itself). Layers
    the refinement leaves as they are (baselines, ``product``, unchanged hyperparameters) are not listed.
    """
    if n is None and segments is None:
        raise ValueError("refine needs n or segments, got neither")
    for name, value in (("n", n), ("segments", segments)):
        if value is not None:
            check_int(name, value, 1)
    refined = copy.deepcopy(module)
    report: dict[str, float] = {}
    if is_hol_layer(refined):
        new_layer = _refine_layer(refined, n, segments, report, "")
        return (new_layer if new_layer is not None else refined), report
    _refine_children(refined, "", n, segments, report, {})
    return refined, report


def is_hol_layer(module: nn.Module) -> bool:
    """Whether ``module`` is a hol layer: a ``Basis`` ``.basis``, a ``.weight`` (``K`` last) and
    ``.hparams()``."""
    return (isinstance(getattr(module, "basis", None), Basis)
            and isinstance(getattr(module, "weight", None), Tensor)
            and callable(getattr(module, "hparams", None)))


def _refine_children(parent: nn.Module, prefix: str, n, segments, report: dict, done: dict) -> None:
    """Replace every hol layer below ``parent`` by its refinement; ``done`` maps ids of layers already
    refined to their replacement, so a layer shared by several parents stays shared."""
    for name, child in list(parent._modules.items()):  # named_children() would skip repeats of a shared child
        qualified = f"{prefix}.{name}" if prefix else name
        if child is None:
            continue
        if id(child) in done:
            setattr(parent, name, done[id(child)])
        elif is_hol_layer(child):
            done[id(child)] = _refine_layer(child, n, segments, report, qualified) or child
            setattr(parent, name, done[id(child)])
        else:
            _refine_children(child, qualified, n, segments, report, done)


def _parts(layer: nn.Module) -> tuple[Basis, Tensor, dict]:
    """The basis, weight and hyperparameters of a hol layer (:func:`is_hol_layer`)."""
    return cast(Basis, layer.basis), cast(Tensor, layer.weight), cast(Callable[[], dict], layer.hparams)()


def _new_hparams(layer: nn.Module, n, segments) -> dict | None:
    """The layer's hyperparameters with the new ``n``/``segments``, or ``None`` when nothing changes."""
    basis, _, old = _parts(layer)
    if isinstance(basis, IdentityBasis):
        return None
    new = dict(old)
    if n is not None:
        new["n"] = n
    if segments is not None and kind_info(old["kind"]).piecewise:
        new["segments"] = segments
    return None if new == old else new


def _refine_layer(layer: nn.Module, n, segments, report: dict, name: str) -> nn.Module | None:
    """The refined replacement of one hol layer (``None`` if it stays as it is); records its max change."""
    hparams = _new_hparams(layer, n, segments)
    if hparams is None:
        return None
    basis, weight, _ = _parts(layer)
    build = registry.fc if isinstance(layer, HighOrderLinear) else registry.conv
    # the new layer's initial values are overwritten: leave the RNG as is
    with torch.random.fork_rng(devices=[]):
        new_layer = build(**hparams).to(device=weight.device, dtype=weight.dtype)
    new_basis, new_weight, _ = _parts(new_layer)
    old_weight = weight.detach().to(torch.float64)
    links = old_weight.reshape(-1, old_weight.shape[-1])  # [L, K_old]
    new_links = transfer(links, basis, new_basis)  # [L, K_new]
    expected = (*weight.shape[:-1], new_basis.width)
    if tuple(new_weight.shape) != expected:
        raise RuntimeError(f"refined {type(layer).__name__} has weight shape {tuple(new_weight.shape)}, "
                           f"expected {expected}")
    parametrized = getattr(layer, "parametrizations", None) or {}
    state = {key: value for key, value in layer.state_dict().items()
             if not key.startswith("parametrizations.")}
    state.update({tensor: getattr(layer, tensor).detach() for tensor in parametrized})  # their values
    state["weight"] = new_links.reshape(expected).to(weight.dtype)
    new_layer.load_state_dict(state)
    carried = _carry_parametrizations(layer, new_layer)
    _carry_state(layer, new_layer, name, carried)
    report[name] = max_change(links, basis, new_links, new_basis)
    return new_layer


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
          "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
          "_load_state_dict_post_hooks")


def _carry_parametrizations(old: nn.Module, new: nn.Module) -> bool:
    """Register the old layer's parametrizations (e.g. ``weight_norm``) on the refined layer, in order, each
    from the refined tensor's value (``register_parametrization`` initializes it by the parametrization's
    ``right_inverse``, as when it was first registered): the same function, parametrized the same way.
    Whether all of them were carried (one that cannot take the new shape is not)."""
    for tensor, stack in (getattr(old, "parametrizations", None) or {}).items():
        for parametrization in stack:
            try:
                parametrize.register_parametrization(new, tensor, copy.deepcopy(parametrization))
            except (RuntimeError, ValueError):
                return False
    for hook in _parametrization_hooks(old):  # e.g. weight_norm's, reading its old state-dict keys
        new._register_load_state_dict_pre_hook(hook.hook, with_module=hook.with_module)
    return True


def _parametrization_hooks(module: nn.Module) -> list:
    """The state-dict hooks torch's parametrization helpers registered on ``module`` (``weight_norm`` adds
    one that renames the keys of old checkpoints; it reads names, not shapes, so it carries over)."""
    return [hook for hook in module._load_state_dict_pre_hooks.values()
            if getattr(getattr(hook, "hook", None), "__module__", "") == "torch.nn.utils.parametrizations"]


def _carry_state(old: nn.Module, new: nn.Module, name: str, parametrizations_carried: bool = True) -> None:
    """Give the refined layer everything of the old one that is not a shape: each parameter's
    ``requires_grad`` (a frozen weight or bias stays frozen), the train/eval mode of the layer and its
    submodules, and plain attributes set on the layer (dtype and device come with the parameters). Hooks
    cannot be carried (they may depend on the old shapes), nor parametrizations that
    :func:`_carry_parametrizations` could not register again: a ``UserWarning`` names them."""
    new_parameters = dict(new.named_parameters())
    for key, parameter in old.named_parameters():
        if key in new_parameters:
            new_parameters[key].requires_grad_(parameter.requires_grad)
    modes = {key: module.training for key, module in old.named_modules()}
    for key, module in new.named_modules():
        module.train(modes.get(key, old.training))
    for key, value in vars(old).items():
        if not key.startswith("_") and key not in vars(new):
            setattr(new, key, value)  # attributes a user set on the layer
    carried = {id(hook) for hook in _parametrization_hooks(old)} if parametrizations_carried else set()
    lost = [kind.strip("_").replace("_", " ") for module in old.modules() for kind in _HOOKS
            if any(id(hook) not in carried for hook in getattr(module, kind, {}).values())]
    if not parametrizations_carried:
        lost.append("parametrizations")
    if lost:
        what, layer = ", ".join(sorted(set(lost))), name or type(old).__name__
        warnings.warn(f"hol.refine: {what} of layer {layer!r} are not carried over to the refined layer "
                      "(register them again on it)", UserWarning, stacklevel=4)


# --- the linear maps between bases ------------------------------------------------------------------------

def transfer(links: Tensor, old: Basis, new: Basis) -> Tensor:
    """Coefficients in ``new`` of the link functions with coefficients ``links`` in ``old`` (float64).

    Exact where ``new`` contains ``old`` (see the module docstring), least squares otherwise.

    Shape: ``[L, K_old] -> [L, K_new]``.
    """
    if type(old) is not type(new) or getattr(old, "length", None) != getattr(new, "length", None):
        raise ValueError(f"cannot refine {old!r} into {new!r}: the basis family and length must be the same")
    if isinstance(old, FourierBasis):
        width = min(old.width, new.width)
        out = links.new_zeros(links.shape[0], new.width)
        out[:, :width] = links[:, :width]  # pad with zeros (exact) or truncate (L2 projection)
        return out
    if isinstance(old, TensorLagrangeBasis) and isinstance(new, TensorLagrangeBasis):
        identity = torch.eye(old.n, dtype=links.dtype, device=links.device)
        matrix = _lagrange_map(identity, old.n, 1, new.n, 1, continuous=True)  # [n_old, n_new]
        grid = links.reshape(links.shape[0], *([old.n] * old.dims))
        for axis in range(1, old.dims + 1):
            grid = torch.movedim(torch.tensordot(grid, matrix, dims=([axis], [0])), -1, axis)
        return grid.reshape(links.shape[0], -1)
    if isinstance(old, LagrangeBasis) and isinstance(new, LagrangeBasis):
        if old.continuous != new.continuous:
            raise ValueError("cannot refine between continuous and discontinuous links")
        return _lagrange_map(links, old.n, old.segments, new.n, new.segments, old.continuous)
    raise ValueError(f"no refinement for basis {type(old).__name__}")


def _lagrange_map(links: Tensor, n_old: int, s_old: int, n_new: int, s_new: int, continuous: bool) -> Tensor:
    """Piecewise Lagrange coefficients ``[L, K_old] -> [L, K_new]``: exact when nested, else least squares."""
    if n_new >= n_old and s_new % s_old == 0:
        return _nested_lagrange(links, n_old, s_old, n_new, s_new, continuous)
    return links @ _least_squares_matrix(n_old, s_old, n_new, s_new, continuous).to(links.device)


def _segment_values(links: Tensor, n: int, segments: int, continuous: bool) -> Tensor:
    """Nodal values per segment. Shape: ``[L, K] -> [L, S, n]``."""
    stride = n - 1 if continuous else n
    index = (torch.arange(segments, device=links.device)[:, None] * stride
             + torch.arange(n, device=links.device))
    return links[:, index]


def _from_segment_values(values: Tensor, continuous: bool) -> Tensor:
    """Inverse of :func:`_segment_values` (a shared end node is taken from the segment on its right).

    Shape: ``[L, S, n] -> [L, K]``.
    """
    if not continuous:
        return values.flatten(1)
    return torch.cat((values[:, :, :-1].flatten(1), values[:, -1, -1:]), dim=1)


def _nested_lagrange(links: Tensor, n_old: int, s_old: int, n_new: int, s_new: int,
                     continuous: bool) -> Tensor:
    """Exact refinement when each new segment lies inside one old segment and ``n_new >= n_old``: the old
    links evaluated at the new nodes, each new segment with the polynomial of the old segment containing
    it."""
    nodes = chebyshev_lobatto_nodes(n_new, device=links.device)
    new_values = _evaluate_in_cells(links, n_old, s_old, continuous, s_new, nodes)  # [L, S_new, n_new]
    return _from_segment_values(new_values, continuous)


def _evaluate_in_cells(links: Tensor, n: int, segments: int, continuous: bool, cells: int,
                       t: Tensor) -> Tensor:
    """Piecewise Lagrange links at local coordinates ``t`` of each of ``cells`` equal cells of the domain
    (``cells`` a multiple of ``segments``), each cell with the polynomial of the segment containing it, so a
    cell's end on a break takes the limit from the cell's side.

    With ``r = cells / segments``, cell ``s r + j`` lies in segment ``s``; its local coordinate ``t`` is
    ``(2 j + 1 + t) / r - 1`` in that segment.

    Shape: ``[L, K] -> [L, cells, len(t)]``.
    """
    ratio = cells // segments
    j = torch.arange(ratio, dtype=torch.float64, device=links.device)[:, None]
    basis = lagrange_basis((2 * j + 1 + t) / ratio - 1, lagrange_transform(n).to(links.device))  # [r, T, n]
    values = _segment_values(links, n, segments, continuous)  # [L, S, n]
    return torch.einsum("lsa,jta->lsjt", values, basis).reshape(links.shape[0], cells, t.shape[0])


def _sample_count(n_old: int, s_old: int, n_new: int, s_new: int) -> int:
    """``P``: a multiple of both segment counts with at least ``4 max(n)`` samples per segment."""
    cells = math.lcm(s_old, s_new)
    per_cell = max(1, math.ceil(4 * max(n_old, n_new) * max(s_old, s_new) / cells))
    return cells * per_cell


def _least_squares_matrix(n_old: int, s_old: int, n_new: int, s_new: int, continuous: bool) -> Tensor:
    """``A`` with ``w_new = w_old A``, the least-squares projection on the midpoint sample (float64, CPU).

    Shape: ``[K_old, K_new]``.
    """
    points = _sample_count(n_old, s_old, n_new, s_new)
    x = -1 + (2 * torch.arange(points, dtype=torch.float64) + 1) / points  # length 2: the map is scale-free
    old_values = piecewise_expand(x, lagrange_transform(n_old), s_old, 2.0, continuous)  # [P, K_old]
    new_values = piecewise_expand(x, lagrange_transform(n_new), s_new, 2.0, continuous)  # [P, K_new]
    return torch.linalg.lstsq(new_values, old_values).solution.T


# --- measuring the change ---------------------------------------------------------------------------------

def max_change(old_links: Tensor, old: Basis, new_links: Tensor, new: Basis) -> float:
    """``max |f_new(x) - f_old(x)|`` over all links and a uniform sample of the domain (float64).

    Lagrange links: the cells of the common refinement of both segment grids, each sampled at ``m`` equally
    spaced points including both of its ends (the limits from the cell's side at breaks), at least
    ``4 max(n)`` points per segment in all (cost ``O(L P n)``); ``polynomial_nd``: ``4 max(n)`` equally spaced
    points per dimension, ends included, on the tensor grid; Fourier links: ``8 max(n) + 1`` points of one
    period.
    """
    if isinstance(old, LagrangeBasis) and isinstance(new, LagrangeBasis):
        cells = math.lcm(old.segments, new.segments)
        t = torch.linspace(-1, 1, _sample_count(old.n, old.segments, new.n, new.segments) // cells + 1,
                           dtype=torch.float64, device=old_links.device)
        points = cells * t.shape[0]

        def values(w: Tensor, b: Any) -> Tensor:
            return _evaluate_in_cells(w, b.n, b.segments, b.continuous, cells, t).flatten(1)
    elif isinstance(old, TensorLagrangeBasis) and isinstance(new, TensorLagrangeBasis):
        points = 4 * max(old.n, new.n)

        def values(w: Tensor, b: Any) -> Tensor:
            return _tensor_samples(w, b, points)
    elif isinstance(old, FourierBasis) and isinstance(new, FourierBasis):
        points = 8 * max(old.n, new.n) + 1
        x = old.length * (torch.arange(points, dtype=torch.float64, device=old_links.device) / points - 0.5)

        def values(w: Tensor, b: Any) -> Tensor:
            return w @ fourier_basis(x, b.n, b.length).T
    else:
        raise ValueError(f"cannot compare links in {old!r} and {new!r}")
    rows = max(1, _CHUNK_ELEMENTS // points ** getattr(old, "dims", 1))
    change = 0.0
    for start in range(0, old_links.shape[0], rows):
        chunk = slice(start, start + rows)
        difference = values(new_links[chunk], new) - values(old_links[chunk], old)
        change = max(change, difference.abs().max().item())
    return change


def _tensor_samples(links: Tensor, basis: TensorLagrangeBasis, points: int) -> Tensor:
    """Link values on the tensor grid of ``points`` equally spaced points per dimension, ends included.

    Shape: ``[L, K] -> [L, P^d]``.
    """
    t = torch.linspace(-1, 1, points, dtype=torch.float64, device=links.device)
    local = lagrange_basis(t, lagrange_transform(basis.n).to(links.device))  # [P, n]
    grid = links.reshape(links.shape[0], *([basis.n] * basis.dims))
    for axis in range(1, basis.dims + 1):
        grid = torch.movedim(torch.tensordot(grid, local, dims=([axis], [1])), -1, axis)
    return grid.reshape(links.shape[0], -1)


class _CallableModule(types.ModuleType):
    """The type of this module: calling it calls :func:`refine`."""

    def __call__(self, module: nn.Module, n: int | None = None, segments: int | None = None) -> nn.Module:
        return refine(module, n, segments)


sys.modules[__name__].__class__ = _CallableModule
