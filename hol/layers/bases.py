"""Bases of the link functions.

Every hol layer represents each link ``f_oi`` as ``f_oi(x) = sum_m w[o, i, m] phi_m(x)`` for a fixed basis
``phi``; this module computes ``phi`` for all kinds. The shared contract:

* Per-input domain. Input ``i`` of a layer has its own domain ``[c_i - w_i/2, c_i + w_i/2]`` (centre ``c_i``,
  width ``w_i``; the layer's buffers ``domain_centre`` and ``domain_width``, :mod:`hol.layers.domain`), mapped
  affinely onto the reference domain ``[-L/2, L/2]``, ``L = length``, before the basis is evaluated:
  ``z = (x - c_i) L / w_i`` (:func:`reference_coordinates`). Everything below is in ``z``. By default
  ``c_i = 0``, ``w_i = L``, where the map is the identity exactly. ``hol.adapt_domains`` moves the domains.
* Chebyshev-Lobatto nodes ``X_k = -cos(pi k / (n-1))``, ``k = 0..n-1`` (``n = 1`` gives ``{0}``).
* Piecewise geometry with ``S`` segments: ``u = (x + L/2) / L * S``, ``s = clamp(floor(u), 0, S-1)``
  (a breakpoint belongs to the segment on its right), local coordinate ``t = 2 (u - s) - 1`` in ``[-1, 1]``.
* ``continuous``: ``K = (n-1) S + 1`` values per link, ``m = s (n-1) + k`` is the value at node ``k`` of
  segment ``s``; neighbouring segments share their end node.
  ``discontinuous``: ``K = n S``, ``m = s n + k``. ``polynomial``: ``S = 1``, ``K = n``.
* ``fourier``: ``n`` harmonics, ``K = 2n + 1``, interleaved layout
  ``[1, cos(w x), sin(w x), cos(2 w x), sin(2 w x), ..., cos(n w x), sin(n w x)]`` with ``w = 2 pi / L``,
  so the series is periodic with period ``L``; raising ``n`` appends coefficients at the end.

Lagrange values are computed as ``phi_k(t) = sum_j T_j(t) C[j, k]``: Chebyshev polynomials ``T_j`` from
their three-term recurrence (valid for any ``t``, so extrapolation works) times a fixed ``n x n`` matrix
``C = V^{-1}`` with ``V[k, j] = T_j(X_k)``. ``V`` is well conditioned on Chebyshev-Lobatto nodes, so ``C``
(computed in float64) is accurate for large ``n`` where the monomial Vandermonde inverse is not.

Half precision: ``float16`` and ``bfloat16`` inputs are mapped to reference coordinates, located in their
segments and expanded in ``float32`` (:func:`working_dtype`; the transforms ``C`` are kept in ``float32``
in a half-precision layer), and the layers round the basis values to the half type once, before the
product with the weights. In the half type itself, ``u = (x + L/2) S / L`` keeps only ``8`` (bfloat16) or
``11`` (float16) bits, so ``t`` would be off by up to ``S 2^-8`` and an input near a break would fall into
the wrong segment: the error would grow with ``S`` (measured for ``I = O = 32``, ``n = 5``, random node
values: 25% at ``S = 32`` in bfloat16 against 0.2% for ``nn.Linear``), where rounding once keeps it within
a small factor of ``nn.Linear``'s at every ``S``. A ``float16`` layer keeps the ``float32`` basis values and
contracts them with its weights in ``float32`` (:func:`contraction_dtype`), rounding the result once:
outside its domain a link's basis values grow as ``|t|^(n-1)`` (largest value ``1.1e5`` at ``t = 15`` for
``n = 5``, ``8.3e6`` at ``t = 7`` for ``n = 8``, against float16's largest value ``65504``), while the link
itself, a combination of them with alternating signs, can stay small; ``bfloat16`` has float32's range.

Out-of-range inputs (``extrapolation``):
``polynomial`` continues the end segment's polynomial; ``clamp`` clamps ``x`` to the domain; ``linear``
continues with the end's tangent line, ``phi(t_c) + (t - t_c) phi'(t_c)`` with ``t_c = clamp(t, -1, 1)``;
``mirror`` reflects ``x`` back into the domain (mirror-periodic with period ``2L``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..checks import check_choice, check_int, check_number

EXTRAPOLATIONS = ("polynomial", "clamp", "linear", "mirror")
HALF_TYPES = (torch.float16, torch.bfloat16)
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


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype basis values are computed in for inputs of ``dtype``: ``float32`` for the half types
    (module docstring), ``dtype`` itself otherwise."""
    return torch.float32 if dtype in HALF_TYPES else dtype


def contraction_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a layer with weights of ``dtype`` multiplies its basis values and weights in: ``float32``
    for ``float16`` (whose range, up to ``65504``, basis values outside the domain leave; module docstring),
    ``dtype`` itself otherwise. The layer's result is rounded to ``dtype`` once."""
    return torch.float32 if dtype == torch.float16 else dtype


def chebyshev_lobatto_nodes(n: int, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """Nodes ``X_k = -cos(pi k / (n-1))`` on ``[-1, 1]``, ascending; ``n = 1`` gives ``[0]``.

    Shape: ``(n,)``.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n == 1:
        return torch.zeros(1, dtype=dtype, device=device)
    k = torch.arange(n, dtype=torch.float64)
    nodes = -torch.cos(math.pi * k / (n - 1))
    if n % 2 == 1:
        nodes[(n - 1) // 2] = 0.0  # exact midpoint instead of cos(pi/2) ~ 6e-17
    return nodes.to(dtype=dtype, device=device)


def _chebyshev_terms(t: Tensor, n: int) -> list[Tensor]:
    """``[T_0(t), ..., T_{n-1}(t)]`` by the recurrence ``T_{j+1} = 2 t T_j - T_{j-1}``."""
    values = [torch.ones_like(t)]
    if n > 1:
        values.append(t)
    twice = 2 * t
    for _ in range(2, n):
        values.append(twice * values[-1] - values[-2])
    return values


def _chebyshev_derivative_terms(t: Tensor, n: int) -> list[Tensor]:
    """``[T_0'(t), ..., T_{n-1}'(t)]`` with ``T_j' = j U_{j-1}`` (``U`` of the second kind, by recurrence)."""
    values = [torch.zeros_like(t)]
    u_prev, u = torch.zeros_like(t), torch.ones_like(t)  # U_{-1}, U_0
    twice = 2 * t
    for j in range(1, n):
        values.append(j * u)
        u_prev, u = u, twice * u - u_prev
    return values


def chebyshev_polynomials(t: Tensor, n: int) -> Tensor:
    """``T_j(t)`` for ``j = 0..n-1`` by the recurrence ``T_{j+1} = 2 t T_j - T_{j-1}``.

    Shape: ``(...) -> (..., n)``.
    """
    return torch.stack(_chebyshev_terms(t, n), dim=-1)


def _combine(terms: list[Tensor], transform: Tensor) -> Tensor:
    """``sum_j terms[j] C[j, k]`` for every ``k``, shape ``(..., n)``. Computed as ``C^T [n, N]`` on the terms
    stacked first (a product with a long last dimension): the same product on ``[N, n]`` rows costs several
    times more, forward and backward, in torch's CPU GEMM. ``C`` is cast to the terms' dtype (a float32 ``C``
    of a half-precision layer meets float64 terms in :mod:`hol.refine`). The result is a (non-contiguous)
    view."""
    stacked = torch.stack(terms).reshape(len(terms), terms[0].numel())  # [n, N]
    return (transform.T.to(stacked.dtype) @ stacked).T.reshape(*terms[0].shape, transform.shape[1])


def lagrange_transform(n: int) -> Tensor:
    """The float64 matrix ``C`` with ``phi_k(t) = sum_j T_j(t) C[j, k]`` (Lagrange basis on the nodes).

    Shape: ``(n, n)``.
    """
    nodes = chebyshev_lobatto_nodes(n)
    vandermonde = chebyshev_polynomials(nodes, n)  # V[k, j] = T_j(X_k)
    return torch.linalg.inv(vandermonde)


def lagrange_basis(t: Tensor, transform: Tensor) -> Tensor:
    """Lagrange basis values ``phi_k(t)`` on Chebyshev-Lobatto nodes, ``transform = lagrange_transform(n)``.

    Shape: ``(...) -> (..., n)``.
    """
    return _combine(_chebyshev_terms(t, transform.shape[0]), transform)


def lagrange_basis_derivative(t: Tensor, transform: Tensor) -> Tensor:
    """``d phi_k / dt``. Shape: ``(...) -> (..., n)``."""
    return _combine(_chebyshev_derivative_terms(t, transform.shape[0]), transform)


def lagrange_basis_extrapolated(t: Tensor, transform: Tensor, extrapolation: str) -> Tensor:
    """Lagrange basis of local coordinate ``t``; with ``extrapolation="linear"``, outside ``[-1, 1]`` the
    tangent line ``phi(t_c) + (t - t_c) phi'(t_c)`` at ``t_c = clamp(t, -1, 1)``.
    """
    if extrapolation != "linear":
        return lagrange_basis(t, transform)
    t_c = t.clamp(-1.0, 1.0)
    return (lagrange_basis(t_c, transform)
            + (t - t_c).unsqueeze(-1) * lagrange_basis_derivative(t_c, transform))


def fold_into_domain(x: Tensor, length: float, extrapolation: str) -> Tensor:
    """Apply the ``clamp`` and ``mirror`` extrapolations to ``x`` in reference coordinates (identity for the
    others)."""
    half = 0.5 * length
    if extrapolation == "clamp":
        return x.clamp(-half, half)
    if extrapolation == "mirror":
        return half - (torch.remainder(x + half, 2 * length) - length).abs()
    return x


def segment_coordinates(x: Tensor, segments: int, length: float) -> tuple[Tensor, Tensor]:
    """Segment index ``s`` (long) and local coordinate ``t`` of ``x`` in reference coordinates.

    ``u = (x + L/2) / L * S``, ``s = clamp(floor(u), 0, S-1)``, ``t = 2 (u - s) - 1``. Inside the domain
    ``t`` lies in ``[-1, 1]``; outside it continues linearly (the end segments extend). A NaN ``x`` gets
    segment 0 and a NaN ``t`` (so its values are NaN, and only its own), never an invalid index.
    """
    u = (x + 0.5 * length) * (segments / length)
    s = u.detach().floor().nan_to_num(nan=0.0).clamp(0, segments - 1)
    return s.long(), 2 * (u - s) - 1


def reference_coordinates(x: Tensor, centre: Tensor, width: Tensor, length: float) -> Tensor:
    """``z = (x - c) L / w``: inputs in their domains ``[c - w/2, c + w/2]`` mapped onto the reference
    domain ``[-L/2, L/2]``, computed as ``x s - c s`` with ``s = L / w`` (one fused op on ``x``), so the
    default domain ``c = 0``, ``w = L`` gives ``z = x`` exactly. Differentiable in ``x`` to every order.
    Computed and returned in :func:`working_dtype` (``float32`` for half-precision ``x``).

    Shapes: ``x [..., *D]``, ``centre`` and ``width`` ``D`` (broadcast over the leading dimensions) ->
    ``[..., *D]``.
    """
    dtype = working_dtype(x.dtype)
    x, centre, width = x.to(dtype), centre.to(dtype), width.to(dtype)
    scale = length / width
    return torch.addcmul(-centre * scale, x, scale)


def fourier_basis(x: Tensor, n: int, length: float) -> Tensor:
    """``[1, cos(w x), sin(w x), ..., cos(n w x), sin(n w x)]``, ``w = 2 pi / L``.

    Computed in :func:`working_dtype` (``float32`` for half-precision ``x``).

    Shape: ``(...) -> (..., 2n + 1)``.
    """
    x = x.to(working_dtype(x.dtype))
    harmonics = torch.arange(1, n + 1, dtype=x.dtype, device=x.device) * (2 * math.pi / length)
    angles = x.unsqueeze(-1) * harmonics
    pairs = torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1).flatten(-2)
    return torch.cat((torch.ones_like(x).unsqueeze(-1), pairs), dim=-1)


def piecewise_width(n: int, segments: int, continuous: bool) -> int:
    """Number of values per link ``K``: ``(n-1) S + 1`` (continuous) or ``n S`` (discontinuous)."""
    return (n - 1) * segments + 1 if continuous else n * segments


def piecewise_expand(
    x: Tensor,
    transform: Tensor,
    segments: int,
    length: float,
    continuous: bool,
    extrapolation: str = "polynomial",
) -> Tensor:
    """Dense piecewise Lagrange expansion: ``E[..., m] = phi_m(x)`` for all ``K`` values of a link.

    Each input touches the ``n`` values of its own segment, starting at ``s (n-1)`` (continuous) or ``s n``
    (discontinuous); all other entries are zero.

    Computed in :func:`working_dtype` (``float32`` for half-precision ``x``).

    Shape: ``(...) -> (..., K)``.
    """
    n = transform.shape[0]
    x = fold_into_domain(x.to(working_dtype(x.dtype)), length, extrapolation)
    s, t = segment_coordinates(x, segments, length)
    local = lagrange_basis_extrapolated(t, transform, extrapolation)  # (..., n)
    if segments == 1:
        return local
    stride = n - 1 if continuous else n
    index = (s * stride).unsqueeze(-1) + torch.arange(n, device=x.device)
    width = piecewise_width(n, segments, continuous)
    out = local.new_zeros(*x.shape, width)
    return out.scatter(-1, index, local)


def piecewise_node_positions(n: int, segments: int, length: float, continuous: bool) -> Tensor:
    """Positions (float64, reference coordinates ``z``) of the ``K`` values of a link,
    ``-L/2 + L (2s + 1 + X_k) / (2S)``.

    For discontinuous links the shared break points appear twice (left and right limit).
    """
    nodes = chebyshev_lobatto_nodes(n)
    s = torch.arange(segments, dtype=torch.float64).unsqueeze(-1)
    positions = -0.5 * length + length * (2 * s + 1 + nodes) / (2 * segments)  # (S, n)
    if not continuous:
        return positions.flatten()
    return torch.cat((positions[:, :-1].flatten(), positions[-1:, -1]))


def _working_copy(constant: Tensor, like: Tensor) -> Tensor:
    """The float64 ``constant`` on ``like``'s device in the :func:`working_dtype` of ``like``'s dtype."""
    return constant.to(like.device, working_dtype(like.dtype))


class Basis(torch.nn.Module):
    """A fixed basis ``phi`` of ``width`` functions: ``forward(x) = phi(x)``, shape ``(...) -> (..., width)``.

    Constants are float64-accurate buffers: they are recomputed in float64 and cast after every ``.to()``,
    ``.double()`` or ``.float()``, so moving a layer to float64 makes it exact again; in a half-precision
    layer they stay ``float32`` (:func:`working_dtype`).
    """

    width: int
    nodal: bool = False  # weights are values of the function at ``node_positions()``

    def _refresh_constants(self, like: Tensor | None = None) -> None:
        """Recompute buffers from float64 at their current device and dtype, or at those of ``like``."""

    def follow(self, weight: Tensor) -> None:
        """Put the constants on ``weight``'s device, in the :func:`working_dtype` of its dtype: for a layer
        whose parameters were replaced rather than moved (``load_state_dict(..., assign=True)`` into a layer
        built on the meta device), which leaves its non-persistent buffers where they were."""
        self._refresh_constants(weight)

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
