"""hol.refine against mathematics: exact h/p refinement preserves every link function (float64, random
weights), least-squares coarsening is the projection it claims and reports the change it causes."""

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

import hol
from hol import refine as refine_module
from hol.networks import MLP, ConvNet, build
from hol.refine import refine_with_report
from tests.helpers.modules import randomize

DOUBLE = torch.float64
EXACT = 1e-10
PIECEWISE = ("continuous", "discontinuous", "continuous_prod", "discontinuous_prod")
GLOBAL = ("polynomial", "polynomial_prod", "fourier")
CONV_KINDS = ("polynomial", "continuous", "discontinuous", "fourier")


def probe_points(segments: int, length: float = 2.0, reach: float = 0.75) -> torch.Tensor:
    """A dense grid over ``[-reach L, reach L]`` (domain plus extrapolation) with every break of up to
    ``4 * segments`` segments and points 1e-9 to either side of it."""
    half = 0.5 * length
    grid = torch.linspace(-reach * length, reach * length, 801, dtype=DOUBLE)
    breaks = -half + length * torch.arange(4 * segments + 1, dtype=DOUBLE) / (4 * segments)
    return torch.cat((grid, breaks, breaks - 1e-9, breaks + 1e-9))


def fc_inputs(segments: int, in_features: int = 3) -> torch.Tensor:
    """``[P, in_features]``: each input runs through the probe points, shifted so inputs differ."""
    points = probe_points(segments)
    return torch.stack([points.roll(7 * i) for i in range(in_features)], dim=-1)


def state_copy(module: nn.Module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


# ------------------------------------------------------------------------------------------------------------
# Exact refinement of fully connected layers


FC_CASES = {  # (n, segments) before -> after
    "p": ((3, 2), (6, 2)),
    "h": ((3, 2), (3, 6)),
    "hp": ((2, 3), (5, 6)),
    "hp_from_one": ((4, 1), (5, 4)),
}


@pytest.mark.parametrize("case", FC_CASES)
@pytest.mark.parametrize("kind", PIECEWISE + GLOBAL)
def test_fc_exact_refinement_keeps_the_function(kind, case):
    (n0, s0), (n1, s1) = FC_CASES[case]
    s0 = s0 if kind in PIECEWISE else 1
    layer = randomize(hol.layers.fc(kind, 3, 4, n=n0, segments=s0, dtype=DOUBLE, bias=True))
    before = state_copy(layer)
    refined = hol.refine(layer, n=n1, segments=s1)
    expected_segments = s1 if kind in PIECEWISE else 1
    assert refined.basis.n == n1 and getattr(refined.basis, "segments", 1) == expected_segments
    assert refined.hparams()["n"] == n1 and refined.hparams().get("segments", 1) == expected_segments
    assert refined.weight.shape == (4, 3, refined.basis.width) and refined.weight.dtype == DOUBLE
    x = fc_inputs(s0)
    torch.testing.assert_close(refined(x), layer(x), rtol=0, atol=EXACT)
    assert refined.refine_max_change < EXACT
    for key, value in before.items():  # the input is untouched
        assert torch.equal(layer.state_dict()[key], value)
    assert layer.basis.n == n0 and layer.hparams()["n"] == n0


@pytest.mark.parametrize("kind", ("continuous", "discontinuous"))
@pytest.mark.parametrize("extrapolation", ("polynomial", "linear", "clamp", "mirror"))
def test_exact_refinement_keeps_extrapolation(kind, extrapolation):
    layer = randomize(hol.layers.fc(kind, 2, 2, n=3, segments=2, extrapolation=extrapolation, dtype=DOUBLE))
    refined = hol.refine(layer, n=4, segments=4)
    x = 2.0 * fc_inputs(2, 2)  # reaches 1.5 L: far outside the domain
    torch.testing.assert_close(refined(x), layer(x), rtol=0, atol=EXACT)


def test_discontinuous_refinement_keeps_jumps_at_old_breaks():
    """A new end node on an old break takes the old limit from its own side: left and right limits stay."""
    layer = randomize(hol.layers.fc("discontinuous", 1, 1, n=3, segments=2, dtype=DOUBLE))
    old = layer.weight.detach()[0, 0]
    refined = hol.refine(layer, segments=4)
    # 4 segments of 3 values; the old break x=0 ends new segment 1, starts segment 2
    new = refined.weight.detach()[0, 0]
    assert new[5] == pytest.approx(old[2].item(), abs=EXACT)  # left limit at 0
    assert new[6] == pytest.approx(old[3].item(), abs=EXACT)  # right limit at 0
    assert abs(old[2] - old[3]) > 1e-3  # a real jump


def test_fourier_refinement_pads_with_zeros():
    layer = randomize(hol.layers.fc("fourier", 3, 2, n=2, dtype=DOUBLE))
    refined = hol.refine(layer, n=5)
    assert refined.weight.shape == (2, 3, 11)
    assert torch.equal(refined.weight[..., :5], layer.weight)
    assert torch.equal(refined.weight[..., 5:], torch.zeros(2, 3, 6, dtype=DOUBLE))
    x = fc_inputs(1)
    torch.testing.assert_close(refined(x), layer(x), rtol=0, atol=EXACT)


def test_polynomial_nd_p_refinement_is_exact():
    layer = randomize(hol.layers.fc("polynomial_nd", 3, 2, n=3, dims=2, dtype=DOUBLE))
    refined = hol.refine(layer, n=5, segments=3)  # segments do not apply to polynomial_nd
    assert refined.weight.shape == (2, 3, 25) and "segments" not in refined.hparams()
    x = torch.rand(50, 3, 2, dtype=DOUBLE, generator=torch.Generator().manual_seed(1)) * 3 - 1.5
    torch.testing.assert_close(refined(x), layer(x), rtol=0, atol=EXACT)
    assert refined.refine_max_change < EXACT


def test_product_and_baselines_are_left_alone():
    model = nn.Sequential(hol.layers.fc("product", 3, 3), hol.layers.fc("linear", 3, 3),
                          hol.layers.fc("relu", 3, 2))
    refined, report = refine_with_report(model, n=5, segments=4)
    assert report == {}
    assert refined is not model
    for key, value in model.state_dict().items():
        assert torch.equal(refined.state_dict()[key], value)


def test_unchanged_hyperparameters_leave_a_layer_as_it_is():
    model = nn.Sequential(hol.layers.fc("polynomial", 2, 2, n=3), hol.layers.fc("continuous", 2, 2, n=3))
    refined, report = refine_with_report(model, segments=2)
    assert list(report) == ["1"]
    assert refined[0].hparams() == model[0].hparams() and refined[1].hparams()["segments"] == 2


# ------------------------------------------------------------------------------------------------------------
# Exact refinement of convolutions


@pytest.mark.parametrize("transpose", (False, True))
@pytest.mark.parametrize("dim", (1, 2))
@pytest.mark.parametrize("kind", CONV_KINDS)
def test_conv_exact_refinement_keeps_the_function(kind, dim, transpose):
    s0 = 2 if kind in PIECEWISE else 1
    layer = randomize(hol.layers.conv(kind, 2, 3, 3, dim=dim, transpose=transpose, n=3, segments=s0, stride=2,
                                      padding=1, bias=True, dtype=DOUBLE))
    before = state_copy(layer)
    refined = hol.refine(layer, n=5, segments=2 * s0)
    assert refined.hparams() == {**layer.hparams(), "n": 5, "segments": 2 * s0 if kind in PIECEWISE else 1}
    assert refined.weight.shape == (*layer.weight.shape[:-1], refined.basis.width)
    x = torch.rand(2, 2, *[7] * dim, dtype=DOUBLE, generator=torch.Generator().manual_seed(2)) * 3 - 1.5
    torch.testing.assert_close(refined(x), layer(x), rtol=0, atol=EXACT)
    assert refined.refine_max_change < EXACT
    for key, value in before.items():
        assert torch.equal(layer.state_dict()[key], value)


@pytest.mark.parametrize("kind", ("continuous", "discontinuous"))
def test_conv_h_and_p_refinement_separately(kind):
    layer = randomize(hol.layers.conv(kind, 2, 2, 3, n=2, segments=3, padding=1, dtype=DOUBLE))
    x = torch.rand(1, 2, 6, 6, dtype=DOUBLE, generator=torch.Generator().manual_seed(3)) * 2 - 1
    for options in ({"n": 4}, {"segments": 9}):
        refined = hol.refine(layer, **options)
        torch.testing.assert_close(refined(x), layer(x), rtol=0, atol=EXACT)


# ------------------------------------------------------------------------------------------------------------
# Approximate refinement: least-squares projection, reported change


def smooth_layer(kind: str, n: int, segments: int) -> nn.Module:
    """Links ``f_oi(x) = sin(2 x + c_oi)`` (nodal values; Fourier: a few decaying harmonics)."""
    layer = hol.layers.fc(kind, 2, 3, n=n, segments=segments, dtype=DOUBLE)
    phase = torch.arange(6, dtype=DOUBLE).reshape(3, 2, 1)
    with torch.no_grad():
        if kind == "fourier":
            k = torch.arange(2 * n + 1)
            layer.weight.copy_(torch.cos(phase + k) * 0.1 ** k ** 0.5)
        else:
            layer.weight.copy_(torch.sin(2 * layer.basis.node_positions() + phase))
    return layer


def dense_link_change(old, new) -> float:
    """``max |f_new - f_old|`` over all links on a dense grid of the domain (independent of refine's
    sample)."""
    x = torch.linspace(-1, 1, 4001, dtype=DOUBLE)[:, None].expand(-1, old.in_features)
    return (new.links(x) - old.links(x)).abs().max().item()


@pytest.mark.parametrize("kind,before,after,bound", [
    ("polynomial", (9, 1), (6, 1), 1e-2),
    ("continuous", (5, 4), (5, 2), 1e-2),  # coarsening
    ("continuous", (4, 3), (4, 4), 1e-2),  # not nested
    ("discontinuous", (4, 3), (4, 2), 5e-2),
    ("fourier", (6, 1), (3, 1), 0.2),
])
def test_projection_reports_its_change(kind, before, after, bound):
    layer = smooth_layer(kind, *before)
    refined, report = refine_with_report(layer, n=after[0], segments=after[1])
    change = dense_link_change(layer, refined)
    assert 0 < report[""] < bound  # small for a smooth function, but not zero
    assert report[""] == pytest.approx(change, rel=0.05)  # the reported change is the real one
    recorded = hol.refine(layer, n=after[0], segments=after[1]).refine_max_change
    assert isinstance(recorded, float) and recorded == report[""]


@pytest.mark.parametrize("kind,before,after", [
    ("continuous", (5, 4), (2, 3)),
    ("discontinuous", (5, 2), (3, 3)),
    ("polynomial", (7, 1), (2, 1)),
])
def test_projection_is_exact_on_functions_of_the_new_space(kind, before, after):
    """Least squares reproduces any function the new space contains: here random lines."""
    layer = hol.layers.fc(kind, 3, 2, n=before[0], segments=before[1], init="linear", dtype=DOUBLE)
    refined = hol.refine(layer, n=after[0], segments=after[1])
    x = fc_inputs(before[1])
    torch.testing.assert_close(refined(x), layer(x), rtol=0, atol=EXACT)
    assert refined.refine_max_change < EXACT


def test_polynomial_nd_coarsening_reports_its_change_and_keeps_planes():
    layer = randomize(hol.layers.fc("polynomial_nd", 1, 2, n=5, dims=2, dtype=DOUBLE))
    refined, report = refine_with_report(layer, n=3)
    grid = torch.linspace(-1, 1, 101, dtype=DOUBLE)
    x = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), dim=-1).reshape(-1, 1, 2)
    change = (refined.links(x) - layer.links(x)).abs().max().item()
    assert report[""] > 0.1 and report[""] == pytest.approx(change, rel=0.05)
    # a + b . x per link
    planes = hol.layers.fc("polynomial_nd", 2, 2, n=5, dims=2, init="linear", dtype=DOUBLE)
    coarse = hol.refine(planes, n=2)
    x = torch.rand(30, 2, 2, dtype=DOUBLE, generator=torch.Generator().manual_seed(8)) * 2 - 1
    torch.testing.assert_close(coarse(x), planes(x), rtol=0, atol=EXACT)


def test_fourier_truncation_keeps_the_leading_coefficients():
    layer = randomize(hol.layers.fc("fourier", 2, 2, n=4, dtype=DOUBLE))
    refined = hol.refine(layer, n=2)
    assert torch.equal(refined.weight, layer.weight[..., :5])
    assert refined.refine_max_change > 0.1


def test_conv_projection_reports_change():
    layer = randomize(hol.layers.conv("continuous", 2, 2, 3, n=4, segments=3, dtype=DOUBLE))
    refined = hol.refine(layer, n=3, segments=2)
    assert refined.weight.shape == (2, 2, 3, 3, 5) and refined.refine_max_change > 0.1


# ------------------------------------------------------------------------------------------------------------
# Whole networks and module trees


def test_mlp_exact_refinement_keeps_outputs():
    net = randomize(MLP("continuous", 4, 3, 2, 6, n=2, segments=2, input_layer="discontinuous",
                        output_layer="polynomial").double())
    x = torch.rand(20, 4, dtype=DOUBLE, generator=torch.Generator().manual_seed(4)) * 2 - 1
    refined = hol.refine(net, n=5, segments=4)
    assert [layer.basis.n for layer in refined.layers] == [5, 5, 5, 5]
    assert [layer.hparams().get("segments") for layer in refined.layers] == [4, 4, 4, None]
    torch.testing.assert_close(refined(x), net(x), rtol=0, atol=EXACT)
    assert refined.refine_max_change < EXACT
    assert net.hparams()["layer"]["n"] == 2 and refined.hparams()["layer"]["n"] == 5
    assert refined.hparams()["layer"]["segments"] == 4


def test_convnet_exact_refinement_keeps_outputs():
    net = randomize(ConvNet("discontinuous", 2, [3, 4], 3, out_features=5, n=2, segments=2,
                            head="continuous").double())
    x = torch.rand(2, 2, 12, 12, dtype=DOUBLE, generator=torch.Generator().manual_seed(5)) * 2 - 1
    refined = hol.refine(net, n=4, segments=6)
    torch.testing.assert_close(refined(x), net(x), rtol=0, atol=EXACT)
    assert refined.hparams()["layer"]["n"] == 4 and refined.hparams()["layer"]["segments"] == 6
    assert refined.blocks[0][0].weight.shape == (3, 2, 3, 3, 24)  # discontinuous: K = n S


@pytest.mark.parametrize("make,shape", [
    (lambda: MLP("discontinuous", 4, 3, 1, 5, n=2, segments=2, output_layer="linear"), (6, 4)),
    (lambda: ConvNet("continuous", 1, [2, 3], 3, out_features=4, n=2, segments=2, head="polynomial"),
     (2, 1, 8, 8)),
])
def test_refined_checkpoint_rebuilds(make, shape, tmp_path):
    net = randomize(make().double())
    refined = hol.refine(net, n=3, segments=4)
    torch.save({"hparams": refined.hparams(), "state_dict": refined.state_dict()}, tmp_path / "model.ckpt")
    checkpoint = torch.load(tmp_path / "model.ckpt")
    rebuilt = build(checkpoint["hparams"]).double()
    rebuilt.load_state_dict(checkpoint["state_dict"])
    x = torch.rand(*shape, dtype=DOUBLE, generator=torch.Generator().manual_seed(6)) * 2 - 1
    torch.testing.assert_close(rebuilt(x), net(x), rtol=0, atol=EXACT)


def test_any_module_tree_is_refined_and_sharing_is_kept():
    shared = hol.layers.fc("continuous", 3, 3, n=2, segments=2, dtype=DOUBLE)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.ModuleDict({"conv": hol.layers.conv("polynomial", 1, 3, 2, n=2, dtype=DOUBLE),
                                           "pool": nn.AdaptiveAvgPool2d(1)})
            self.blocks = nn.Sequential(shared, nn.Tanh(), shared,
                                        hol.layers.fc("linear", 3, 2, dtype=DOUBLE))

        def forward(self, x):
            return self.blocks(self.features["pool"](self.features["conv"](x)).flatten(1))

    model = randomize(Model())
    refined, report = refine_with_report(model, n=4, segments=4)
    assert set(report) == {"features.conv", "blocks.0"}
    assert refined.blocks[0] is refined.blocks[2] and refined.blocks[0] is not shared
    assert refined.features["conv"].basis.n == 4 and refined.blocks[0].hparams()["segments"] == 4
    x = torch.rand(3, 1, 5, 5, dtype=DOUBLE, generator=torch.Generator().manual_seed(7)) * 2 - 1
    torch.testing.assert_close(refined(x), model(x), rtol=0, atol=EXACT)
    assert shared.basis.n == 2 and model.blocks[0] is shared


def test_dtype_mode_and_requires_grad_are_kept():
    layer = hol.layers.fc("continuous", 3, 2, n=3, segments=1).eval()
    layer.weight.requires_grad_(False)
    refined = hol.refine(layer, segments=2)
    assert refined.weight.dtype == torch.float32 and refined.basis.transform.dtype == torch.float32
    assert not refined.training and not refined.weight.requires_grad
    x = torch.rand(10, 3) * 2 - 1
    torch.testing.assert_close(refined(x), layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: hol.layers.fc("continuous", 3, 2, n=2, bias=True, dtype=DOUBLE),
    lambda: hol.layers.conv("discontinuous", 2, 3, 3, n=2, bias=True, transpose=True, dtype=DOUBLE),
    lambda: MLP("continuous", 3, 2, 1, 4, n=2, bias=True, normalization="batch_norm").double(),
])
def test_everything_but_the_shapes_is_carried_over(make):
    """Frozen parameters stay frozen (each one, not only the weight), modes and attributes are kept."""
    model = make()
    frozen = {name for index, (name, p) in enumerate(model.named_parameters()) if index % 2 == 0}
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name not in frozen)
    model.eval()
    model.training = True  # the outer module in training mode, its submodules in eval mode
    model.tag = "mine"
    refined = hol.refine(model, n=3, segments=2)
    assert {name for name, p in refined.named_parameters() if not p.requires_grad} == frozen
    modes = {name: module.training for name, module in model.named_modules()}
    assert {name: module.training for name, module in refined.named_modules()} == modes
    assert refined.tag == "mine" and all(p.dtype == DOUBLE for p in refined.parameters())


def test_hooks_cannot_be_carried_over_and_say_so():
    layer = hol.layers.fc("continuous", 3, 2, n=2)
    layer.register_forward_hook(lambda module, inputs, output: None)
    with pytest.warns(UserWarning, match="forward hooks of layer .* are not carried over"):
        hol.refine(layer, n=3)
    plain = hol.layers.fc("continuous", 3, 2, n=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hol.refine(plain, n=3)


@pytest.mark.parametrize("network", ["mlp", "convnet"])
def test_weight_norm_networks_refine_exactly_and_stay_weight_normalized(network):
    torch.manual_seed(0)
    if network == "mlp":
        net, x = MLP("continuous", 2, 1, 1, 4, n=3, segments=2), torch.rand(10, 2, dtype=DOUBLE) * 2 - 1
    else:
        net = ConvNet("continuous", 1, [2, 3], 3, out_features=2, n=3)
        x = torch.rand(2, 1, 8, 8, dtype=DOUBLE)
    net = net.double()
    layers = [module for module in net.modules() if refine_module.is_hol_layer(module)]
    for layer in layers:
        weight_norm(layer, "weight")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing lost: weight norm and its checkpoint hook carried over
        refined = hol.refine(net, n=5, segments=4)  # nested: exact
    torch.testing.assert_close(refined(x), net(x), rtol=0, atol=1e-12)
    new_layers = [module for module in refined.modules() if refine_module.is_hol_layer(module)]
    assert all(parametrize.is_parametrized(layer, "weight") and layer.n == 5 for layer in new_layers)
    magnitude = new_layers[0].parametrizations.weight.original0  # weight norm's g, one per output
    assert magnitude.requires_grad and magnitude.shape[0] == new_layers[0].weight.shape[0]


def test_refinement_leaves_the_random_state_alone():
    layer = hol.layers.fc("continuous", 3, 2, n=2)
    state = torch.random.get_rng_state()
    hol.refine(layer, n=4, segments=3)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_refined_layer_trains():
    layer = hol.refine(hol.layers.fc("discontinuous", 3, 2, n=2, segments=1), n=3, segments=2)
    layer(torch.rand(4, 3) * 2 - 1).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.shape == (2, 3, 6)


# ------------------------------------------------------------------------------------------------------------
# Bad arguments


@pytest.mark.parametrize("options,message", [
    ({}, "needs n or segments"),
    ({"n": 0}, "n must be"),
    ({"n": 2.5}, "n must be"),
    ({"n": True}, "n must be"),
    ({"segments": 0}, "segments must be"),
    ({"segments": "2"}, "segments must be"),
])
def test_bad_arguments(options, message):
    with pytest.raises(ValueError, match=message):
        hol.refine(hol.layers.fc("continuous", 2, 2), **options)


def test_order_too_low_for_piecewise_kind_is_rejected():
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        hol.refine(hol.layers.fc("continuous", 2, 2), n=1)

