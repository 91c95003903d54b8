"""The registration every hol operator shares: a ``torch.library`` custom operator whose default
implementation is its torch formula, device kernels that fall back to the formula where they are
unavailable, a fake (meta) implementation, a FLOP formula, and autograd; and the rules for when an entry
point must take the torch formula instead of the operator.

The operators (:mod:`hol.ops.product_units`, :mod:`hol.ops.lagrange_linear`, :mod:`hol.ops.segment_sparse`)
each define their math and kernels and register through :func:`define_operator`; a forward operator and its
backward operator are two definitions, the forward's autograd (``register_autograd``) calling the backward
operator, or, when the backward is itself differentiated (``create_graph=True``), the differentiable torch
formula, so derivatives of every order are exact.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch.autograd import forward_ad
from torch.utils.flop_counter import register_flop_formula

ACCUMULATION = {torch.float16: torch.float32, torch.bfloat16: torch.float32, torch.float32: torch.float32,
                torch.float64: torch.float64}
"""The dtype kernels compute and accumulate in, per operand dtype (float32 for the half types)."""

KernelLookup = Callable[[], Callable | None]
"""Returns a device's kernel, or ``None`` where it is unavailable (not built, Triton missing, switched off by
an environment variable): the operator then runs its torch formula. Looked up at every call, so a lookup may
import or build lazily."""


def define_operator(qualname: str, formula: Callable, *, fake: Callable, flops: Callable,
                    kernels: Mapping[str, KernelLookup] | None = None):
    """Register ``qualname`` (``"hol::name"``) as a custom operator computing ``formula`` (annotated: its
    annotations are the operator's schema) on every device, ``kernels[device]()`` on the devices it names
    where that returns a kernel (called with the operator's arguments), ``fake`` on meta tensors and while
    ``torch.compile`` or ``torch.export`` trace, and ``flops`` in ``torch.utils.flop_counter``. Returns the
    operator (``torch.library.CustomOpDef``)."""
    operator = torch.library.custom_op(qualname, mutates_args=())(formula)
    for device, lookup in (kernels or {}).items():
        operator.register_kernel(device)(kernel_or_formula(lookup, formula))
    operator.register_fake(fake)
    namespace, name = qualname.split("::")
    register_flop_formula(getattr(getattr(torch.ops, namespace), name))(flops)
    return operator


def kernel_or_formula(lookup: KernelLookup, formula: Callable) -> Callable:
    """A device kernel for ``register_kernel``: ``lookup()``'s implementation, looked up at every call, or
    ``formula`` where it returns ``None``."""

    def kernel(*args):
        implementation = lookup()
        return formula(*args) if implementation is None else implementation(*args)

    return kernel


def formula_only() -> bool:
    """Whether an entry point must compute with its torch formula rather than call its operator: under
    torch.func transforms (vmap, grad, jacrev, jvp, ...) and forward-mode AD, which the formulas support and
    the operators do not (no forward-mode derivative; torch 2.14 cannot apply torch.func's reverse mode to
    operators with registered autograd, pytorch/pytorch#168393), and during ONNX export (ONNX has no hol
    operators)."""
    return (torch._C._are_functorch_transforms_active() or forward_ad._current_level >= 0
            or torch.onnx.is_in_onnx_export())


def autocast_dtype(device_type: str) -> torch.dtype | None:
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


def compute_operands(*tensors: Tensor) -> list[Tensor]:
    """Contiguous operands in their :data:`ACCUMULATION` dtype (float32 for the half types), as host
    kernels take them."""
    return [tensor.to(ACCUMULATION.get(tensor.dtype, tensor.dtype)).contiguous() for tensor in tensors]
