"""The Triton kernels of the product-unit operator on CPU tensors, under Triton's interpreter.

Run by tests/ops/test_product_units.py in a subprocess with ``TRITON_INTERPRET=1`` (the variable must be
set before the kernels are defined, so not in the test process). Every check compares the kernels with the
torch formula of :mod:`hol.ops.product_units` in float64 (to 1e-12) or with finite differences (gradcheck).
Exits with an assertion error at the first mismatch.
"""
from __future__ import annotations

import os

import torch

from hol.ops import product_units
from hol.ops import product_units_triton as kernels

f64 = torch.float64
TOL = 1e-12


def operands(batch, inputs, outputs, n, segments, continuous, dtype=f64, seed=0):
    """phi, base, weight of a layer with ``segments`` pieces of ``n`` nodes (``segments = 1``: dense
    links)."""
    generator = torch.Generator().manual_seed(seed)
    stride = n - 1 if continuous else n
    width = stride * segments + (1 if continuous else 0) if segments > 1 else n
    phi = torch.randn(batch, inputs, n, generator=generator, dtype=f64)
    base = torch.randint(0, segments, (batch, inputs), generator=generator) * stride
    weight = torch.randn(outputs, inputs, width, generator=generator, dtype=f64) * 0.4
    return phi.to(dtype), base, weight.to(dtype)


def assert_close(got, expected, tol, what):
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    error = (got.to(f64) - expected.to(f64)).abs().max().item() if got.numel() else 0.0
    assert error <= tol, f"{what}: max error {error:.3g} > {tol:.1g}"


def scale(t):
    return t.abs().max().item() if t.numel() else 0.0


def check_against_formula(phi, base, weight, alpha, tol=TOL):
    y, prod, zero_at = kernels.forward(phi, base, weight, alpha)
    expected_y, expected_prod, expected_zero_at = product_units._reference_state(phi, base, weight, alpha)
    assert_close(y, expected_y, tol, "y")
    assert_close(prod, expected_prod, tol, "prod")
    assert torch.equal(zero_at, expected_zero_at), "zero_at"
    grad_y = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=f64).to(phi.dtype)
    for phi_grad, weight_grad in ((True, True), (True, False), (False, True)):
        grads = kernels.backward(grad_y, phi, base, weight, prod, zero_at, alpha, phi_grad, weight_grad)
        expected = product_units.product_units_reference_gradients(grad_y.to(f64), phi.to(f64), base,
                                                                   weight.to(f64), alpha, phi_grad,
                                                                   weight_grad)
        for name, got, want in zip(("d phi", "d weight"), grads, expected, strict=True):
            assert (got is None) == (want is None), name
            if got is not None:
                assert_close(got, want, tol * max(1.0, scale(want)), name)
    return zero_at


def check_shapes():
    cases = [  # batch, inputs, outputs, n, segments, continuous
        (5, 3, 4, 3, 1, True),      # dense links (K = n)
        (40, 3, 37, 3, 3, True),    # more samples and outputs than one tile; shared end nodes
        (9, 2, 5, 2, 4, False),     # discontinuous
        (1, 1, 1, 1, 1, True),      # batch 1, one input, one output, product kind (n = K = 1)
        (0, 3, 4, 3, 2, True),      # empty batch
    ]
    for case in cases:
        for alpha in (1.0, 0.3):
            check_against_formula(*operands(*case), alpha)


def check_zero_factors():
    """1 + f = 0 exactly: one zero factor in some (sample, output), two in another."""
    phi, base, weight = operands(4, 5, 3, 3, 3, True)
    phi[1, 3] = torch.tensor([1.0, 0.0, 0.0], dtype=f64)  # f[1, 2, 3] = w[2, 3, base] = -1
    weight[2, 3, base[1, 3]] = -1.0
    for i in (0, 4):  # f[2, 0, 0] = f[2, 0, 4] = -1
        phi[2, i] = torch.tensor([0.0, 1.0, 0.0], dtype=f64)
        weight[0, i, base[2, i] + 1] = -1.0
    zero_at = check_against_formula(phi, base, weight, 0.5)
    assert zero_at[1, 2] == 3 and zero_at[2, 0] == -2 and (zero_at == -1).sum() == zero_at.numel() - 2


class Kernels(torch.autograd.Function):
    """The Triton forward and backward as one differentiable function of (phi, weight), for gradcheck."""

    @staticmethod
    def forward(ctx, phi, base, weight, alpha):
        y, prod, zero_at = kernels.forward(phi, base, weight, alpha)
        ctx.save_for_backward(phi, base, weight, prod, zero_at)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, grad_y):
        phi, base, weight, prod, zero_at = ctx.saved_tensors
        grad_phi, grad_weight = kernels.backward(grad_y, phi, base, weight, prod, zero_at, ctx.alpha, True,
                                                 True)
        return grad_phi, None, grad_weight, None


def check_gradcheck():
    phi, base, weight = operands(4, 2, 3, 2, 2, False)
    phi.requires_grad_()
    weight.requires_grad_()
    assert torch.autograd.gradcheck(lambda p, w: Kernels.apply(p, base, w, 0.7), (phi, weight),
                                    fast_mode=True)


def check_low_precision():
    """float32 accumulates in float32; float16 loads half values and accumulates in float32."""
    for dtype, tol in ((torch.float32, 1e-5), (torch.float16, 2e-2)):
        phi, base, weight = operands(7, 3, 5, 3, 2, True, dtype=dtype)
        y, _, _ = kernels.forward(phi, base, weight, 0.5)
        assert y.dtype == dtype
        expected = product_units.product_units_reference(phi.to(f64), base, weight.to(f64), 0.5)
        assert_close(y, expected, tol * scale(expected), f"y {dtype}")


def main():
    assert os.environ.get("TRITON_INTERPRET") == "1", "run with TRITON_INTERPRET=1"
    torch.manual_seed(0)
    for check in (check_shapes, check_zero_factors, check_gradcheck, check_low_precision):
        check()
        print(f"{check.__name__}: ok")


if __name__ == "__main__":
    main()
