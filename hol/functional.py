"""The functional API of hol's layers, as :mod:`torch.nn.functional` is ``torch.nn``'s: each computes a layer
from tensors (input, weight, bias, the basis' geometry, the per-input domain), and the modules of
:mod:`hol.layers` call them.

* :func:`basis_linear` and :func:`basis_conv`: the product of basis values with weights (any basis), the
  dense path;
* :func:`segment_sparse_linear`: the segment-sparse path of piecewise Lagrange links (below);
* :func:`fused_lagrange_linear`: the fused path of Lagrange links, one operator from the raw inputs and their
  domains to the outputs;
* :func:`product_unit_linear`: product units of any basis.

Precision: float16 weights contract in float32 and round the result once, bfloat16 ones round the float32
basis values once and accumulate in float32 (:func:`~hol.ops.lagrange.contraction_dtype`); under
``torch.autocast`` every path computes in the autocast dtype, as ``nn.Linear`` does.

The segment-sparse path of piecewise Lagrange layers (``continuous``, ``discontinuous``). The dense path
expands every input into all ``K`` basis values of its link and runs one GEMM, so its cost grows with
``K = (n-1) S + 1``. But an input ``x_bi`` in segment ``s_bi`` touches only the ``n`` values of that segment,
starting at ``base_bi = s_bi (n-1)`` (continuous) or ``s_bi n`` (discontinuous):

    y[b, o] = sum_i sum_k phi_k(t_bi) W[o, i, base_bi + k]

which costs ``B I n O`` multiply-adds whatever ``S`` is, as many as ``nn.Linear(I*n, O)``.

Two parts:

* :func:`segment_basis`, plain differentiable torch code: ``x -> (phi [..., n], base [...])`` with the same
  geometry and extrapolation as the dense expansion; derivatives of ``phi`` in ``x`` of every order come from
  autograd;
* the product, a torch operator with its two derivative products (:mod:`hol.ops.segment_sparse`: C++
  kernels on the CPU, Triton kernels on CUDA), closed under differentiation.

So the sparse path has the dense path's derivatives of every order (``create_graph=True``, double backward,
``torch.autograd.functional.hessian``), ``torch.func`` transforms (``grad``, ``vjp``, ``jacrev``, ``jacfwd``,
``jvp``, ``hessian``, ``vmap``, per-sample gradients), ``torch.compile(fullgraph=True)``, ``torch.export`` and
meta tensors, and every floating dtype (float16/bfloat16 accumulate in float32). Saved activations: ``phi``
and the segment offsets, ``O(B I n)``; the output is ``O(B O)``.

:func:`hol.ops.cost.choose_backend` (calibrated per machine) is the cost model behind ``backend="auto"`` of
:func:`hol.layers.fc`, choosing among the dense, sparse and fused paths.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from .ops.lagrange import contraction_dtype, segment_basis
from .ops.lagrange_linear import lagrange_linear
from .ops.product_units import product_unit_values
from .ops.registration import autocast_dtype
from .ops.segment_sparse import segment_sparse_product

if TYPE_CHECKING:
    from .layers.bases import Basis

BACKENDS = ("auto", "dense", "sparse", "fused")
"""The compute paths of a piecewise Lagrange layer: ``dense`` (:func:`basis_linear` over the whole
expansion), ``sparse`` (:func:`segment_sparse_linear`), ``fused`` (:func:`fused_lagrange_linear`), ``auto``
(the cost model's choice, :func:`hol.ops.cost.choose_backend`)."""


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def basis_linear(expansion: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y[..., o] = sum_{i,m} expansion[..., i, m] weight[o, i, m] (+ bias[o])``, in the weight's dtype.

    ``expansion`` is in :func:`~hol.ops.lagrange.working_dtype` (float32 for the half types) and is rounded
    to :func:`~hol.ops.lagrange.contraction_dtype` of the weight's dtype (bfloat16: once; float16 weights
    are multiplied in float32 and the result rounded once).

    Shapes: ``expansion [..., I, K]``, ``weight [O, I, K]``, ``bias [O]`` -> ``[..., O]``.
    """
    dtype = contraction_dtype(weight.dtype)
    bias = None if bias is None else bias.to(dtype)
    y = F.linear(expansion.to(dtype).flatten(-2), weight.flatten(1).to(dtype), bias)
    return y if dtype == weight.dtype else y.to(weight.dtype)


def basis_conv(expansion: Tensor, weight: Tensor, bias: Tensor | None = None, *, transpose: bool = False,
               stride=1, padding=0, dilation=1, groups: int = 1, output_padding=0) -> Tensor:
    """A torch convolution (transposed with ``transpose``) over basis values, with :func:`basis_linear`'s
    precision; its dimension is that of ``expansion`` (1, 2 or 3 spatial dimensions).

    Shapes: ``expansion [B, C*K, *spatial]``, ``weight [O, C/g * K, *kernel]`` (transposed:
    ``[C * K, O/g, *kernel]``), ``bias [O]`` -> ``[B, O, *spatial']``.
    """
    dtype = contraction_dtype(weight.dtype)
    bias = None if bias is None else bias.to(dtype)
    operands = (expansion.to(dtype), weight.to(dtype), bias, stride, padding)
    if transpose:
        transposed = _CONV_TRANSPOSE[expansion.dim() - 2]
        y = transposed(*operands, output_padding, groups, dilation)
    else:
        y = _CONV[expansion.dim() - 2](*operands, dilation, groups)
    return y if dtype == weight.dtype else y.to(weight.dtype)


def _autocast(tensor: Tensor, dtype: torch.dtype | None) -> Tensor:
    """``tensor`` as ``nn.Linear`` would see it under ``torch.autocast``: cast to the autocast ``dtype``
    (float64 stays float64), unchanged where ``dtype`` is ``None`` (autocast disabled)."""
    return tensor if dtype is None or tensor.dtype == torch.float64 else tensor.to(dtype)


def fused_lagrange_linear(x: Tensor, weight: Tensor, transform: Tensor, *, segments: int, length: float,
                          continuous: bool, extrapolation: str = "polynomial", centre: Tensor | None = None,
                          width: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
    """``y[..., o] = sum_i f_oi(x[..., i]) (+ bias)`` for piecewise Lagrange links by one operator that
    computes the basis values and their product with the weights together
    (:func:`hol.ops.lagrange_linear.lagrange_linear`: C++ on the CPU, Triton on CUDA, the torch formula
    elsewhere), from the raw inputs and their domains: ``[c_i - w_i/2, c_i + w_i/2]`` onto the reference
    domain ``[-length/2, length/2]`` (default ``c = 0``, ``w = length``).

    Same values as the dense path of :class:`hol.layers.fully_connected.HighOrderLinear` with the same
    weights, to rounding; the result in the weights' dtype (the half types computed in float32 and rounded
    once), under ``torch.autocast`` in the autocast dtype, as ``nn.Linear``'s.

    Shapes: ``x [..., I]``, ``weight [O, I, K]``, ``transform [n, n]``, ``centre`` and ``width`` ``[I]``,
    ``bias [O]`` -> ``[..., O]``.
    """
    # the segment coordinate u = (x - c) S / w + S / 2 = x scale + shift
    scale = transform.new_full((x.shape[-1],), segments / length) if width is None else segments / width
    shift = torch.full_like(scale, segments / 2) if centre is None else segments / 2 - centre * scale
    return lagrange_linear(x, scale, shift, weight, transform, segments=segments, continuous=continuous,
                           extrapolation=extrapolation, bias=bias)


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
    dtype = autocast_dtype(x.device.type)
    phi, weight = _autocast(phi, dtype), _autocast(weight, dtype)
    bias = None if bias is None else _autocast(bias, dtype)
    leading = x.shape[:-1]
    rows = math.prod(leading)  # not Size.numel(), which would fix a symbolic batch to its example value
    y = segment_sparse_product(phi.reshape(rows, *phi.shape[-2:]), base.reshape(rows, base.shape[-1]), weight)
    y = y.reshape(*leading, weight.shape[0])
    y = y if bias is None else y + bias
    return y if compute == result_dtype else y.to(result_dtype)  # float16: rounded once


def product_unit_linear(x: Tensor, weight: Tensor, basis: Basis, *, alpha: float = 1.0,
                        bias: Tensor | None = None) -> Tensor:
    """``y[..., o] = prod_i (1 + f_oi(x_i)) - 1 - (1 - alpha) sum_i f_oi(x_i) (+ bias[o])`` with
    ``f_oi(x) = sum_m weight[o, i, m] phi_m(x)`` for the ``basis`` (module docstring).

    Shapes: ``x [..., I]`` (``[..., I, d]`` for tensor-product bases), ``weight [O, I, K]``, ``bias [O]`` ->
    ``[..., O]``.
    """
    phi, base = basis.active(x)
    result_dtype = weight.dtype
    compute = contraction_dtype(result_dtype)  # bfloat16: the float32 basis values rounded once
    phi, weight = phi.to(compute), weight.to(compute)
    leading, (inputs, width) = phi.shape[:-2], phi.shape[-2:]
    y = product_unit_values(phi.reshape(-1, inputs, width), base.reshape(-1, inputs), weight, alpha)
    y = y.reshape(*leading, weight.shape[0])
    y = y if bias is None else y + bias
    return y if compute == result_dtype else y.to(result_dtype)  # float16: rounded once
