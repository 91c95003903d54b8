"""Per-input domains and hol.adapt_domains against mathematics: the domain map is ``z = (x - c) L / w`` on
every backend, adapting keeps the link functions exactly where the new grid nests and reports the projection
error otherwise, domains survive state dicts and refinement."""
import copy
import io
import re

import pytest
import torch
from torch import nn
from torch.func import functional_call

import hol
from hol.adapt import adapt_domains_with_report, input_ranges, move_domain
from hol.layers import conv, fc
from tests.helpers.modules import randomize

DOUBLE = torch.float64
EXACT = 1e-11


def set_domain(layer: nn.Module, low, high) -> nn.Module:
    """Set the domain buffers directly (no projection): the links move with the domain."""
    low, high = torch.as_tensor(low, dtype=DOUBLE), torch.as_tensor(high, dtype=DOUBLE)
    layer.domain_centre.copy_(0.5 * (low + high))
    layer.domain_width.copy_(high - low)
    return layer


def interior(low, high, points: int = 997) -> torch.Tensor:
    """``[points, I]``: midpoints of equal cells of every input's ``[low, high]`` (never on a break of a grid
    that nests in it, whose breaks are at multiples of 1/4 of the width)."""
    low, high = torch.as_tensor(low, dtype=DOUBLE), torch.as_tensor(high, dtype=DOUBLE)
    t = (torch.arange(points, dtype=DOUBLE) + 0.5) / points
    return low + t[:, None] * (high - low)


# --- the domain map -----------------------------------------------------------------------------------------

MAP_CASES = [(kind, backend) for kind in ("continuous", "discontinuous")
             for backend in ("dense", "sparse", "auto")]
MAP_CASES += [("polynomial", "auto"), ("continuous_prod", "auto"), ("discontinuous_prod", "auto")]


@pytest.mark.parametrize("kind, backend", MAP_CASES)
def test_a_domain_maps_inputs_onto_the_reference_domain(kind, backend):
    """``f(x)`` with domain ``[c - w/2, c + w/2]`` is the default layer's ``f(z)``, ``z = (x - c) L / w``."""
    options = {"n": 4, "length": 3.0, "extrapolation": "linear", "backend": backend}
    if kind != "polynomial":
        options["segments"] = 3
    reference = randomize(fc(kind, 3, 2, dtype=DOUBLE, bias=True, **options))
    layer = set_domain(copy.deepcopy(reference), [-2.0, 0.5, 3.0], [1.0, 0.75, 9.0])
    x = interior([-2.5, 0.4, 2.0], [1.5, 0.8, 10.0], 41)  # inside and outside the domains
    z = (x - layer.domain_centre) * (3.0 / layer.domain_width)
    torch.testing.assert_close(layer(x), reference(z), rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.expand(x), reference.expand(z), rtol=0, atol=1e-12)


def test_default_domain_is_the_identity_map_exactly():
    layer = randomize(fc("continuous", 3, 2, n=5, segments=3, length=3.0))  # float32
    x = torch.rand(64, 3) * 4 - 2
    assert layer.domain_centre.tolist() == [0.0] * 3 and layer.domain_width.tolist() == [3.0] * 3
    assert torch.equal(layer.expand(x), layer.basis(x))


def test_polynomial_nd_and_conv_domains_map_their_inputs():
    reference = randomize(fc("polynomial_nd", 2, 2, n=3, dims=2, dtype=DOUBLE))
    layer = copy.deepcopy(reference)
    layer.domain_centre.copy_(torch.tensor([[0.5, -1.0], [2.0, 0.0]]))
    layer.domain_width.copy_(torch.tensor([[1.0, 4.0], [0.5, 2.0]]))
    x = torch.rand(7, 2, 2, dtype=DOUBLE) * 3 - 1
    z = (x - layer.domain_centre) * (2.0 / layer.domain_width)
    torch.testing.assert_close(layer(x), reference(z), rtol=0, atol=1e-12)

    for transpose in (False, True):
        reference = randomize(conv("continuous", 2, 4, 3, n=3, segments=2, groups=2, padding=1,
                                   transpose=transpose, dtype=DOUBLE))
        layer = set_domain(copy.deepcopy(reference), [0.0, -3.0], [2.0, 1.0])
        x = torch.rand(2, 2, 5, 5, dtype=DOUBLE) * 4 - 2
        z = (x - layer.domain_centre[:, None, None]) * (2.0 / layer.domain_width[:, None, None])
        torch.testing.assert_close(layer(x), reference(z), rtol=0, atol=1e-12)


# --- derivatives --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, backend", [("continuous", "dense"), ("continuous", "sparse"),
                                           ("discontinuous", "sparse"), ("discontinuous", "auto"),
                                           ("continuous_prod", "auto"), ("discontinuous_prod", "auto"),
                                           ("polynomial_nd", "auto")])
def test_gradcheck_and_gradgradcheck_with_domains(kind, backend):
    dims = 2 if kind == "polynomial_nd" else None
    options = {"n": 3, "dims": dims} if dims else {"n": 3, "segments": 2, "backend": backend}
    layer = randomize(fc(kind, 2, 2, dtype=DOUBLE, bias=True, **options))
    shape = (2, 2) if dims else (2,)
    per_input = (2,) + (1,) * (len(shape) - 1)
    layer.domain_centre.copy_(torch.tensor([0.7, -0.3]).reshape(per_input).expand(shape))
    layer.domain_width.copy_(torch.tensor([0.5, 3.0]).reshape(per_input).expand(shape))
    x = (layer.domain_centre + layer.domain_width * (torch.rand(3, *shape, dtype=DOUBLE) - 0.5) * 0.9)
    x = x.requires_grad_()  # inside the domains, away from breaks with probability 1
    params = {name: p.detach().clone().requires_grad_() for name, p in layer.named_parameters()}

    def f(x, *values):
        return functional_call(layer, dict(zip(params, values, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params.values()))
    assert torch.autograd.gradgradcheck(f, (x, *params.values()))


# --- adapting: exact where the grid nests -------------------------------------------------------------------

# kind -> per input [low, high]: every new segment inside one old segment of [-1, 1] or the extrapolated
# continuation of an end segment (polynomial extrapolation)
NESTED = {
    "continuous": ([-0.5, 0.0, 0.5], [0.5, 1.0, 2.5]),
    "discontinuous": ([-0.5, 0.0, 0.5], [0.5, 1.0, 2.5]),
    "continuous_prod": ([-1.0, -0.5, -3.0], [1.0, 0.0, -1.0]),
    "discontinuous_prod": ([0.0, -0.5, -1.0], [1.0, 0.5, 1.0]),
    "polynomial": ([-3.0, 0.2, 0.9], [5.0, 0.3, 1.0]),  # one polynomial everywhere: always exact
}


@pytest.mark.parametrize("kind", sorted(NESTED))
def test_adapting_onto_a_nested_grid_keeps_the_links(kind):
    options = {"n": 3} if kind == "polynomial" else {"n": 3, "segments": 4}
    layer = randomize(fc(kind, 3, 2, dtype=DOUBLE, **options))
    low, high = NESTED[kind]
    samples = interior(low, high, 50)
    samples[0], samples[1] = torch.tensor(low, dtype=DOUBLE), torch.tensor(high, dtype=DOUBLE)
    adapted, report = adapt_domains_with_report(layer, samples)
    assert torch.equal(adapted.domain_centre, 0.5 * (samples[0] + samples[1]))
    assert torch.equal(adapted.domain_width, samples[1] - samples[0])
    assert 0 <= report[""] < EXACT
    x = interior(low, high)
    torch.testing.assert_close(adapted(x), layer(x), rtol=0, atol=EXACT)


def test_adapting_polynomial_nd_and_convolutions_is_exact_for_polynomial_links():
    layer = randomize(fc("polynomial_nd", 2, 3, n=4, dims=2, dtype=DOUBLE))
    x = torch.rand(40, 2, 2, dtype=DOUBLE) * torch.tensor([[1.0, 5.0], [0.3, 2.0]]) + 0.5
    adapted, report = adapt_domains_with_report(layer, x)
    assert report[""] < EXACT
    torch.testing.assert_close(adapted(x), layer(x), rtol=0, atol=EXACT)
    assert torch.allclose(adapted.domain_width, x.amax(0) - x.amin(0), rtol=0, atol=1e-15)
    for transpose in (False, True):
        layer = randomize(conv("polynomial", 4, 6, 3, n=4, groups=2, padding=1, transpose=transpose,
                               padding_mode="zeros" if transpose else "input_zeros", dtype=DOUBLE))
        x = torch.rand(2, 4, 5, 5, dtype=DOUBLE) + torch.arange(4, dtype=DOUBLE)[:, None, None]  # [c, c + 1]
        adapted, report = adapt_domains_with_report(layer, x)
        assert report[""] < EXACT
        torch.testing.assert_close(adapted(x), layer(x), rtol=0, atol=1e-10)
        low = x.amin((0, 2, 3))
        if not transpose:  # input_zeros padding: the padded value 0 is an input too
            low = torch.minimum(low, torch.zeros(4, dtype=DOUBLE))
        torch.testing.assert_close(adapted.domain_centre - adapted.domain_width / 2, low, rtol=0, atol=1e-15)


# --- adapting: least squares otherwise ----------------------------------------------------------------------

def test_a_grid_that_does_not_nest_is_the_least_squares_fit_and_its_change_is_reported():
    layer = randomize(fc("discontinuous", 2, 2, n=3, segments=4, dtype=DOUBLE))
    adapted = copy.deepcopy(layer)
    change = move_domain(adapted, torch.tensor([0.1, -0.3]), torch.tensor([1.3, 2.2]))
    low = adapted.domain_centre - adapted.domain_width / 2
    x = interior(low, low + adapted.domain_width, 20000)
    measured = (adapted.links(x) - layer.links(x)).abs().max().item()
    assert change > 0.05 and measured == pytest.approx(change, rel=1e-3)  # an old jump inside a new segment
    # the fit on its sample (midpoints of 4 n S cells): no change of the coefficients lowers the squared error
    t = (torch.arange(48, dtype=DOUBLE) + 0.5) / 48
    sample = low + t[:, None] * adapted.domain_width
    target, fitted = layer.links(sample), adapted.links(sample)
    error = (fitted - target).pow(2).sum()
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        step = 1e-3 * torch.randn(adapted.weight.shape, dtype=DOUBLE, generator=generator)
        moved_links = torch.einsum("bik,oik->boi", adapted.expand(sample), adapted.weight + step)
        assert (moved_links - target).pow(2).sum() > error


# --- networks -----------------------------------------------------------------------------------------------

def test_adapt_domains_moves_each_layer_to_its_own_inputs_and_leaves_the_input_alone():
    """Polynomial links: every adaptation is exact, so the adapted network computes the same function."""
    net = hol.networks.MLP("polynomial", 2, 1, 1, 3, normalization="none", n=4, dropout=0.5)
    net = randomize(net.double(), scale=0.5)
    net.train()
    x = torch.rand(200, 2, dtype=DOUBLE) * 2 - 1
    state = copy.deepcopy(net.state_dict())
    adapted = hol.adapt_domains(net, [x[:100], x[100:]])
    assert all(torch.equal(value, net.state_dict()[key]) for key, value in state.items())
    assert adapted.training and all(module.training for module in adapted.modules())
    net.eval()
    hidden = net.layers[0](x)
    second = adapted.layers[1]
    low, high = second.domain_centre - second.domain_width / 2, second.domain_centre + second.domain_width / 2
    torch.testing.assert_close(low, hidden.amin(0), rtol=0, atol=1e-15)
    torch.testing.assert_close(high, hidden.amax(0), rtol=0, atol=1e-15)
    adapted.eval()
    assert adapted.adapt_max_change < 1e-10 * net(x).abs().max()
    torch.testing.assert_close(adapted(x), net(x), rtol=1e-12, atol=1e-12)
    ranges = input_ranges(adapted, x)
    assert set(ranges) == {"layers.0", "layers.1", "layers.2"}


def test_margin_flat_inputs_and_layers_without_adaptable_domains():
    layer = randomize(fc("continuous", 2, 1, n=3, segments=2, dtype=DOUBLE))
    x = torch.stack([torch.linspace(-0.5, 0.5, 11, dtype=DOUBLE), torch.full((11,), 0.3, dtype=DOUBLE)], -1)
    adapted = hol.adapt_domains(layer, x, margin=0.1)
    assert adapted.domain_width.tolist() == pytest.approx([1.2, 2.0])  # the constant input keeps its domain
    assert adapted.domain_centre.tolist() == pytest.approx([0.0, 0.0])
    model = nn.Sequential(fc("fourier", 2, 2, n=3), fc("product", 2, 2), fc("linear", 2, 1))
    same, report = adapt_domains_with_report(model, torch.rand(5, 2))
    assert report == {} and torch.equal(same[0].domain_width, model[0].domain_width)
    with pytest.raises(ValueError, match=r"^cannot move the domains of HighOrderLinear: only hol layers"):
        move_domain(model[0], torch.zeros(2), torch.ones(2))


def test_a_dataloader_of_inputs_and_targets_adapts_as_its_inputs_do():
    torch.manual_seed(0)
    net = hol.networks.MLP("continuous", 2, 1, 1, 3, n=3, segments=2)
    x, y = 3 * torch.rand(40, 2), torch.rand(40, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    from_loader, from_inputs = hol.adapt_domains(net, loader), hol.adapt_domains(net, x)
    for adapted in (from_loader, from_inputs):
        assert adapted.layers[0].domain_width.tolist() != [2.0, 2.0]
    assert all(torch.equal(a, b) for a, b in zip(from_loader.state_dict().values(),
                                                 from_inputs.state_dict().values(), strict=True))


@pytest.mark.parametrize("samples, message", [
    (torch.empty(0, 2), "samples must hold at least one input, got none"),
    (torch.tensor([[0.0, float("nan")]]), "samples give layer 'HighOrderLinear' non-finite inputs"),
    ([[0.0, 1.0]], "samples must be a tensor or an iterable of batches, each a tensor or a tuple (inputs, "
                   "targets, ...); got a list"),
])
def test_bad_samples_raise_one_line(samples, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        hol.adapt_domains(fc("continuous", 2, 1), samples)
    with pytest.raises(ValueError, match=r"^margin must be a number >= 0, got -0\.1"):
        hol.adapt_domains(fc("continuous", 2, 1), torch.zeros(1, 2), margin=-0.1)


# --- state dicts and refinement -----------------------------------------------------------------------------

def test_state_dicts_carry_domains_and_old_state_dicts_load_with_the_default():
    net = hol.networks.MLP("discontinuous", 2, 1, 1, 3, normalization="none", n=3, segments=2)
    net = randomize(net.double())
    x = torch.rand(64, 2, dtype=DOUBLE) * 2 - 1
    adapted = hol.adapt_domains(net, x)
    buffer = io.BytesIO()
    torch.save(adapted.state_dict(), buffer)
    buffer.seek(0)
    rebuilt = hol.networks.build(adapted.hparams()).double()
    rebuilt.load_state_dict(torch.load(buffer))
    assert torch.equal(rebuilt(x), adapted(x))
    old_style = {key: value for key, value in net.state_dict().items() if "domain" not in key}
    rebuilt.load_state_dict(old_style)
    assert torch.equal(rebuilt(x), net(x))


def test_refine_after_adapt_is_exact_and_keeps_the_domains():
    net = hol.networks.MLP("continuous", 2, 1, 1, 2, normalization="none", n=3, segments=2)
    net = randomize(net.double())
    x = torch.rand(64, 2, dtype=DOUBLE) * 2 - 1
    adapted = hol.adapt_domains(net, x)
    refined = hol.refine(adapted, n=5, segments=6)
    assert refined.refine_max_change < EXACT
    for old, new in zip(adapted.layers, refined.layers, strict=True):
        assert torch.equal(new.domain_centre, old.domain_centre)
        assert torch.equal(new.domain_width, old.domain_width)
    torch.testing.assert_close(refined(x), adapted(x), rtol=1e-12, atol=1e-12)
    _, report = adapt_domains_with_report(refined, x)  # the first layer's inputs and domains are adapted's
    assert report["layers.0"] < EXACT


def test_rescaling_hidden_layers_keeps_the_function_and_puts_hidden_values_in_the_reference_domain():
    """In an MLP without normalization, adapting rescales each hidden layer (affine map of its outputs) and
    leaves the next layer's domain at the default: the same function, the hidden values ``(y - c) L / w``."""
    net = hol.networks.MLP("continuous", 2, 1, 1, 3, normalization="none", n=4, segments=2, length=3.0)
    net = randomize(net.double(), scale=2.0)
    x = torch.rand(200, 2, dtype=DOUBLE) * 2 - 1
    plain = hol.adapt_domains(net, x, rescale=False)
    rescaled = hol.adapt_domains(net, x)
    assert rescaled.adapt_max_change == plain.adapt_max_change  # the projections are the same
    torch.testing.assert_close(rescaled(x), plain(x), rtol=1e-12, atol=1e-12)
    for follower in rescaled.layers[1:]:  # [2, 3, 3, 1]: both layers after a hidden one keep the default
        assert torch.equal(follower.domain_centre, torch.zeros(3, dtype=DOUBLE))
        assert torch.equal(follower.domain_width, torch.full((3,), 3.0, dtype=DOUBLE))
    centre, width = plain.layers[1].domain_centre, plain.layers[1].domain_width  # the hidden values' range
    expected = (plain.layers[0](x) - centre) * (3.0 / width)
    torch.testing.assert_close(rescaled.layers[0](x), expected, rtol=0, atol=1e-12)
    assert expected.abs().max() < 1.6  # within [-L/2, L/2] up to the first layer's projection
    assert not torch.equal(plain.layers[1].domain_width, rescaled.layers[1].domain_width)  # plain: moved
    normalized = hol.networks.MLP("continuous", 2, 1, 1, 3, normalization="max_abs", n=4, segments=2).double()
    kept = hol.adapt_domains(randomize(normalized), x)  # a normalization between: nothing is rescaled
    assert not torch.equal(kept.layers[-1].domain_width, torch.full((3,), 2.0, dtype=DOUBLE))
    with pytest.raises(ValueError, match=r"^rescale must be"):
        hol.adapt_domains(net, x, rescale=1)
