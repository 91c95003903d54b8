"""The piecewise Lagrange basis as tensor math: Chebyshev-Lobatto nodes, the segment geometry (segment index,
local coordinate, extrapolation) and the basis values, written once for the layers (:mod:`hol.layers.bases`),
the functional API (:mod:`hol.functional`) and the operators' torch formulas and cost model (:mod:`hol.ops`).

Everything is in reference coordinates ``z`` (:func:`reference_coordinates` maps a layer's per-input domains
onto ``[-L/2, L/2]``, ``L = length``):

* Chebyshev-Lobatto nodes ``X_k = -cos(pi k / (n-1))``, ``k = 0..n-1`` (``n = 1`` gives ``{0}``).
* Piecewise geometry with ``S`` segments: ``u = (x + L/2) / L * S``, ``s = clamp(floor(u), 0, S-1)``
  (a breakpoint belongs to the segment on its right), local coordinate ``t = 2 (u - s) - 1`` in ``[-1, 1]``.
* ``continuous``: ``K = (n-1) S + 1`` values per link, ``m = s (n-1) + k`` is the value at node ``k`` of
  segment ``s``; neighbouring segments share their end node.
  ``discontinuous``: ``K = n S``, ``m = s n + k``. ``polynomial``: ``S = 1``, ``K = n``.

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

EXTRAPOLATIONS = ("polynomial", "clamp", "linear", "mirror")
HALF_TYPES = (torch.float16, torch.bfloat16)


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
    return [torch.ones_like(t), *_varying_chebyshev_terms(t, n)]


def _varying_chebyshev_terms(t: Tensor, n: int) -> list[Tensor]:
    """``[T_1(t), ..., T_{n-1}(t)]`` (``T_0 = 1`` left out): ``T_2 = 2 t^2 - 1``, then the recurrence."""
    values = [t] if n > 1 else []
    twice = 2 * t
    if n > 2:
        values.append(twice * t - 1)
    for _ in range(3, n):
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
    return torch.linalg.inv(vandermonde).contiguous()  # inv returns column-major; kernels read rows


def lagrange_basis(t: Tensor, transform: Tensor) -> Tensor:
    """Lagrange basis values ``phi_k(t)`` on Chebyshev-Lobatto nodes, ``transform = lagrange_transform(n)``.

    Computed as ``C[0, k] + sum_{j >= 1} T_j(t) C[j, k]``: ``T_0 = 1`` enters as a constant row, not as a
    tensor of ones (one operator, and one row of the product, fewer in every derivative: the PDE presets
    differentiate the basis three times).

    Shape: ``(...) -> (..., n)``.
    """
    n, constant = transform.shape[0], transform[0].to(t.dtype)  # C[0, k], [n]
    varying = _varying_chebyshev_terms(t, n)
    if not varying:  # n = 1: the constant C[0, 0]
        return torch.ones_like(t).unsqueeze(-1) * constant
    stacked = torch.stack(varying).reshape(n - 1, t.numel())  # [n-1, N], as _combine's product
    values = torch.addmm(constant.unsqueeze(-1), transform[1:].T.to(t.dtype), stacked)
    return values.T.reshape(*t.shape, n)


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


def fold_segment_coordinate(u: Tensor, segments: int, extrapolation: str) -> Tensor:
    """The ``clamp`` and ``mirror`` extrapolations on the segment coordinate ``u`` (``[0, S]`` over the
    domain): ``clamp`` to ``[0, S]``, ``mirror`` to ``S - |remainder(u, 2S) - S|`` (mirror-periodic with
    period ``2L`` in ``x``), the identity for the others."""
    if extrapolation == "clamp":
        return u.clamp(0, segments)
    if extrapolation == "mirror":
        return segments - (torch.remainder(u, 2 * segments) - segments).abs()
    return u


def locate(u: Tensor, segments: int) -> tuple[Tensor, Tensor]:
    """Segment ``s`` (float, no gradient) and local coordinate ``t`` (differentiable) of the segment
    coordinate ``u``: ``s = clamp(floor(u), 0, S-1)``, ``t = 2 (u - s) - 1``. Inside the domain ``t`` lies in
    ``[-1, 1]``; outside it continues linearly (the end segments extend). A NaN ``u`` gets segment 0 and a NaN
    ``t`` (so its values are NaN, and only its own), never an invalid index."""
    s = u.detach().floor().nan_to_num(nan=0.0).clamp(0, segments - 1)
    return s, 2 * (u - s) - 1


def segment_coordinate(x: Tensor, segments: int, length: float) -> Tensor:
    """The segment coordinate ``u = (x + L/2) S / L`` of ``x`` in reference coordinates (``[0, S]`` over the
    domain)."""
    return (x + 0.5 * length) * (segments / length)


def segment_coordinates(x: Tensor, segments: int, length: float) -> tuple[Tensor, Tensor]:
    """Segment index ``s`` (long) and local coordinate ``t`` of ``x`` in reference coordinates: :func:`locate`
    at :func:`segment_coordinate`."""
    s, t = locate(segment_coordinate(x, segments, length), segments)
    return s.long(), t


def active_basis(u: Tensor, transform: Tensor, segments: int, continuous: bool,
                 extrapolation: str) -> tuple[Tensor, Tensor]:
    """The ``n`` basis values every segment coordinate ``u`` touches (folded by ``extrapolation``, located,
    :func:`lagrange_basis_extrapolated`) and their offset among the link's ``K`` values, ``s (n-1)``
    (continuous) or ``s n``: the one geometry every path computes with. Differentiable in ``u`` to every
    order.

    Shape: ``(...) -> phi (..., n), base (...)`` (int64).
    """
    s, t = locate(fold_segment_coordinate(u, segments, extrapolation), segments)
    n = transform.shape[0]
    return lagrange_basis_extrapolated(t, transform, extrapolation), s.long() * (n - 1 if continuous else n)


def expand_active(phi: Tensor, base: Tensor, width: int) -> Tensor:
    """The dense expansion ``E[..., m]`` of :func:`active_basis`'s values: ``phi[..., k]`` at
    ``m = base + k``, zero elsewhere (``phi`` itself where ``width`` is ``n``).
    Shape ``(..., n) -> (..., K)``."""
    n = phi.shape[-1]
    if width == n:
        return phi
    index = base.unsqueeze(-1) + torch.arange(n, device=phi.device)
    return phi.new_zeros(*phi.shape[:-1], width).scatter(-1, index, phi)


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
    u = segment_coordinate(x.to(working_dtype(x.dtype)), segments, length)
    phi, base = active_basis(u, transform, segments, continuous, extrapolation)
    return expand_active(phi, base, piecewise_width(transform.shape[0], segments, continuous))


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


def segment_basis(x: Tensor, transform: Tensor, segments: int, length: float, continuous: bool,
                  extrapolation: str) -> tuple[Tensor, Tensor]:
    """The ``n`` active basis values of every input and the offset of its segment in the link's ``K`` values.

    :func:`active_basis` of ``x`` in reference coordinates: ``phi[..., k]`` is the entry ``base + k`` of
    :func:`piecewise_expand`, all other entries being zero. Differentiable in ``x`` to every order. Computed
    in :func:`working_dtype` (``float32`` for half-precision ``x``).

    Shape: ``(...) -> phi (..., n), base (...)`` (int64).
    """
    u = segment_coordinate(x.to(working_dtype(x.dtype)), segments, length)
    return active_basis(u, transform, segments, continuous, extrapolation)
