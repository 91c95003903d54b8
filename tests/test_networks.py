"""hol.networks: structure, shapes, every parameter trained, options reaching the right layers, hparams/build
round trips and bad arguments."""
import pytest
import torch
from torch import nn

import hol
from hol.networks import MLP, ConvNet, build

DOUBLE = torch.float64
# every fc kind an MLP can be made of, with parameters (fourier_features has none)
FC_KINDS = [kind for kind in hol.layers.kinds() if kind not in ("polynomial_nd", "fourier_features")]


def inputs(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


def assert_every_parameter_has_a_gradient(net: nn.Module, x: torch.Tensor, nonzero: bool = True) -> None:
    """After one backward every parameter has a gradient (nonzero, unless ReLUs may all be off)."""
    net(x).square().sum().backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None, name
        assert not nonzero or parameter.grad.abs().sum() > 0, name


def max_abs(x):
    """``x / (max|x| + eps)`` per sample, written out from the definition."""
    return x / (x.abs().amax(dim=-1, keepdim=True) + 1e-6)


# ------------------------------------------------------------------------------------------------------------
# MLP


@pytest.mark.parametrize("kind", FC_KINDS)
def test_mlp_shapes_and_gradients_for_every_kind(kind):
    torch.manual_seed(0)
    net = MLP(kind, 5, 3, hidden_layers=1, hidden_width=4, n=3, segments=2, bias=True)
    assert net(inputs(2, 6, 5)).shape == (2, 6, 3)
    assert_every_parameter_has_a_gradient(net, inputs(8, 5), nonzero=kind != "relu")


def test_mlp_is_layers_with_normalization_between():
    net = MLP("continuous", 4, 2, hidden_layers=2, hidden_width=3, n=4, segments=2).double()
    assert len(net.layers) == 4 and len(net.norms) == 3
    sizes = [(layer.in_features, layer.out_features) for layer in net.layers]
    assert sizes == [(4, 3), (3, 3), (3, 3), (3, 2)]
    x = inputs(7, 4, dtype=DOUBLE)
    expected = net.layers[3](max_abs(net.layers[2](max_abs(net.layers[1](max_abs(net.layers[0](x)))))))
    torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-12)


def test_mlp_options_reach_only_the_kinds_that_use_them():
    net = MLP("continuous_prod", 3, 2, hidden_layers=0, hidden_width=4, n=4, segments=3, length=4.0,
              input_layer="polynomial", output_layer="product", init="uniform", alpha=0.5,
              extrapolation="clamp")
    first, last = net.layers
    assert first.kind == "polynomial" and "segments" not in first.hparams() and first.hparams()["n"] == 4
    assert first.hparams()["length"] == 4.0 and first.init == "uniform" and "alpha" not in first.hparams()
    assert first.hparams()["extrapolation"] == "clamp"
    assert last.kind == "product" and last.hparams() == {"kind": "product", "in_features": 4,
                                                         "out_features": 2, "bias": False, "init": "uniform",
                                                         "alpha": 0.5, "backend": "auto"}
    hidden = MLP("continuous_prod", 3, 2, 1, 4, n=4, segments=3, alpha=0.5).layers[1]
    assert hidden.hparams()["segments"] == 3 and hidden.hparams()["alpha"] == 0.5


def test_mlp_with_linear_input_and_output_layers():
    net = MLP("discontinuous", 6, 2, hidden_layers=1, hidden_width=5, n=3, segments=2,
              input_layer="linear", output_layer="linear")
    assert type(net.layers[0]) is nn.Linear and type(net.layers[-1]) is nn.Linear
    assert net.layers[0].bias is not None  # baselines keep nn.Linear's bias
    assert net.layers[1].kind == "discontinuous"
    assert_every_parameter_has_a_gradient(net, inputs(4, 6))


def test_mlp_input_layer_with_its_own_options_refines_and_rebuilds():
    net = MLP("continuous", 2, 3, hidden_layers=1, hidden_width=4, n=3, segments=2,
              input_layer={"kind": "discontinuous", "segments": 8},
              output_layer={"kind": "polynomial", "n": 4})
    assert [(layer.kind, layer.n, getattr(layer, "segments", None)) for layer in net.layers] == [
        ("discontinuous", 3, 8), ("continuous", 3, 2), ("polynomial", 4, 1)]
    finer = hol.refine(net.double(), n=5)
    hparams = finer.hparams()
    assert hparams["layer"] == {"kind": "continuous", "n": 5, "segments": 2}
    assert hparams["input_layer"] == {"kind": "discontinuous", "n": 5, "segments": 8}
    assert hparams["output_layer"] == {"kind": "polynomial", "n": 5}
    twin = build(hparams).double()
    twin.load_state_dict(finer.state_dict())
    x = inputs(5, 2, dtype=DOUBLE)
    torch.testing.assert_close(twin(x), net(x), rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="unknown layer option"):
        MLP("continuous", 2, 3, 1, 4, input_layer={"kind": "continuous", "colour": "red"})


def test_mlp_polynomial_nd_input_layer():
    net = MLP("continuous", 3, 2, hidden_layers=0, hidden_width=4, n=3, segments=2,
              input_layer="polynomial_nd", dims=2)
    assert net.layers[0].hparams()["dims"] == 2 and "dims" not in net.layers[1].hparams()
    assert net(inputs(5, 3, 2)).shape == (5, 2)
    assert_every_parameter_has_a_gradient(net, inputs(5, 3, 2))


@pytest.mark.parametrize("normalization", hol.layers.NORMS)
def test_mlp_normalizations(normalization):
    net = MLP("polynomial", 4, 2, hidden_layers=1, hidden_width=3, normalization=normalization)
    assert net(inputs(6, 4)).shape == (6, 2)
    assert_every_parameter_has_a_gradient(net, inputs(6, 4))


def test_mlp_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    net = MLP("continuous", 8, 4, hidden_layers=1, hidden_width=32, dropout=0.5)
    x = inputs(3, 8)
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))
    still = MLP("continuous", 8, 4, hidden_layers=1, hidden_width=32)
    assert torch.equal(still(x), still(x))


def test_mlp_hparams_rebuild_it():
    net = MLP("fourier", 3, 2, hidden_layers=1, hidden_width=4, n=2, input_layer="continuous", dropout=0.1,
              normalization="max_center", bias=True)
    hparams = net.hparams()
    assert hparams["name"] == "mlp" and hparams["layer"]["n"] == 2 and hparams["input_layer"] == "continuous"
    twin = build(hparams)
    twin.load_state_dict(net.state_dict())
    net.eval(), twin.eval()
    x = inputs(5, 3)
    assert torch.equal(twin(x), net(x))
    assert twin.hparams() == hparams


@pytest.mark.parametrize("options,message", [
    ({"layer": "spline"}, "unknown layer 'spline'"),
    ({"input_layer": "nope"}, "unknown input_layer 'nope'"),
    ({"layer": "polynomial_nd", "dims": 2}, "only be the input_layer"),
    ({"output_layer": "polynomial_nd"}, "only be the input_layer"),
    ({"in_features": 0}, "in_features must be"),
    ({"out_features": 1.5}, "out_features must be"),
    ({"hidden_layers": -1}, "hidden_layers must be"),
    ({"hidden_width": 0}, "hidden_width must be"),
    ({"normalization": "l2"}, "unknown normalization 'l2'"),
    ({"dropout": 1.0}, "dropout must be"),
    ({"dropout": -0.1}, "dropout must be"),
    ({"n": 1}, "n must be an integer >= 2"),
    ({"segments": 0}, "segments must be"),
    ({"widths": []}, "widths must list the width of every hidden value"),
    ({"layer": "tanh", "normalization": "tanh"}, "would apply tanh twice"),
    ({"widths": 4}, "widths must list"),
    ({"widths": [4, 0]}, r"widths\[1\] must be"),
    ({"input_domains": [[0, 1]]}, r"input_domains must give one \[low, high\] per input \(3\), got 1"),
    ({"input_domains": [[0, 1], [2, 2], [0, 1]]}, r"input_domains\[1\] must be a pair"),
    ({"input_layer": "polynomial_nd", "dims": 2, "input_domains": [[0, 1]] * 3}, "cannot scale the d-vector"),
])
def test_mlp_bad_arguments(options, message):
    arguments = {"layer": "continuous", "in_features": 3, "out_features": 2, "hidden_layers": 1,
                 "hidden_width": 4, **options}
    with pytest.raises(ValueError, match=message):
        MLP(**arguments)


def test_mlp_widths_per_layer():
    torch.manual_seed(0)
    uniform = MLP("continuous", 3, 2, hidden_layers=2, hidden_width=4, n=3)
    torch.manual_seed(0)
    listed = MLP("continuous", 3, 2, widths=[4, 4, 4], n=3)
    x = inputs(6, 3)
    assert torch.equal(listed(x), uniform(x)) and listed.widths == uniform.widths == [4, 4, 4]
    tapered = MLP("continuous", 4, 1, widths=[9, 5, 2], n=3, normalization="none")
    assert [(layer.in_features, layer.out_features) for layer in tapered.layers] == [(4, 9), (9, 5), (5, 2),
                                                                                       (2, 1)]
    assert len(tapered.norms) == 3
    twin = build(tapered.hparams())
    twin.load_state_dict(tapered.state_dict())
    assert torch.equal(twin(inputs(5, 4)), tapered(inputs(5, 4))) and twin.hparams() == tapered.hparams()


def test_mlp_input_domains_map_each_interval_onto_the_reference_domain():
    domains = [[0.0, 1.0], [0.5, 2.0], [-1.0, 1.0]]
    scaled = MLP("continuous", 3, 1, hidden_width=4, n=4, segments=2, input_domains=domains).double()
    plain = MLP("continuous", 3, 1, hidden_width=4, n=4, segments=2).double()
    plain.load_state_dict({key: value for key, value in scaled.state_dict().items()
                           if not key.startswith("input_scaling.")})
    low, high = torch.tensor(domains, dtype=torch.float64).T
    unit = torch.rand(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(scaled(low + (high - low) * unit), plain(2 * unit - 1), rtol=1e-13, atol=1e-13)
    x = inputs(7, 3).double()
    identity = MLP("continuous", 3, 1, hidden_width=4, n=4, input_domains=[[-1, 1]] * 3).double()
    assert torch.equal(identity.input_scaling(x), x)  # [-1, 1] itself: exactly the identity
    twin = build(scaled.hparams()).double()
    twin.load_state_dict(scaled.state_dict())
    assert torch.equal(twin(x), scaled(x))


# ------------------------------------------------------------------------------------------------------------
# ConvNet


@pytest.mark.parametrize("kind", hol.layers.conv_kinds())
def test_convnet_shapes_and_gradients_for_every_kind(kind):
    torch.manual_seed(0)
    net = ConvNet(kind, 1, [3, 4], 3, out_features=5, n=3, segments=2, bias=True)
    assert net(inputs(2, 1, 12, 12)).shape == (2, 5)
    assert_every_parameter_has_a_gradient(net, inputs(2, 1, 12, 12), nonzero=kind != "relu")


@pytest.mark.parametrize("dim", (1, 2, 3))
@pytest.mark.parametrize("pooling", ("avg", "max", "none"))
def test_convnet_blocks_keep_size_and_pool(dim, pooling):
    net = ConvNet("continuous", 2, [3, 2], 3, out_features=4, n=2, segments=2, pooling=pooling, dim=dim)
    x = inputs(2, 2, *[8] * dim)
    after_first = net.blocks[0](x)
    side = 4 if pooling != "none" else 8  # "same" padding, then 2x2 pooling
    assert after_first.shape == (2, 3, *[side] * dim)
    assert after_first.abs().amax() <= 1  # max_abs normalization keeps the maps in the domain
    assert net(x).shape == (2, 4)


def test_convnet_head_kinds_and_readout_size():
    net = ConvNet("polynomial", 1, [3], (3, 3), out_features=2, n=4, head="continuous", readout_size=2,
                  normalization="batch_norm", dropout=0.2)
    assert net.head.kind == "continuous" and net.head.in_features == 3 * 2 * 2
    assert net.head.hparams()["n"] == 4
    assert net.head.hparams()["segments"] == 1
    assert_every_parameter_has_a_gradient(net, inputs(3, 1, 9, 9))
    linear = ConvNet("polynomial", 1, [3], 3, out_features=2)
    assert type(linear.head) is nn.Linear and linear.head.in_features == 3


def test_convnet_with_baseline_convolutions():
    net = ConvNet("relu", 3, [4, 4], 3, out_features=10, pooling="max")
    assert isinstance(net.blocks[0][0], nn.Conv2d)
    assert_every_parameter_has_a_gradient(net, inputs(2, 3, 8, 8), nonzero=False)


def test_convnet_global_average_readout_takes_any_image_size():
    net = ConvNet("discontinuous", 1, [2], 3, out_features=3, segments=2)
    assert net(inputs(1, 1, 10, 10)).shape == net(inputs(1, 1, 17, 13)).shape == (1, 3)


def test_convnet_hparams_rebuild_it():
    net = ConvNet("fourier", 2, [3, 2], 3, out_features=4, n=2, pooling="max", head="polynomial", stride=1,
                  padding=1, dim=1)
    hparams = net.hparams()
    assert hparams["name"] == "conv" and hparams["channels"] == [3, 2]
    twin = build(hparams)
    twin.load_state_dict(net.state_dict())
    x = inputs(3, 2, 16)
    assert torch.equal(twin(x), net(x))


@pytest.mark.parametrize("options,message", [
    ({"layer": "product"}, "unknown layer 'product'"),
    ({"head": "polynomial_nd"}, "only be the input_layer"),
    ({"head": "mystery"}, "unknown head 'mystery'"),
    ({"channels": []}, "channels must list"),
    ({"channels": [3, 0]}, "channels entry must be"),
    ({"in_channels": 0}, "in_channels must be"),
    ({"out_features": 0}, "out_features must be"),
    ({"dim": 4}, "unknown dim 4; allowed: 1, 2, 3"),
    ({"pooling": "sum"}, "unknown pooling 'sum'"),
    ({"normalization": "group"}, "unknown normalization 'group'"),
    ({"readout_size": 0}, "readout_size must be"),
    ({"dropout": 2}, "dropout must be"),
])
def test_convnet_bad_arguments(options, message):
    arguments = {"layer": "continuous", "in_channels": 1, "channels": [2], "kernel_size": 3,
                 "out_features": 2, **options}
    with pytest.raises(ValueError, match=message):
        ConvNet(**arguments)


# ------------------------------------------------------------------------------------------------------------
# build


def test_build_needs_a_known_name():
    with pytest.raises(ValueError, match="unknown network name 'resnet'; allowed: conv, mlp"):
        build({"name": "resnet"})
    with pytest.raises(ValueError, match="unknown network name None"):
        build({"layer": "continuous"})


def test_build_does_not_modify_its_argument():
    hparams = MLP("continuous", 2, 2, 0, 3).hparams()
    build(hparams)
    assert hparams["name"] == "mlp"


def test_networks_report_layers_that_disagree():
    net = MLP("continuous", 2, 2, 1, 3, n=3)
    net.layers[1] = hol.layers.fc("continuous", 3, 3, n=5)
    with pytest.raises(RuntimeError, match="different n"):
        net.hparams()
