"""hol.layers.bases against mathematics: nodes, Lagrange identities, geometry, Fourier layout (float64)."""
import math

import pytest
import torch

from hol.layers import bases
from hol.ops import lagrange

TOL = 1e-12
f64 = torch.float64


def reference_nodes(n: int) -> torch.Tensor:
    """X_k = -cos(pi k / (n-1)), written out independently of the library."""
    if n == 1:
        return torch.zeros(1, dtype=f64)
    return torch.tensor([-math.cos(math.pi * k / (n - 1)) for k in range(n)], dtype=f64)


def monomial_polynomial(degree: int, seed: int):
    """A random polynomial p(t) = sum_j c_j t^j of the given degree and its coefficients."""
    coefficients = torch.randn(degree + 1, generator=torch.Generator().manual_seed(seed), dtype=f64)

    def p(t: torch.Tensor) -> torch.Tensor:
        return sum(c * t**j for j, c in enumerate(coefficients))

    return p


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 13])
def test_chebyshev_lobatto_nodes(n):
    nodes = lagrange.chebyshev_lobatto_nodes(n)
    assert nodes.dtype == f64 and nodes.shape == (n,)
    torch.testing.assert_close(nodes, reference_nodes(n), rtol=0, atol=TOL)
    if n > 1:
        assert nodes[0] == -1 and nodes[-1] == 1
        assert torch.all(nodes[1:] > nodes[:-1])  # ascending


def test_single_node_is_midpoint():
    assert lagrange.chebyshev_lobatto_nodes(1).tolist() == [0.0]


def test_nodes_reject_n_below_one():
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        lagrange.chebyshev_lobatto_nodes(0)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, 16])
def test_lagrange_basis_is_cardinal_at_nodes(n):
    transform = lagrange.lagrange_transform(n)
    values = lagrange.lagrange_basis(reference_nodes(n), transform)  # phi_k(X_j)
    torch.testing.assert_close(values, torch.eye(n, dtype=f64), rtol=0, atol=TOL)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_lagrange_basis_is_partition_of_unity_everywhere(n):
    transform = lagrange.lagrange_transform(n)
    t = torch.linspace(-1.6, 1.6, 101, dtype=f64)  # also outside [-1, 1]
    total = lagrange.lagrange_basis(t, transform).sum(-1)
    torch.testing.assert_close(total, torch.ones_like(t), rtol=0, atol=1e-11)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 9])
def test_lagrange_basis_reproduces_polynomials_of_degree_n_minus_1(n):
    transform = lagrange.lagrange_transform(n)
    p = monomial_polynomial(n - 1, seed=n)
    t = torch.linspace(-1.5, 1.5, 61, dtype=f64)  # inside and outside [-1, 1]
    interpolant = lagrange.lagrange_basis(t, transform) @ p(reference_nodes(n))
    torch.testing.assert_close(interpolant, p(t), rtol=0, atol=1e-11)


@pytest.mark.parametrize("n", [2, 3, 5, 7])
def test_lagrange_basis_derivative_differentiates_the_interpolant(n):
    transform = lagrange.lagrange_transform(n)
    coefficients = torch.randn(n, dtype=f64, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(-1.2, 1.2, 25, dtype=f64)
    # d/dt sum_j c_j t^j = sum_j j c_j t^(j-1)
    p_values = sum(c * reference_nodes(n) ** j for j, c in enumerate(coefficients))
    dp = sum(j * c * t ** (j - 1) for j, c in enumerate(coefficients) if j > 0) + 0 * t
    torch.testing.assert_close(lagrange.lagrange_basis_derivative(t, transform) @ p_values, dp,
                               rtol=0, atol=1e-10)


def test_lagrange_basis_does_not_degrade_for_large_n():
    n = 40
    values = lagrange.lagrange_basis(reference_nodes(n), lagrange.lagrange_transform(n))
    torch.testing.assert_close(values, torch.eye(n, dtype=f64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("segments, length", [(1, 2.0), (3, 2.0), (4, 5.0)])
def test_segment_coordinates(segments, length):
    half = length / 2
    width = length / segments
    s_expected = torch.arange(segments)
    left = -half + width * s_expected.to(f64)
    # left end of each segment: t = -1, segment s (the breakpoint belongs to the right segment)
    s, t = lagrange.segment_coordinates(left, segments, length)
    assert s.tolist() == s_expected.tolist()
    torch.testing.assert_close(t, -torch.ones_like(t), rtol=0, atol=TOL)
    # middle of each segment: t = 0
    s, t = lagrange.segment_coordinates(left + width / 2, segments, length)
    assert s.tolist() == s_expected.tolist()
    torch.testing.assert_close(t, torch.zeros_like(t), rtol=0, atol=TOL)
    # right end of the domain: last segment, t = 1; beyond: end segments continue linearly
    x = torch.tensor([half, half + width, -half - width], dtype=f64)
    s, t = lagrange.segment_coordinates(x, segments, length)
    assert s.tolist() == [segments - 1, segments - 1, 0]
    torch.testing.assert_close(t, torch.tensor([1.0, 3.0, -3.0], dtype=f64), rtol=0, atol=TOL)


@pytest.mark.parametrize("n, segments, length", [(2, 1, 2.0), (3, 2, 2.0), (5, 3, 4.0)])
def test_piecewise_node_positions(n, segments, length):
    nodes = reference_nodes(n)
    expected = [-length / 2 + length * (2 * s + 1 + nodes[k].item()) / (2 * segments)
                for s in range(segments) for k in range(n)]
    discontinuous = lagrange.piecewise_node_positions(n, segments, length, continuous=False)
    torch.testing.assert_close(discontinuous, torch.tensor(expected, dtype=f64), rtol=0, atol=TOL)
    continuous = lagrange.piecewise_node_positions(n, segments, length, continuous=True)
    assert continuous.shape == ((n - 1) * segments + 1,)
    for s in range(segments):
        for k in range(n):
            assert abs(continuous[s * (n - 1) + k].item() - expected[s * n + k]) < TOL


@pytest.mark.parametrize("continuous", [True, False])
def test_piecewise_expand_layout_and_sparsity(continuous):
    n, segments, length = 4, 3, 2.0
    basis = bases.LagrangeBasis(n, segments, length, continuous=continuous, dtype=f64)
    assert basis.width == ((n - 1) * segments + 1 if continuous else n * segments)
    positions = basis.node_positions()
    expansion = basis(positions)  # (K, K): phi_m at the node of m
    stride = n - 1 if continuous else n
    for m, x in enumerate(positions.tolist()):
        row = expansion[m]
        s = min(int((x + length / 2) / length * segments), segments - 1)
        support = set(range(s * stride, s * stride + n))
        assert set(torch.nonzero(row).flatten().tolist()) <= support
        assert abs(row.sum().item() - 1) < TOL  # partition of unity inside the segment


def test_fourier_basis_layout_and_period():
    n, length = 3, 3.0
    x = torch.linspace(-2.0, 2.0, 17, dtype=f64)
    omega = 2 * math.pi / length
    expected = [torch.ones_like(x)]
    for j in range(1, n + 1):
        expected += [torch.cos(j * omega * x), torch.sin(j * omega * x)]
    phi = bases.fourier_basis(x, n, length)
    assert phi.shape == (17, 2 * n + 1)
    torch.testing.assert_close(phi, torch.stack(expected, -1), rtol=0, atol=TOL)
    torch.testing.assert_close(bases.fourier_basis(x + length, n, length), phi, rtol=0, atol=1e-12)


def test_tensor_basis_is_row_major_product():
    n, dims = 3, 3
    basis = bases.TensorLagrangeBasis(n, dims, dtype=f64)
    x = torch.rand(5, dims, dtype=f64) * 2 - 1
    transform = lagrange.lagrange_transform(n)
    per_dim = [lagrange.lagrange_basis(x[:, j], transform) for j in range(dims)]
    phi = basis(x)
    assert phi.shape == (5, n**dims)
    for k0 in range(n):
        for k1 in range(n):
            for k2 in range(n):
                m = k0 * n * n + k1 * n + k2
                expected = per_dim[0][:, k0] * per_dim[1][:, k1] * per_dim[2][:, k2]
                torch.testing.assert_close(phi[:, m], expected, rtol=0, atol=TOL)
    positions = basis.node_positions()
    assert positions.shape == (n**dims, dims)
    torch.testing.assert_close(basis(positions), torch.eye(n**dims, dtype=f64), rtol=0, atol=TOL)


def test_constants_are_recomputed_in_float64_after_dtype_moves():
    basis = bases.LagrangeBasis(6, 2, dtype=f64)
    exact = lagrange.lagrange_transform(6)
    basis.float()
    assert basis.transform.dtype == torch.float32
    basis.double()
    assert basis.transform.dtype == f64
    assert torch.equal(basis.transform, exact)  # not a float32 round trip
