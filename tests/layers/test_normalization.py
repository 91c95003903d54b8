"""Normalization layers by name, on fc-shaped [..., F] and conv-shaped [B, C, *spatial] inputs."""
import pytest
import torch

import hol.layers
from hol.layers import norm

f64 = torch.float64
TOL = 1e-12


def test_norms_lists_the_contract():
    assert set(hol.layers.NORMS) == {"max_abs", "max_center", "layer_norm", "batch_norm", "tanh", "none"}


def test_an_mlp_of_linear_links_with_tanh_between_is_the_tanh_mlp():
    """n = 2 polynomial links are affine: with tanh between the layers the network is the standard tanh MLP
    (the PINN baseline), so a higher n is a strict superset of it."""
    torch.manual_seed(0)
    net = hol.networks.MLP("polynomial", 2, 1, hidden_layers=1, hidden_width=4, n=2,
                           normalization="tanh").double()
    x = torch.rand(5, 2, dtype=f64) * 2 - 1
    h = x
    for index, layer in enumerate(net.layers):
        slope = layer.weight[..., 1] - layer.weight[..., 0]  # values at the nodes -1, 1: f(x) = a + b x
        intercept = 0.5 * (layer.weight[..., 1] + layer.weight[..., 0])
        h = h @ (0.5 * slope).T + intercept.sum(-1)
        h = torch.tanh(h) if index < len(net.layers) - 1 else h
    torch.testing.assert_close(net(x), h, rtol=0, atol=TOL)


def test_max_abs_per_sample_on_fc_inputs():
    x = torch.randn(2, 3, 7, dtype=f64) * torch.tensor([1.0, 10.0, 0.1], dtype=f64).view(1, 3, 1)
    layer = norm("max_abs", 7, eps=0.0)
    y = layer(x)
    torch.testing.assert_close(y, x / x.abs().amax(-1, keepdim=True), rtol=0, atol=TOL)
    torch.testing.assert_close(y.abs().amax(-1), torch.ones(2, 3, dtype=f64), rtol=0, atol=TOL)


def test_max_abs_uses_eps():
    x = torch.tensor([[0.0, 2.0, -4.0]], dtype=f64)
    torch.testing.assert_close(norm("max_abs", eps=1.0)(x), x / 5.0, rtol=0, atol=TOL)
    assert torch.equal(norm("max_abs")(torch.zeros(2, 3)), torch.zeros(2, 3))  # no division by zero


def test_max_abs_per_sample_on_conv_inputs():
    x = torch.randn(3, 4, 5, 6, dtype=f64)
    x[1] *= 100
    y = norm("max_abs", 4, spatial_dims=2, eps=0.0)(x)
    expected = x / x.abs().amax(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(y, expected, rtol=0, atol=TOL)
    torch.testing.assert_close(y.abs().amax(dim=(1, 2, 3)), torch.ones(3, dtype=f64), rtol=0, atol=TOL)


@pytest.mark.parametrize("spatial_dims, shape",
                         [(0, (4, 9)), (0, (2, 3, 9)), (1, (4, 3, 8)), (2, (4, 3, 5, 5))])
def test_max_center_maps_each_sample_onto_minus_one_one(spatial_dims, shape):
    x = torch.randn(*shape, dtype=f64) * 3 + 7
    y = norm("max_center", shape[1], spatial_dims=spatial_dims, eps=0.0)(x)
    dims = (-1,) if spatial_dims == 0 else tuple(range(1, len(shape)))
    torch.testing.assert_close(y.amax(dim=dims), torch.ones_like(y.amax(dim=dims)), rtol=0, atol=TOL)
    torch.testing.assert_close(y.amin(dim=dims), -torch.ones_like(y.amin(dim=dims)), rtol=0, atol=TOL)
    # an affine map per sample: shifting or scaling a sample does not change its output
    torch.testing.assert_close(norm("max_center", spatial_dims=spatial_dims, eps=0.0)(2.5 * x - 1), y,
                               rtol=0, atol=1e-12)


def test_layer_norm_on_fc_and_conv_inputs():
    x = torch.randn(2, 5, 8, dtype=f64) * 4 + 3
    y = norm("layer_norm", 8, eps=1e-12).to(f64)(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(2, 5, dtype=f64), rtol=0, atol=1e-10)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(2, 5, dtype=f64), rtol=0, atol=1e-10)
    maps = torch.randn(3, 4, 5, 5, dtype=f64) * 2 - 1
    y = norm("layer_norm", 4, spatial_dims=2, eps=1e-12).to(f64)(maps)  # over C and space, per sample
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.zeros(3, dtype=f64), rtol=0, atol=1e-10)
    torch.testing.assert_close(y.var(dim=(1, 2, 3), unbiased=False), torch.ones(3, dtype=f64),
                               rtol=0, atol=1e-10)


def test_batch_norm_on_fc_inputs_with_leading_dims():
    x = torch.randn(6, 4, 5, dtype=f64) * 3 + 2
    layer = norm("batch_norm", 5, eps=1e-12).to(f64).train()
    y = layer(x)
    assert y.shape == x.shape
    flat = y.reshape(-1, 5)  # statistics over every leading position, per feature
    torch.testing.assert_close(flat.mean(0), torch.zeros(5, dtype=f64), rtol=0, atol=1e-10)
    torch.testing.assert_close(flat.var(0, unbiased=False), torch.ones(5, dtype=f64), rtol=0, atol=1e-10)
    assert layer.running_mean.shape == (5,)


@pytest.mark.parametrize("spatial_dims", [1, 2, 3])
def test_batch_norm_on_conv_inputs(spatial_dims):
    shape = (4, 3) + (4,) * spatial_dims
    x = torch.randn(*shape, dtype=f64) + 5
    y = norm("batch_norm", 3, spatial_dims=spatial_dims, eps=1e-12).to(f64).train()(x)
    dims = (0, *range(2, 2 + spatial_dims))
    torch.testing.assert_close(y.mean(dim=dims), torch.zeros(3, dtype=f64), rtol=0, atol=1e-10)
    torch.testing.assert_close(y.var(dim=dims, unbiased=False), torch.ones(3, dtype=f64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(3, 7), (2, 3, 4, 4)])
def test_none_is_identity(shape):
    x = torch.randn(*shape)
    assert torch.equal(norm("none", shape[1])(x), x)


@pytest.mark.parametrize("name", ["max_abs", "max_center"])
def test_per_sample_norms_are_differentiable(name):
    x = torch.randn(3, 5, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(norm(name), (x,))


def test_per_sample_norms_extra_repr():
    assert "spatial_dims=2" in repr(norm("max_abs", spatial_dims=2))
    assert "eps=0.001" in repr(norm("max_center", eps=1e-3))


@pytest.mark.parametrize("call, pattern", [
    (lambda: norm("whiten", 4), r"norm 'whiten'.*allowed: batch_norm, layer_norm, max_abs, max_center, none"),
    (lambda: norm("layer_norm"), r"layer_norm.*num_features"),
    (lambda: norm("batch_norm"), r"batch_norm.*num_features"),
    (lambda: norm("batch_norm", 3, spatial_dims=4), r"spatial_dims must be 0, 1, 2 or 3.*got 4"),
])
def test_bad_arguments(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
