"""Bases of the link functions.

Every hol layer represents each link ``f_oi`` as ``f_oi(x) = sum_m w[o, i, m] phi_m(x)`` for a fixed basis
``phi``; this module computes ``phi`` for all kinds. The shared contract:

* Per-input domain. Input ``i`` of a layer has its own domain ``[c_i - w_i/2, c_i + w_i/2]`` (centre ``c_i``,
  width ``w_i``; the layer's buffers ``domain_centre`` and ``domain_width``, :mod:`hol.layers.domain`), mapped
  affinely onto the reference domain ``[-L/2, L/2]``, ``L = length``, before the basis is evaluated:
  ``z = (x - c_i) L / w_i`` (:func:`~hol.ops.lagrange.reference_coordinates`). Everything below is in
  ``z``. By default ``c_i = 0``, ``w_i = L``, where the map is the identity exactly. ``hol.adapt_domains``
  moves the domains.
* Chebyshev-Lobatto nodes, the piecewise geometry, the Lagrange values, half precision and
  extrapolation: :mod:`hol.ops.lagrange`.
* ``fourier``: ``n`` harmonics, ``K = 2n + 1``, interleaved layout
  ``[1, cos(w x), sin(w x), cos(2 w x), sin(2 w x), ..., cos(n w x), sin(n w x)]`` with ``w = 2 pi / L``,
  so the series is periodic with period ``L``; raising ``n`` appends coefficients at the end.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_choice, check_int, check_number
from ..ops.lagrange import (
    EXTRAPOLATIONS,
    chebyshev_lobatto_nodes,
    lagrange_transform,
    piecewise_expand,
    piecewise_node_positions,
    piecewise_width,
    segment_basis,
    working_dtype,
)

PIECEWISE_FAMILIES = ("continuous", "discontinuous")
BASIS_OPTIONS: dict[str, tuple[str, ...]] = {
    "polynomial": ("n", "length", "extrapolation"),
    "continuous": ("n", "segments", "length", "extrapolation"),
    "discontinuous": ("n", "segments", "length", "extrapolation"),
    "fourier": ("n", "length"),
    "identity": (),
    "tensor": ("n", "length", "extrapolation", "dims"),
}
"""The basis families (:func:`make_basis`) and the hyperparameters each one takes."""


def fourier_basis(x: Tensor, n: int, length: float) -> Tensor:
    """``[1, cos(w x), sin(w x), ..., cos(n w x), sin(n w x)]``, ``w = 2 pi / L``.

    Computed in :func:`~hol.ops.lagrange.working_dtype` (``float32`` for half-precision ``x``).

    Shape: ``(...) -> (..., 2n + 1)``.
    """
    x = x.to(working_dtype(x.dtype))
    harmonics = torch.arange(1, n + 1, dtype=x.dtype, device=x.device) * (2 * math.pi / length)
    angles = x.unsqueeze(-1) * harmonics
    pairs = torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1).flatten(-2)
    return torch.cat((torch.ones_like(x).unsqueeze(-1), pairs), dim=-1)


def _working_copy(constant: Tensor, like: Tensor) -> Tensor:
    """The float64 ``constant`` on ``like``'s device in the :func:`~hol.ops.lagrange.working_dtype` of
    ``like``'s dtype."""
    return constant.to(like.device, working_dtype(like.dtype))


class Basis(torch.nn.Module):
    """A fixed basis ``phi`` of ``width`` functions: ``forward(x) = phi(x)``, shape ``(...) -> (..., width)``.

    Constants are float64-accurate buffers: they are recomputed in float64 and cast after every ``.to()``,
    ``.double()`` or ``.float()``, so moving a layer to float64 makes it exact again; in a half-precision
    layer they stay ``float32`` (:func:`~hol.ops.lagrange.working_dtype`).
    """

    width: int
    nodal: bool = False  # weights are values of the function at ``node_positions()``

    def _refresh_constants(self, like: Tensor | None = None) -> None:
        """Recompute buffers from float64 at their current device and dtype, or at those of ``like``."""

    def follow(self, weight: Tensor) -> None:
        """Put the constants on ``weight``'s device, in the :func:`~hol.ops.lagrange.working_dtype` of its
        dtype: for a layer whose parameters were replaced rather than moved (``load_state_dict(...,
        assign=True)`` into a layer built on the meta device), which leaves its non-persistent buffers where
        they were."""
        self._refresh_constants(weight)

    def active(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The basis values every input touches and their offset among the ``width`` values: here the whole
        expansion, offset 0 (piecewise bases return only the values of the input's segment). Differentiable
        torch ops, so derivatives in ``x`` of every order come from autograd.

        Shapes: ``x [..., I]`` (``[..., I, d]`` for tensor-product bases) -> ``phi [..., I, n]``,
        ``base [..., I]`` (int64).
        """
        phi = self(x)
        return phi, torch.zeros(phi.shape[:-1], dtype=torch.long, device=phi.device)

    def node_positions(self) -> Tensor:
        """Positions (float64) of the nodal values, for nodal bases. Shape: ``(width,)`` or ``(width, d)``."""
        raise TypeError(f"{type(self).__name__} is not a nodal basis")

    def _apply(self, fn, recurse=True):
        module = super()._apply(fn, recurse)
        self._refresh_constants()
        return module


class LagrangeBasis(Basis):
    """Piecewise Lagrange basis on Chebyshev-Lobatto nodes (``continuous``, ``discontinuous``,
    ``polynomial``).

    Args:
        n: nodes per segment (polynomial degree ``n - 1``).
        segments: number of segments ``S`` of the domain ``[-L/2, L/2]``.
        length: ``L``.
        continuous: share end nodes between neighbouring segments (``K = (n-1) S + 1``) or not (``K = n S``).
        extrapolation: ``polynomial``, ``clamp``, ``linear`` or ``mirror``.
    """

    nodal = True
    transform: Tensor

    def __init__(self, n: int, segments: int = 1, length: float = 2.0, continuous: bool = True,
                 extrapolation: str = "polynomial", dtype=None, device=None):
        super().__init__()
        self.n, self.segments, self.length = n, segments, float(length)
        self.continuous, self.extrapolation = continuous, extrapolation
        self.width = piecewise_width(n, segments, continuous)
        dtype = working_dtype(dtype or torch.get_default_dtype())
        self.register_buffer("transform", lagrange_transform(n).to(dtype=dtype, device=device),
                             persistent=False)

    def _refresh_constants(self, like: Tensor | None = None) -> None:
        self.transform = _working_copy(lagrange_transform(self.n), self.transform if like is None else like)

    def forward(self, x: Tensor) -> Tensor:
        return piecewise_expand(x, self.transform, self.segments, self.length, self.continuous,
                                self.extrapolation)

    def active(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """With ``segments > 1``, the ``n`` values of each input's segment, offset ``s (n-1)`` (continuous) or
        ``s n`` (:func:`~hol.ops.lagrange.segment_basis`); the whole expansion otherwise."""
        if self.segments == 1:
            return super().active(x)
        return segment_basis(x, self.transform, self.segments, self.length, self.continuous,
                             self.extrapolation)

    def node_positions(self) -> Tensor:
        """Positions (float64, reference coordinates ``z``) of the ``K`` nodal values. Shape: ``(K,)``."""
        return piecewise_node_positions(self.n, self.segments, self.length, self.continuous)

    def extra_repr(self) -> str:
        return (f"n={self.n}, segments={self.segments}, length={self.length}, continuous={self.continuous}, "
                f"extrapolation={self.extrapolation!r}")


class FourierBasis(Basis):
    """Fourier basis with ``n`` harmonics, period ``L``, interleaved layout (see the module docstring)."""

    def __init__(self, n: int, length: float = 2.0):
        super().__init__()
        self.n, self.length = n, float(length)
        self.width = 2 * n + 1

    def forward(self, x: Tensor) -> Tensor:
        return fourier_basis(x, self.n, self.length)

    def extra_repr(self) -> str:
        return f"n={self.n}, length={self.length}"


class IdentityBasis(Basis):
    """``phi(x) = [x]``: linear links ``f(x) = w x`` (the ``product`` kind)."""

    width = 1

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(-1)


class TensorLagrangeBasis(Basis):
    """Tensor-product Lagrange basis of a ``d``-vector, ``n`` Chebyshev-Lobatto nodes per dimension.

    ``phi_m(x) = prod_j phi_{k_j}(x_j)`` with row-major ``m = sum_j k_j n^(d-1-j)`` (first dimension slowest).

    Shape: ``(..., d) -> (..., n^d)``.
    """

    nodal = True
    transform: Tensor

    def __init__(self, n: int, dims: int, length: float = 2.0, extrapolation: str = "polynomial",
                 dtype=None, device=None):
        super().__init__()
        self.n, self.dims, self.length, self.extrapolation = n, dims, float(length), extrapolation
        self.width = n**dims
        dtype = working_dtype(dtype or torch.get_default_dtype())
        self.register_buffer("transform", lagrange_transform(n).to(dtype=dtype, device=device),
                             persistent=False)

    def _refresh_constants(self, like: Tensor | None = None) -> None:
        self.transform = _working_copy(lagrange_transform(self.n), self.transform if like is None else like)

    def forward(self, x: Tensor) -> Tensor:
        per_dim = piecewise_expand(x, self.transform, 1, self.length, True, self.extrapolation)  # (..., d, n)
        out = per_dim[..., 0, :]
        for j in range(1, self.dims):
            out = (out.unsqueeze(-1) * per_dim[..., j, :].unsqueeze(-2)).flatten(-2)
        return out

    def node_positions(self) -> Tensor:
        """Grid positions (float64, reference coordinates) of the ``n^d`` nodal values.

        Shape: ``(n^d, d)``."""
        nodes = 0.5 * self.length * chebyshev_lobatto_nodes(self.n)
        grids = torch.meshgrid(*([nodes] * self.dims), indexing="ij")
        return torch.stack(grids, dim=-1).reshape(-1, self.dims)

    def extra_repr(self) -> str:
        return f"n={self.n}, dims={self.dims}, length={self.length}, extrapolation={self.extrapolation!r}"


def make_basis(family: str, *, n: int, segments: int, length: float, extrapolation: str, dims: int | None,
               device=None, dtype=None) -> Basis:
    """The basis of a ``family`` (a key of :data:`BASIS_OPTIONS`), after checking its hyperparameters.

    ``n``: nodes per segment (at least 2 for the piecewise families, 1 otherwise), harmonics for ``fourier``;
    ``segments`` must be 1 except for the piecewise families; ``dims`` is required by ``tensor`` and must be
    ``None`` otherwise. Hyperparameters a family does not take (:data:`BASIS_OPTIONS`) are not used.

    Raises:
        ValueError: naming the bad hyperparameter, its value and what is allowed.
    """
    check_choice("basis family", family, BASIS_OPTIONS)
    options = BASIS_OPTIONS[family]
    piecewise = family in PIECEWISE_FAMILIES
    if "n" in options:
        check_int("n", n, 2 if piecewise else 1, why=" for piecewise kinds" if piecewise else "")
    check_int("segments", segments, 1)
    if not piecewise and segments != 1:
        raise ValueError(f"segments must be 1 for {family} links, got {segments!r}")
    check_number("length", length, 0, above=True)
    if "extrapolation" in options:
        check_choice("extrapolation", extrapolation, EXTRAPOLATIONS)
    if family == "tensor":
        return TensorLagrangeBasis(n, check_int("dims", dims, 1), length, extrapolation, dtype=dtype,
                                   device=device)
    if dims is not None:
        raise ValueError(f"dims is only used by tensor-product links (polynomial_nd), got dims={dims!r}")
    if family == "fourier":
        return FourierBasis(n, length)
    if family == "identity":
        return IdentityBasis()
    return LagrangeBasis(n, segments, length, continuous=family == "continuous", extrapolation=extrapolation,
                         dtype=dtype, device=device)
