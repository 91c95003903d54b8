"""Product units without the ``[B, O, I]`` tensor of link values.

A product unit multiplies its links (``*_prod`` kinds and ``product`` of :mod:`hol.layers.fc`):

    y[b, o] = prod_i (1 + f[b, o, i]) - 1 - (1 - alpha) sum_i f[b, o, i]
    f[b, o, i] = sum_k phi[b, i, k] W[o, i, base[b, i] + k]

with ``phi [B, I, n]`` the basis values an input touches and ``base [B, I]`` the offset of the first of them
among the link's ``K`` values (:meth:`hol.layers.bases.Basis.active`): for piecewise Lagrange links the
``n`` values of the input's segment, for every other basis the whole expansion (``n = K``, ``base = 0``;
``product``: ``phi = x``, ``K = 1``).

The operator ``hol::product_units`` computes ``y`` in tiles that recompute ``f`` instead of storing it,
forward and backward: C++ kernels on the CPU (``csrc/product_units.cpp``), Triton kernels on CUDA
(:mod:`hol.ops.product_units_triton`), the torch formula (:func:`product_units_reference`, chunked over
outputs) on any other device or dtype, or where the kernels cannot be built. Saved for the backward: ``phi``,
``base``, and per (sample, output) the product of the nonzero factors and ``zero_at`` (``-1``: no factor
``1 + f`` is zero, ``i``: only factor ``i`` is, ``-2``: two or more are), which make ``d y / d f =
prod_{j != i} (1 + f_j) - (1 - alpha)`` local: ``prod / (1 + f_i)`` without zeros, ``prod`` for the single
zero factor and 0 for the others, 0 with two or more zeros. A zero factor is counted, never divided by, so
``1 + f = 0`` is exact. Activation memory: ``O(B O + B I n)``.

Derivatives of every order: the operator's backward is the operator ``hol::product_units_backward``; when the
backward itself is differentiated (``create_graph=True``), the gradients come from the differentiable torch
formula (:func:`product_units_reference_gradients`, division-free prefix and suffix products). Derivatives
with respect to ``x`` come from autograd through :meth:`~hol.layers.bases.Basis.active`. Under torch.func
transforms (vmap, grad, jacrev, jvp, ...) and forward-mode AD, :func:`product_unit_values` computes with the
torch formula, which they support. Half precision (``float16``, ``bfloat16``) is computed with float32
accumulation. ``HOL_PRODUCT_UNITS_CPP=0`` turns the C++ kernels off.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import loader
from .registration import ACCUMULATION, autocast_dtype, define_operator, formula_only

REFERENCE_CHUNK = 1 << 22
"""Elements of ``f`` (``[B, outputs, I]``) the torch formula materializes at a time (outputs per chunk =
``REFERENCE_CHUNK // (B I)``, at least one)."""


def extension():
    """The C++ kernels (operators ``torch.ops.hol_cpu.product_units_forward`` / ``_backward``), or ``None``
    where they cannot be built or ``HOL_PRODUCT_UNITS_CPP=0``."""
    if loader.load("product_units", "HOL_PRODUCT_UNITS_CPP", python_module=False) is None:
        return None
    return torch.ops.hol_cpu


def product_unit_values(phi: Tensor, base: Tensor, weight: Tensor, alpha: float = 1.0) -> Tensor:
    """The operator ``hol::product_units`` on basis values: ``y[b, o]`` of the module docstring.

    Shapes: ``phi [B, I, n]``, ``base [B, I]`` (int64, ``0 <= base <= K - n``), ``weight [O, I, K]`` ->
    ``[B, O]``. Raises ``ValueError`` for shapes or dtypes that do not fit together. Under ``torch.autocast``
    both ``phi`` and ``weight`` are cast to the autocast dtype (the kernels still accumulate in float32).
    """
    dtype = autocast_dtype(phi.device.type)
    if dtype is not None:
        phi, weight = phi.to(dtype), weight.to(dtype)
    _check_operands(phi, base, weight)
    if formula_only():  # torch.func transforms, forward-mode AD, ONNX export
        return product_units_reference(phi, base, weight, alpha)
    return torch.ops.hol.product_units(phi, base, weight, float(alpha))[0]


def _check_operands(phi: Tensor, base: Tensor, weight: Tensor) -> None:
    if phi.dim() != 3:
        raise ValueError(f"phi must be [B, I, n], got shape {tuple(phi.shape)}")
    if weight.dim() != 3 or weight.shape[1] != phi.shape[1] or weight.shape[2] < phi.shape[2]:
        raise ValueError(f"weight must be [O, I, K] with I = {phi.shape[1]} and K >= n = {phi.shape[2]}, got "
                         f"shape {tuple(weight.shape)}")
    if base.shape != phi.shape[:2] or base.dtype != torch.long:
        raise ValueError(f"base must be int64 of shape {tuple(phi.shape[:2])}, got {base.dtype} "
                         f"{tuple(base.shape)}")
    if phi.dtype != weight.dtype or phi.dtype not in ACCUMULATION:
        raise ValueError(f"phi and weight must share a floating dtype (float16, bfloat16, float32, float64), "
                         f"got {phi.dtype} and {weight.dtype}")


# ------------------------------------------------------------------------------------------ torch formula


def _expansion(phi: Tensor, base: Tensor, width: int) -> Tensor:
    """The dense expansion ``E[b, i, base[b, i] + k] = phi[b, i, k]`` (zero elsewhere). Shape
    ``[B, I, K]``."""
    if phi.shape[-1] == width:  # then base = 0
        return phi
    index = base.unsqueeze(-1) + torch.arange(phi.shape[-1], device=base.device)
    return phi.new_zeros(*phi.shape[:-1], width).scatter(-1, index, phi)


def _link_values(expansion: Tensor, weight: Tensor) -> Tensor:
    """Every link's value ``f[b, o, i] = sum_k expansion[b, i, k] weight[o, i, k]``, a batched matrix product
    over ``i`` (``einsum`` has no batching rule in the vmap behind ``jacobian(vectorize=True)`` and
    ``is_grads_batched``). Shapes: ``[B, I, K]``, ``[O, I, K]`` -> ``[B, O, I]``."""
    return (expansion.transpose(0, 1) @ weight.permute(1, 2, 0)).permute(1, 2, 0)


def _outputs_per_chunk(phi: Tensor) -> int:
    return max(1, REFERENCE_CHUNK // max(1, phi.shape[0] * phi.shape[1]))


def product_units_reference(phi: Tensor, base: Tensor, weight: Tensor, alpha: float = 1.0) -> Tensor:
    """``y`` of the module docstring by the torch formula (``torch.prod`` over the ``[B, O, I]`` link values,
    chunked over outputs), differentiable to every order by autograd. Shapes as
    :func:`product_unit_values`."""
    expansion = _expansion(phi, base, weight.shape[2])
    chunks = []
    for w in weight.split(_outputs_per_chunk(phi)):
        f = _link_values(expansion, w)
        chunks.append(torch.prod(1 + f, dim=-1) - 1 - (1 - alpha) * f.sum(-1))
    return torch.cat(chunks, dim=-1) if chunks else phi.new_zeros(phi.shape[0], 0)


def product_units_reference_gradients(grad_y: Tensor, phi: Tensor, base: Tensor, weight: Tensor, alpha: float,
                                      phi_grad: bool = True, weight_grad: bool = True
                                      ) -> tuple[Tensor | None, Tensor | None]:
    """``(d phi, d weight)`` of ``sum(grad_y * y)`` by the torch formula, each only if asked for (else
    ``None``).

    ``d y / d f[b, o, i] = before[b, o, i] after[b, o, i] - (1 - alpha)`` with the exclusive prefix and suffix
    products ``before = prod_{j < i} (1 + f_j)``, ``after = prod_{j > i} (1 + f_j)`` (``torch.cumprod``, no
    division), chunked over outputs. Built from differentiable torch ops: autograd differentiates it again
    (every order). Shapes: ``grad_y [B, O]``, the rest as :func:`product_unit_values`.
    """
    expansion = _expansion(phi, base, weight.shape[2])
    grad_expansion, grad_weights = None, []
    step = _outputs_per_chunk(phi)
    for o0 in range(0, weight.shape[0], step):
        w = weight[o0:o0 + step]
        one = 1 + _link_values(expansion, w)
        ones = one.new_ones(*one.shape[:-1], 1)
        before = torch.cumprod(torch.cat((ones, one[..., :-1]), dim=-1), dim=-1)
        after = torch.cumprod(torch.cat((ones, one.flip(-1)[..., :-1]), dim=-1), dim=-1).flip(-1)
        c = grad_y[:, o0:o0 + w.shape[0], None] * (before * after - (1 - alpha))  # [B, chunk, I]
        if phi_grad:
            part = (c.permute(2, 0, 1) @ w.transpose(0, 1)).transpose(0, 1)  # [I, B, K] -> [B, I, K]
            grad_expansion = part if grad_expansion is None else grad_expansion + part
        if weight_grad:
            grad_weights.append((c.permute(2, 1, 0) @ expansion.transpose(0, 1)).transpose(0, 1))  # [O, I, K]
    grad_phi = grad_weight = None
    if phi_grad:
        if grad_expansion is None:  # no outputs
            grad_expansion = torch.zeros_like(expansion)
        index = base.unsqueeze(-1) + torch.arange(phi.shape[-1], device=base.device)
        grad_phi = grad_expansion if phi.shape[-1] == weight.shape[2] else grad_expansion.gather(-1, index)
    if weight_grad:
        grad_weight = torch.cat(grad_weights) if grad_weights else torch.zeros_like(weight)
    return grad_phi, grad_weight


def _reference_state(phi: Tensor, base: Tensor, weight: Tensor,
                     alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(y, prod, zero_at)`` (module docstring) by torch ops, in the accumulation dtype (``y`` in phi's)."""
    dtype = phi.dtype
    phi, weight = phi.to(ACCUMULATION[dtype]), weight.to(ACCUMULATION[dtype])
    expansion = _expansion(phi, base, weight.shape[2])
    ys, prods, zeros = [], [], []
    for w in weight.split(_outputs_per_chunk(phi)):
        f = _link_values(expansion, w)
        one = 1 + f
        is_zero = one == 0
        count = is_zero.sum(-1)
        prod = torch.where(is_zero, torch.ones_like(one), one).prod(-1)
        first = is_zero.int().argmax(-1)
        zeros.append(torch.where(count == 0, -1, torch.where(count == 1, first, -2)).int())
        ys.append(torch.where(count == 0, prod, torch.zeros_like(prod)) - 1 - (1 - alpha) * f.sum(-1))
        prods.append(prod)
    if not ys:
        empty = phi.new_zeros(phi.shape[0], 0)
        return empty.to(dtype), empty, empty.int()
    return torch.cat(ys, -1).to(dtype), torch.cat(prods, -1), torch.cat(zeros, -1)


def _reference_backward(grad_y, phi, base, weight, alpha, phi_grad, weight_grad) -> tuple[Tensor, Tensor]:
    dtype = ACCUMULATION[phi.dtype]
    grad_phi, grad_weight = product_units_reference_gradients(
        grad_y.to(dtype), phi.to(dtype), base, weight.to(dtype), alpha, phi_grad, weight_grad)
    return _backward_outputs(grad_phi, grad_weight, phi, weight)


def _backward_outputs(grad_phi: Tensor | None, grad_weight: Tensor | None, phi: Tensor,
                      weight: Tensor) -> tuple[Tensor, Tensor]:
    """The backward operator's outputs: gradients in the operands' dtypes, or empty tensors where not asked
    for."""
    grad_phi = phi.new_empty(0) if grad_phi is None else grad_phi.to(phi.dtype)
    grad_weight = weight.new_empty(0) if grad_weight is None else grad_weight.to(weight.dtype)
    return grad_phi, grad_weight


# -------------------------------------------------------------------------------------------------- operators


def _forward_formula(phi: Tensor, base: Tensor, weight: Tensor,
                     alpha: float) -> tuple[Tensor, Tensor, Tensor]:
    """``(y [B, O], prod [B, O], zero_at [B, O] int32)`` by the torch formula."""
    return _reference_state(phi, base, weight, alpha)


def _forward_cpu():
    kernels = extension()
    if kernels is None:
        return None

    def forward(phi, base, weight, alpha):
        dtype = ACCUMULATION[phi.dtype]
        y, prod, zero_at = kernels.product_units_forward(phi.to(dtype).contiguous(), base.contiguous(),
                                                         weight.to(dtype).contiguous(), alpha)
        return y.to(phi.dtype), prod, zero_at

    return forward


def _forward_cuda():
    kernels = _triton()
    return None if kernels is None else kernels.forward


def _forward_fake(phi, base, weight, alpha):
    shape = (phi.shape[0], weight.shape[0])
    return (phi.new_empty(shape), phi.new_empty(shape, dtype=ACCUMULATION[phi.dtype]),
            phi.new_empty(shape, dtype=torch.int32))


def _forward_flops(phi_shape, base_shape, weight_shape, *args, **kwargs) -> int:
    """FLOPs of the forward (2 per multiply-add, as torch counts ``aten.mm``): every link's value,
    ``B O I n`` multiply-adds, and the product of the ``1 + f``, ``B O I`` of each."""
    batch, inputs, n = phi_shape
    links = batch * weight_shape[0] * inputs
    return 2 * links * n + 2 * links


def _backward_formula(grad_y: Tensor, phi: Tensor, base: Tensor, weight: Tensor, prod: Tensor,
                      zero_at: Tensor, alpha: float, phi_grad: bool,
                      weight_grad: bool) -> tuple[Tensor, Tensor]:
    """``(d phi, d weight)`` by the torch formula, each an empty tensor where not asked for."""
    return _reference_backward(grad_y, phi, base, weight, alpha, phi_grad, weight_grad)


def _backward_cpu():
    kernels = extension()
    if kernels is None:
        return None

    def backward(grad_y, phi, base, weight, prod, zero_at, alpha, phi_grad, weight_grad):
        dtype = ACCUMULATION[phi.dtype]
        grad_phi, grad_weight = kernels.product_units_backward(
            grad_y.to(dtype).contiguous(), phi.to(dtype).contiguous(), base.contiguous(),
            weight.to(dtype).contiguous(), prod.contiguous(), zero_at.contiguous(), alpha, phi_grad,
            weight_grad)
        return grad_phi.to(phi.dtype), grad_weight.to(weight.dtype)  # empty where not asked for

    return backward


def _backward_cuda():
    kernels = _triton()
    if kernels is None:
        return None

    def backward(grad_y, phi, base, weight, prod, zero_at, alpha, phi_grad, weight_grad):
        grad_phi, grad_weight = kernels.backward(grad_y, phi, base, weight, prod, zero_at, alpha, phi_grad,
                                                 weight_grad)
        return _backward_outputs(grad_phi, grad_weight, phi, weight)

    return backward


def _backward_fake(grad_y, phi, base, weight, prod, zero_at, alpha, phi_grad, weight_grad):
    return (phi.new_empty(phi.shape if phi_grad else (0,)),
            weight.new_empty(weight.shape if weight_grad else (0,)))


def _backward_flops(grad_shape, phi_shape, base_shape, weight_shape, prod_shape, zero_at_shape, alpha,
                    phi_grad, weight_grad, *args, **kwargs) -> int:
    """FLOPs of the backward: the links' values again, the partial products of the others (``4 B O I``), and
    each gradient asked for (``B O I n`` multiply-adds each)."""
    batch, inputs, n = phi_shape
    links = batch * weight_shape[0] * inputs
    return 2 * links * n + 4 * links + 2 * links * n * (int(phi_grad) + int(weight_grad))


_forward_op = define_operator("hol::product_units", _forward_formula, fake=_forward_fake,
                              flops=_forward_flops, kernels={"cpu": _forward_cpu, "cuda": _forward_cuda})
define_operator("hol::product_units_backward", _backward_formula, fake=_backward_fake, flops=_backward_flops,
                kernels={"cpu": _backward_cpu, "cuda": _backward_cuda})


def _setup_context(ctx, inputs, output) -> None:
    phi, base, weight, alpha = inputs
    _, prod, zero_at = output
    ctx.save_for_backward(phi, base, weight, prod, zero_at)
    ctx.alpha = alpha
    ctx.mark_non_differentiable(prod, zero_at)


def _backward(ctx, grad_y, _grad_prod, _grad_zero_at):
    phi, base, weight, prod, zero_at = ctx.saved_tensors
    phi_grad, _, weight_grad, _ = ctx.needs_input_grad
    if torch.is_grad_enabled():  # the backward is being differentiated (create_graph=True): the torch formula
        grad_phi, grad_weight = product_units_reference_gradients(grad_y, phi, base, weight, ctx.alpha,
                                                                  phi_grad, weight_grad)
        return grad_phi, None, grad_weight, None
    grad_phi, grad_weight = torch.ops.hol.product_units_backward(grad_y.contiguous(), phi, base, weight, prod,
                                                                 zero_at, ctx.alpha, phi_grad, weight_grad)
    return grad_phi if phi_grad else None, None, grad_weight if weight_grad else None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


def _triton():
    """The Triton kernels (:mod:`hol.ops.product_units_triton`), or ``None`` where Triton is missing."""
    try:
        from . import product_units_triton
    except ImportError:
        return None
    return product_units_triton
