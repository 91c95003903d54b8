"""Segment-sparse compute path for piecewise Lagrange layers (``continuous``, ``discontinuous``).

The dense path (:mod:`hol.layers.fully_connected`) expands every input into all ``K`` basis values of its link
and runs one GEMM, so its cost grows with ``K = (n-1) S + 1``. But an input ``x_bi`` in segment ``s_bi``
touches only the ``n`` values of that segment, starting at ``base_bi = s_bi (n-1)`` (continuous) or ``s_bi n``
(discontinuous):

    y[b, o] = sum_i sum_k phi_k(t_bi) W[o, i, base_bi + k]

which costs ``B I n O`` multiply-adds whatever ``S`` is, as many as ``nn.Linear(I*n, O)``.

Two parts:

* :func:`segment_basis`, plain differentiable torch code: ``x -> (phi [..., n], base [...])`` with the same
  geometry and extrapolation as the dense expansion; derivatives of ``phi`` in ``x`` of every order come from
  autograd;
* the product, a torch operator with its two derivative products (:mod:`hol.layers.sparse_ops`: C++ kernels on
  the CPU, Triton kernels on CUDA), closed under differentiation.

So the sparse path has the dense path's derivatives of every order (``create_graph=True``, double backward,
``torch.autograd.functional.hessian``), ``torch.func`` transforms (``grad``, ``vjp``, ``jacrev``, ``jacfwd``,
``jvp``, ``hessian``, ``vmap``, per-sample gradients), ``torch.compile(fullgraph=True)``, ``torch.export`` and
meta tensors, and every floating dtype (float16/bfloat16 accumulate in float32). Saved activations: ``phi``
and the segment offsets, ``O(B I n)``; the output is ``O(B O)``.

:func:`choose_backend` (:mod:`hol.layers.sparse_cost`, calibrated per machine) is the cost model behind
``backend="auto"`` of :func:`hol.layers.fc`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .bases import (
    contraction_dtype,
    fold_into_domain,
    lagrange_basis_extrapolated,
    segment_coordinates,
    working_dtype,
)
from .sparse_cost import choose_backend, step_of
from .sparse_cpp import extension, extension_available
from .sparse_ops import segment_sparse_product

BACKENDS = ("auto", "dense", "sparse")

__all__ = ["BACKENDS", "choose_backend", "extension", "extension_available", "segment_basis",
           "segment_sparse_linear", "step_of"]


def segment_basis(x: Tensor, transform: Tensor, segments: int, length: float, continuous: bool,
                  extrapolation: str) -> tuple[Tensor, Tensor]:
    """The ``n`` active basis values of every input and the offset of its segment in the link's ``K`` values.

    Same geometry and extrapolation as :func:`hol.layers.bases.piecewise_expand`: ``phi[..., k]`` is the entry
    ``base + k`` of the dense expansion, all other entries being zero. Differentiable in ``x`` to every order.
    Computed in :func:`~hol.layers.bases.working_dtype` (``float32`` for half-precision ``x``).

    Shape: ``(...) -> phi (..., n), base (...)`` (int64).
    """
    n = transform.shape[0]
    x = fold_into_domain(x.to(working_dtype(x.dtype)), length, extrapolation)
    s, t = segment_coordinates(x, segments, length)
    phi = lagrange_basis_extrapolated(t, transform, extrapolation)
    s = s.clamp(0, segments - 1)  # a NaN input gives an arbitrary integer: keep the offset valid, phi is NaN
    return phi, s * (n - 1 if continuous else n)


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype ``nn.Linear`` computes in under ``torch.autocast`` when it is enabled for ``device_type``,
    else ``None``."""
    if not (_autocast_available(device_type) and torch.is_autocast_enabled(device_type)):
        return None
    return torch.get_autocast_dtype(device_type)


@torch.compiler.assume_constant_result
def _autocast_available(device_type: str) -> bool:
    """Whether torch has autocast for ``device_type`` (a constant for ``torch.compile``: torch 2.11's dynamo
    cannot trace ``torch.amp.is_autocast_available``)."""
    return torch.amp.is_autocast_available(device_type)


def _autocast(tensor: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``tensor`` as ``nn.Linear`` would see it under ``torch.autocast``: cast to the autocast ``dtype``
    (float64 stays float64), unchanged where ``dtype`` is ``None`` (autocast disabled)."""
    return tensor if dtype is None or tensor.dtype == torch.float64 else tensor.to(dtype)


def segment_sparse_linear(x: Tensor, weight: Tensor, transform: Tensor, *, segments: int, length: float,
                          continuous: bool, extrapolation: str = "polynomial",
                          bias: Tensor | None = None) -> Tensor:
    """``y[..., o] = sum_i f_oi(x[..., i]) (+ bias)`` for piecewise Lagrange links by the segment-sparse path.

    Same result as the dense path of :class:`hol.layers.fully_connected.HighOrderLinear` with the same
    weights, including under ``torch.autocast`` (computed in the autocast dtype, as ``nn.Linear`` is).

    Shapes: ``x [..., I]``, ``weight [O, I, K]``, ``transform [n, n]`` -> ``[..., O]``.
    """
    phi, base = segment_basis(x, transform, segments, length, continuous, extrapolation)
    result_dtype = weight.dtype
    compute = contraction_dtype(result_dtype)  # bfloat16: the float32 basis values rounded once
    phi, weight = phi.to(compute), weight.to(compute)
    bias = None if bias is None else bias.to(compute)
    dtype = _autocast_dtype(x.device.type)
    phi, weight = _autocast(phi, dtype), _autocast(weight, dtype)
    bias = None if bias is None else _autocast(bias, dtype)
    leading = x.shape[:-1]
    rows = math.prod(leading)  # not Size.numel(), which would fix a symbolic batch to its example value
    y = segment_sparse_product(phi.reshape(rows, *phi.shape[-2:]), base.reshape(rows, base.shape[-1]), weight)
    y = y.reshape(*leading, weight.shape[0])
    y = y if bias is None else y + bias
    return y if compute == result_dtype else y.to(result_dtype)  # float16: rounded once
