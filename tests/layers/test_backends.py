"""``backend`` is a speed choice only: the piecewise layers give the same values, derivatives of every order,
dtypes, shapes and torch transforms with ``dense``, ``sparse``, ``fused`` and ``auto``.

Every test builds the layer once per backend with the same weights and compares with the dense layer, which
is itself tested against mathematics in ``test_fc.py``.
"""
import pytest
import torch
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vmap

import hol.networks
from hol import refine
from hol.layers import fc

f64 = torch.float64
BACKENDS = ["dense", "sparse", "fused", "auto"]
KINDS = ["continuous", "discontinuous"]
EXTRAPOLATIONS = ["polynomial", "clamp", "linear", "mirror"]


def layers(kind="continuous", in_features=3, out_features=2, *, n=3, segments=4, extrapolation="polynomial",
           bias=True, dtype=f64, backends=BACKENDS):
    """``{backend: layer}``, all with the dense layer's (random) weights."""
    torch.manual_seed(0)
    reference = fc(kind, in_features, out_features, n=n, segments=segments, extrapolation=extrapolation,
                   bias=bias, init="uniform", backend="dense", dtype=dtype)
    if bias:
        torch.nn.init.uniform_(reference.bias, -1, 1)
    result = {}
    for backend in backends:
        layer = fc(kind, in_features, out_features, n=n, segments=segments, extrapolation=extrapolation,
                   bias=bias, backend=backend, dtype=dtype)
        layer.load_state_dict(reference.state_dict())
        result[backend] = layer
    return result


def inputs(*shape, dtype=f64, seed=1):
    """Inside and outside the domain [-1, 1], away from the breaks (k / 2 for S = 4) and the kinks of clamp
    and mirror, where the derivatives of the links jump."""
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=f64) * 2.8 - 1.4
    x = torch.where((x * 2 - (x * 2).round()).abs() < 0.05, x + 0.07, x)
    x = torch.where((x.abs() - 1).abs() < 0.05, x * 1.1, x)
    return x.to(dtype)


def same(results, tol=1e-10):
    """Every backend's tensors equal the dense ones (relative to the largest entry)."""
    reference = results["dense"]
    for backend, values in results.items():
        for got, expected in zip(values, reference, strict=True):
            scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
            assert got.shape == expected.shape and got.dtype == expected.dtype, backend
            assert torch.allclose(got, expected, rtol=0, atol=tol * scale), \
                f"{backend}: max diff {(got - expected).abs().max().item():.3g}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_values_and_derivatives_to_third_order(kind, extrapolation):
    """y, dy/dx, dy/dW, d2y/dx2, d2y/dx dW, d3y/dx3 through create_graph=True: the sparse path's derivatives
    are themselves differentiable (a once-differentiable path would drop the curvature terms here)."""
    results = {}
    for backend, layer in layers(kind, extrapolation=extrapolation).items():
        x = inputs(2, 5, 3).requires_grad_()
        y = layer(x)
        dx, dw = torch.autograd.grad(y.pow(2).sum(), (x, layer.weight), create_graph=True)
        d2x, d2w = torch.autograd.grad((dx * x).sum() + dw.pow(2).sum(), (x, layer.weight), create_graph=True)
        (d3x,) = torch.autograd.grad(d2x.pow(3).sum(), x)
        results[backend] = (y, dx, dw, d2x, d2w, d3x)
    same(results, tol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_and_gradgradcheck(kind):
    for layer in layers(kind, 2, 2, segments=2, extrapolation="linear").values():
        x = inputs(3, 2).requires_grad_()

        def f(x, weight, bias, layer=layer):
            return functional_call(layer, {"weight": weight, "bias": bias}, (x,))

        args = (x, layer.weight.detach().clone().requires_grad_(),
                layer.bias.detach().clone().requires_grad_())
        assert torch.autograd.gradcheck(f, args)
        assert torch.autograd.gradgradcheck(f, args)


def test_hessian_of_a_network_loss_and_second_derivative_in_x():
    """The PDE use: u(x) by an MLP, u'' by autograd of autograd, and torch.autograd.functional.hessian."""
    torch.manual_seed(0)
    results = {}
    for backend in BACKENDS:
        torch.manual_seed(0)
        net = hol.networks.MLP("continuous", 1, 1, 1, 6, n=4, segments=3, init="uniform",
                               backend=backend).double()
        x = inputs(9, 1).requires_grad_()
        u = net(x)
        (du,) = torch.autograd.grad(u.sum(), x, create_graph=True)
        (d2u,) = torch.autograd.grad(du.sum(), x, create_graph=True)
        residual = (d2u + u).pow(2).mean()
        gradients = torch.autograd.grad(residual, list(net.parameters()))
        h = torch.autograd.functional.hessian(lambda z, net=net: net(z).pow(2).sum(), inputs(4, 1))
        results[backend] = (u, du, d2u, *gradients, h)
    same(results, tol=1e-9)


def test_torch_func_transforms():
    results = {}
    for backend, layer in layers().items():
        x = inputs(5, 3)
        params = {name: p.detach() for name, p in layer.named_parameters()}

        def loss(p, sample, layer=layer):
            return functional_call(layer, p, (sample.unsqueeze(0),)).pow(2).sum()

        per_sample = vmap(grad(loss), in_dims=(None, 0))(params, x)
        results[backend] = (vmap(layer)(x), jacrev(layer)(x), jacfwd(layer)(x),
                            jvp(layer, (x,), (torch.ones_like(x),))[1],
                            hessian(lambda z, layer=layer: layer(z).pow(3).sum())(x),
                            per_sample["weight"], per_sample["bias"],
                            vmap(jacrev(layer))(x.unsqueeze(1)))
    same(results)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_forward_and_backward(dtype):
    """Same output dtype and values to the dtype's rounding, in forward and every gradient."""
    results = {}
    for backend, layer in layers("discontinuous", 6, 5, n=4, segments=3, dtype=dtype).items():
        x = inputs(7, 6, dtype=dtype).requires_grad_()
        y = layer(x)
        gradients = torch.autograd.grad(y.float().pow(2).sum(), (x, layer.weight, layer.bias))
        results[backend] = (y, *gradients)
    same(results, tol=1e-12 if dtype == f64 else 8 * torch.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_follows_nn_linear(dtype):
    """Under torch.autocast the product runs in the autocast dtype, as nn.Linear's does, and so does its
    output."""
    expected_dtype = torch.nn.Linear(3, 2)(torch.zeros(1, 3)).dtype
    with torch.autocast("cpu", dtype=dtype):
        expected_dtype = torch.nn.Linear(3, 2)(torch.zeros(1, 3)).dtype
    assert expected_dtype == dtype
    results = {}
    for backend, layer in layers(dtype=torch.float32).items():
        x = inputs(8, 3, dtype=torch.float32).requires_grad_()
        with torch.autocast("cpu", dtype=dtype):
            y = layer(x)
        results[backend] = (y, *torch.autograd.grad(y.float().sum(), (x, layer.weight)))
    same(results, tol=8 * torch.finfo(dtype).eps)


@pytest.mark.parametrize("shape, in_features, out_features", [
    ((0, 3), 3, 2), ((1, 3), 3, 2), ((256, 1), 1, 16), ((6, 4), 4, 1), ((2, 3, 4), 4, 3), ((4,), 4, 3)],
    ids=["empty", "batch1", "in1", "out1", "leading_dims", "no_batch"])
def test_degenerate_shapes_forward_and_every_backward(shape, in_features, out_features):
    """Includes the reported crash: in_features = 1 at batch 256 with an input gradient (n=5, S=8)."""
    results = {}
    for backend, layer in layers("continuous", in_features, out_features, n=5, segments=8).items():
        x = inputs(*shape).requires_grad_()
        y = layer(x)
        results[backend] = (y, *torch.autograd.grad(y.pow(2).sum(), (x, layer.weight, layer.bias)))
    same(results)


def test_non_contiguous_inputs():
    results = {}
    for backend, layer in layers(in_features=4, out_features=3).items():
        x = inputs(4, 6).T.requires_grad_()  # [6, 4], transposed strides
        assert not x.is_contiguous()
        y = layer(x)
        results[backend] = (y, *torch.autograd.grad(y.pow(2).sum(), (x, layer.weight)))
    same(results)


def test_meta_tensors_give_shapes():
    for layer in layers().values():
        x = torch.empty(5, 7, 3, device="meta", dtype=layer.weight.dtype)
        assert layer.to("meta")(x).shape == (5, 7, 2)


def test_refine_then_compute_with_any_backend():
    """h/p refinement (hol.refine) of a layer keeps its functions exactly, whichever path computes them."""
    results = {}
    for backend, layer in layers().items():
        refined = refine(layer, n=5, segments=8)
        assert refined.hparams()["backend"] == backend
        x = inputs(6, 3).requires_grad_()
        y = refined(x)
        results[backend] = (layer(x), y, *torch.autograd.grad(y.sum(), (x, refined.weight)))
    same(results)
    assert torch.allclose(results["sparse"][0], results["sparse"][1], atol=1e-12)


@pytest.mark.slow
def test_compile_fullgraph_layer_and_mlp():
    """No graph break (fullgraph=True) for a layer of every backend and an MLP with sparse layers, forward and
    backward, equal to the eager dense layer; the MLP with dynamic=True over three batch sizes."""
    torch._dynamo.reset()
    results = {}
    for backend, layer in layers(dtype=torch.float32).items():
        x = inputs(32, 3, dtype=torch.float32).requires_grad_()
        y = torch.compile(layer, fullgraph=True)(x)
        results[backend] = (y, *torch.autograd.grad(y.pow(2).sum(), (x, layer.weight)))
        if backend == "dense":
            y = layer(x)
            results["eager"] = (y, *torch.autograd.grad(y.pow(2).sum(), (x, layer.weight)))
    same(results, tol=1e-6)
    net = hol.networks.MLP("continuous", 3, 2, 1, 16, n=3, segments=8)
    for layer in net.layers:
        layer.backend = "sparse"
    compiled = torch.compile(net, fullgraph=True, dynamic=True)
    for batch in (3, 17, 64):
        x = inputs(batch, 3, dtype=torch.float32)
        assert torch.allclose(compiled(x), net(x), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_export_with_a_dynamic_batch(backend):
    """torch.export of the runner's default MLP and of a wider one, batch dynamic: the exported program equals
    eager at other batch sizes (the backend choice reads no batch size, so nothing specializes)."""
    torch.manual_seed(0)
    for net in (hol.networks.MLP("continuous", 1, 1, 1, 20, n=3, segments=2),
                hol.networks.MLP("continuous", 4, 2, 1, 32, n=5, segments=16)):
        for layer in net.layers:
            layer.backend = backend
        example = inputs(16, net.layers[0].in_features, dtype=torch.float32)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        for batch in (1, 5, 100):
            x = inputs(batch, net.layers[0].in_features, dtype=torch.float32, seed=batch)
            assert torch.allclose(program.module()(x), net(x), rtol=1e-5, atol=1e-5)  # auto: either path


def test_onnx_export_takes_the_dense_path(monkeypatch):
    """ONNX has no segment-sparse operator: while exporting to ONNX every backend computes densely (the same
    function), so the exported graph is a correct one."""
    layer = layers(backends=["sparse"])["sparse"]
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert layer.compute_backend(torch.zeros(4, 3)) == "dense"
