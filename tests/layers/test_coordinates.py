"""The coordinate networks' baselines: random Fourier features and SIREN layers against their formulas and
initializations, and the MLPs built from them (kinds of the registry) training a step."""
import math

import pytest
import torch

import hol
from hol.layers import FourierFeatures, SineLinear, kind_info
from hol.layers.coordinates import FOURIER_FEATURES_SCALE, SIREN_OMEGA
from hol.networks import MLP, build

DOUBLE = torch.float64


def coordinates(count: int, seed: int = 0, dtype=DOUBLE) -> torch.Tensor:
    return torch.rand(count, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


@pytest.mark.parametrize("out_features", [6, 7])
def test_fourier_features_are_cosines_and_sines_of_the_projections(out_features):
    layer = hol.layers.fc("fourier_features", 2, out_features, dtype=DOUBLE)
    x = coordinates(5)
    b = layer.frequencies  # [ceil(out/2), 2]
    assert b.shape == (math.ceil(out_features / 2), 2) and not b.requires_grad
    phase = torch.stack([2 * math.pi * (x @ row) for row in b], dim=-1)
    expected = torch.cat([phase.cos(), phase[:, :out_features // 2].sin()], dim=-1)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)
    assert list(layer.parameters()) == [] and "frequencies" in layer.state_dict()


def test_fourier_feature_frequencies_are_gaussian_with_the_scale():
    torch.manual_seed(0)
    b = FourierFeatures(2, 20000).frequencies
    assert abs(b.mean().item()) < 0.1 and b.std().item() == pytest.approx(FOURIER_FEATURES_SCALE, rel=0.02)


@pytest.mark.parametrize(("kind", "bound"), [("sine_first", 1 / 8), ("sine", math.sqrt(6 / 8) / SIREN_OMEGA)])
def test_sine_layers_are_siren_layers_with_their_initialization(kind, bound):
    torch.manual_seed(0)
    layer = hol.layers.fc(kind, 8, 500, dtype=DOUBLE)
    assert isinstance(layer, SineLinear) and layer.kind == kind
    weight = layer.weight.detach()
    assert weight.abs().max() <= bound and weight.abs().max() > 0.95 * bound  # U(-bound, bound)
    x = torch.rand(4, 8, dtype=DOUBLE)
    expected = torch.sin(SIREN_OMEGA * (x @ weight.T + layer.bias.detach()))
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


def test_the_kinds_take_no_link_options_and_are_not_refined():
    for name in ("fourier_features", "sine", "sine_first"):
        kind = kind_info(name)
        assert kind.baseline and kind.options == frozenset() and kind.conv is None
    net = MLP("sine", 2, 3, 1, 8, input_layer="sine_first", output_layer="linear")
    assert hol.refine(net, n=5).refine_max_change == 0.0


@pytest.mark.parametrize("layers", [
    {"layer": "relu", "output_layer": "linear"},
    {"layer": "relu", "input_layer": "fourier_features", "output_layer": "linear"},
    {"layer": "sine", "input_layer": "sine_first", "output_layer": "linear"},
    {"layer": "continuous", "input_layer": {"kind": "continuous", "segments": 16}, "n": 3, "segments": 2},
])
def test_coordinate_mlps_build_rebuild_and_train_a_step(layers):
    torch.manual_seed(0)
    net = MLP(in_features=2, out_features=3, hidden_layers=1, hidden_width=16, normalization="none", **layers)
    x, target = coordinates(64, dtype=torch.float32), torch.rand(64, 3)
    twin = build(net.hparams())
    twin.load_state_dict(net.state_dict())
    torch.testing.assert_close(twin(x), net(x), rtol=0, atol=0)

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    before = torch.nn.functional.mse_loss(net(x), target)
    for _ in range(20):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(x), target).backward()
        optimizer.step()
    assert torch.nn.functional.mse_loss(net(x), target) < before
