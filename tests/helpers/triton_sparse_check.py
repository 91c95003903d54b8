"""The Triton kernels of the segment-sparse operators on CPU tensors, under Triton's interpreter.

Run by tests/ops/test_segment_sparse_triton.py in a subprocess with ``TRITON_INTERPRET=1`` (the variable must
be set before the kernels are defined, so not in the test process). The Triton kernels are registered as the
CPU implementation of the three operators (``segment_sparse.register_kernels``, the call that serves CUDA), so
every check goes through the operators as a CUDA caller would: the eager autograd Functions and
``torch.ops.hol``. Results are compared with the operators' definition as dense expansions in float64 (to
1e-12) and with finite differences (gradcheck, gradgradcheck); a counter makes sure the Triton kernels did the
work. Exits with an
assertion error at the first mismatch.
"""
from __future__ import annotations

import os
from collections import Counter

import torch

from hol.layers import fc
from hol.ops import segment_sparse
from tests.ops.test_segment_sparse import close, dense_phi_grad, dense_product, dense_weight_grad, operands

OPS = torch.ops.hol
calls: Counter = Counter()


def counted(kernels: segment_sparse.Products) -> segment_sparse.Products:
    """``kernels`` with every call counted in :data:`calls` by name."""

    def count(name, function):
        def run(*args):
            calls[name] += 1
            return function(*args)
        return run

    fields = segment_sparse.Products._fields
    return segment_sparse.Products(*(count(name, getattr(kernels, name)) for name in fields))


def entries(kind: str):
    """(F, A, B) through the eager Functions or the dispatcher operators."""
    if kind == "eager":
        return (segment_sparse.segment_sparse_product, segment_sparse.segment_sparse_weight_grad,
                segment_sparse.segment_sparse_phi_grad)
    return OPS.segment_sparse_product, OPS.segment_sparse_weight_grad, OPS.segment_sparse_phi_grad


def check_definitions():
    """F, A, B against the dense expansion, over shapes that cross tiles and degenerate ones."""
    cases = [  # batch, inputs, n, K, outputs
        (5, 3, 3, 7, 4),
        (40, 3, 3, 9, 37),    # more samples and outputs than one tile (32)
        (33, 2, 4, 40, 5),    # K over several link-value tiles (16) of the weight gradient
        (9, 2, 8, 22, 3),     # n = 8: a full power of two of nodes
        (6, 3, 4, 4, 2),      # one segment (n = K)
        (0, 3, 2, 5, 4),      # empty batch
        (1, 3, 2, 5, 4),      # one sample
        (6, 1, 3, 7, 4),      # one input
        (6, 3, 3, 7, 1),      # one output
    ]
    for entry in ("eager", "operator"):
        product, weight_grad, phi_grad = entries(entry)
        for batch, inputs, n, width, out in cases:
            phi, base, weight, grad = operands(batch, inputs, n, width, out)
            before = sum(calls.values())
            close(product(phi, base, weight), dense_product(phi, base, weight))
            close(weight_grad(phi, base, grad, width), dense_weight_grad(phi, base, grad, width))
            close(phi_grad(grad, weight, base, n), dense_phi_grad(grad, weight, base, n))
            assert sum(calls.values()) == before + (3 if batch else 0), "the Triton kernels did not run"


def check_repeated_indices():
    """Every sample in one segment (several sample tiles in one range), and two segments that share a node:
    the weight gradient sums every contribution."""
    phi, base, weight, grad = operands(70, 2, 3, 9, 3)
    base[:, 0] = 4
    base[:, 1] = torch.where(torch.arange(70) % 3 == 0, 2, 4)  # offsets 2 and 4 share link value 4
    close(segment_sparse.segment_sparse_weight_grad(phi, base, grad, 9),
          dense_weight_grad(phi, base, grad, 9))
    close(segment_sparse.segment_sparse_product(phi, base, weight), dense_product(phi, base, weight))
    close(segment_sparse.segment_sparse_phi_grad(grad, weight, base, 3),
          dense_phi_grad(grad, weight, base, 3))
    expected = torch.einsum("bk,bo->ok", phi[:, 0], grad)  # input 0: one segment, summed over all samples
    close(segment_sparse.segment_sparse_weight_grad(phi, base, grad, 9)[:, 0, 4:7], expected)


def check_derivatives_of_every_order():
    """gradcheck and gradgradcheck of F, A, B through both entries (their derivatives are F, A, B again)."""
    phi, base, weight, grad = (t.requires_grad_(t.is_floating_point()) for t in operands(3, 2, 2, 5, 2))
    base[:, 0] = 1  # repeated offsets
    for entry in ("eager", "operator"):
        product, weight_grad, phi_grad = entries(entry)
        cases = [(lambda p, w, f=product: f(p, base, w), (phi, weight)),
                 (lambda p, g, f=weight_grad: f(p, base, g, 5), (phi, grad)),
                 (lambda g, w, f=phi_grad: f(g, w, base, 2), (grad, weight))]
        for function, inputs in cases:
            assert torch.autograd.gradcheck(function, inputs, fast_mode=True)
            assert torch.autograd.gradgradcheck(function, inputs, fast_mode=True)


def check_layer():
    """A continuous layer on the sparse path (Triton) against the dense path: output, gradients in x and in
    the weights, and the x-gradient's own gradient (double backward)."""
    sparse = fc("continuous", 3, 2, n=3, segments=4, backend="sparse", dtype=torch.float64)
    dense = fc("continuous", 3, 2, n=3, segments=4, backend="dense", dtype=torch.float64)
    dense.load_state_dict(sparse.state_dict())
    x = torch.linspace(-1.2, 1.2, 21, dtype=torch.float64).reshape(7, 3).requires_grad_()
    results = []
    for layer in (sparse, dense):
        y = layer(x)
        dx, dw = torch.autograd.grad(y.pow(2).sum(), (x, layer.weight), create_graph=True)
        (ddx,) = torch.autograd.grad(dx.pow(2).sum() + dw.sum(), x)
        results.append((y, dx, dw, ddx))
    for got, want in zip(*results, strict=True):
        close(got, want)


def check_low_precision():
    """float16, bfloat16, float32: the float64 value of the rounded operands, rounded once (float32
    accumulation), as the C++ kernels are tested."""
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        phi, base, weight, grad = operands(8, 40, 3, 9, 5, dtype=dtype)
        for got, exact in ((segment_sparse.segment_sparse_product(phi, base, weight),
                            dense_product(phi.double(), base, weight.double())),
                           (segment_sparse.segment_sparse_weight_grad(phi, base, grad, 9),
                            dense_weight_grad(phi.double(), base, grad.double(), 9)),
                           (segment_sparse.segment_sparse_phi_grad(grad, weight, base, 3),
                            dense_phi_grad(grad.double(), weight.double(), base, 3))):
            assert got.dtype == dtype
            bound = 0.5 * torch.finfo(dtype).eps * exact.abs() + 1e-5 * exact.abs().max()
            assert ((got.double() - exact).abs() <= bound).all(), dtype


def check_determinism_and_bad_offsets():
    """Deterministic mode changes nothing (no atomics to refuse) and repeats are bitwise equal; offsets out of
    range are refused."""
    phi, base, weight, grad = operands(50, 3, 3, 9, 6, dtype=torch.float32)
    base[:25, 1] = 2
    first = segment_sparse.segment_sparse_weight_grad(phi, base, grad, 9)
    torch.use_deterministic_algorithms(True)
    try:
        again = segment_sparse.segment_sparse_weight_grad(phi, base, grad, 9)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(first, again)
    base[0, 0] = 7  # n = 3, K = 9: the largest valid offset is 6
    for call in (lambda: segment_sparse.segment_sparse_product(phi, base, weight),
                 lambda: segment_sparse.segment_sparse_weight_grad(phi, base, grad, 9),
                 lambda: segment_sparse.segment_sparse_phi_grad(grad, weight, base, 3)):
        try:
            call()
        except RuntimeError as error:
            assert "outside" in str(error), error
        else:
            raise AssertionError("an offset out of range was accepted")


def check_non_contiguous():
    phi, base, weight, grad = operands(5, 3, 3, 7, 4)
    phi_t, base_t = phi.transpose(0, 1).contiguous().transpose(0, 1), base.T.contiguous().T
    weight_t, grad_t = weight.transpose(0, 2).contiguous().transpose(0, 2), grad.T.contiguous().T
    close(segment_sparse.segment_sparse_product(phi_t, base_t, weight_t), dense_product(phi, base, weight))
    close(segment_sparse.segment_sparse_weight_grad(phi_t, base_t, grad_t, 7),
          dense_weight_grad(phi, base, grad, 7))
    close(segment_sparse.segment_sparse_phi_grad(grad_t, weight_t, base_t, 3),
          dense_phi_grad(grad, weight, base, 3))


CHECKS = (check_definitions, check_repeated_indices, check_derivatives_of_every_order, check_layer,
          check_low_precision, check_determinism_and_bad_offsets, check_non_contiguous)


def main():
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    triton = counted(segment_sparse.triton_kernels())
    assert triton.product is not segment_sparse.HOST_KERNELS.product
    segment_sparse.register_kernels("cpu", lambda: triton)
    for check in CHECKS:
        check()
        print(f"{check.__name__}: ok")
    assert set(calls) == set(segment_sparse.Products._fields), calls


if __name__ == "__main__":
    main()
