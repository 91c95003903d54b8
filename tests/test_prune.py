"""hol.prune against mathematics: scores are statistics of f_oi(x_i) on each layer's own inputs (its variation
by default, blind to its constant), an input's score is the network's change without its links (which sees
links cancelling across units), pruning zeroes links and removes inputs and hidden units exactly (their
constants folded), the pruned MLP is a network like any other, and a trained network loses the links from
an input it does not need."""
import copy
import io
import math

import pytest
import torch
from torch import nn

import hol
from hol.layers import fc
from hol.networks import MLP, build
from hol.prune import SCORES, input_scores, link_scores, prune, unit_scores
from tests.helpers.modules import randomize

DOUBLE = torch.float64
EXACT = 1e-12


def uniform(rows: int, low, high, seed: int = 1) -> torch.Tensor:
    """``[rows, I]`` uniform samples of every input's ``[low, high]``."""
    low, high = torch.as_tensor(low, dtype=DOUBLE), torch.as_tensor(high, dtype=DOUBLE)
    t = torch.rand(rows, low.shape[0], dtype=DOUBLE, generator=torch.Generator().manual_seed(seed))
    return low + t * (high - low)


def linear_links(layer: nn.Module, slope: float) -> None:
    """Every link of a Lagrange ``layer`` becomes ``f(h) = slope * h`` (nodal values: linear everywhere)."""
    reference = layer.basis.node_positions()
    positions = layer.domain_centre[:, None] + reference * layer.domain_width[:, None] / layer.length
    with torch.no_grad():
        layer.weight.copy_(slope * positions.expand_as(layer.weight))


def cancelling_net() -> MLP:
    """3 -> 2 -> 1, the output the sum of both hidden units (linear links of slope 1); z reaches unit 0 as
    ``+g(z)`` and unit 1 as ``-g(z)``: the network does not depend on z, though each link from z varies."""
    net = randomize(MLP("continuous", 3, 1, widths=[2], normalization="none", n=3, segments=2).double(),
                    scale=0.5)
    with torch.no_grad():
        net.layers[0].weight[1, 2] = -net.layers[0].weight[0, 2]
    linear_links(net.layers[1], 1.0)
    return net


def move_domains(net: MLP, seed: int = 2) -> MLP:
    """Give every hidden layer's inputs their own domains (set directly: the links move with them)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in list(net.layers)[1:]:
            layer.domain_centre.copy_(0.3 * torch.randn(layer.domain_centre.shape, generator=generator))
            layer.domain_width.copy_(2 + torch.rand(layer.domain_width.shape, generator=generator))
    return net


@pytest.mark.parametrize("score", SCORES)
def test_scores_are_statistics_of_the_link_values_on_each_layers_own_inputs(score):
    statistics = {"variation": lambda f: (f - f.mean(0)).abs().mean(0),
                  "std": lambda f: f.std(0, correction=0), "mean_abs": lambda f: f.abs().mean(0)}
    domains = [[0.0, 2.0], [-1.0, 1.0], [-3.0, 3.0]]
    net = randomize(MLP("continuous", 3, 2, widths=[4], input_domains=domains, normalization="max_abs", n=3,
                        segments=2).double())
    x = uniform(300, *zip(*domains, strict=True))
    with torch.no_grad():
        inputs = net.input_scaling(x)
        hidden = net.norms[0](net.layers[0](inputs))
        expected = {"layers.0": statistics[score](net.layers[0].links(inputs)),
                    "layers.1": statistics[score](net.layers[1].links(hidden))}
    scores = link_scores(net, x, score)
    assert scores.keys() == expected.keys()
    for name, value in scores.items():
        assert value.shape == expected[name].shape and value.dtype == DOUBLE
        assert torch.allclose(value, expected[name], rtol=0, atol=EXACT)
    batched = link_scores(net, [(x[:100], None), (x[100:], None)], score)  # a DataLoader's (inputs, targets)
    assert all(torch.allclose(batched[name], expected[name], rtol=0, atol=EXACT) for name in expected)
    assert net.training  # the train/eval mode is restored
    incoming, outgoing = unit_scores(net, scores)[0]
    assert torch.equal(incoming, scores["layers.0"].amax(1))
    assert torch.equal(outgoing, scores["layers.1"].amax(0))


def test_threshold_zero_changes_nothing():
    net = randomize(MLP("continuous", 3, 2, widths=[4, 3], n=3, segments=2).double())
    x = uniform(50, [-1] * 3, [1] * 3)
    pruned, report = prune(net, x, threshold=0)
    assert pruned is not net and torch.equal(pruned(x), net(x))
    assert report.links_removed == {"layers.0": 0, "layers.1": 0, "layers.2": 0}
    assert report.units_removed == {0: [], 1: []} and report.inputs_removed == [] and report.max_change == 0.0
    pruned, report = prune(cancelling_net(), x, threshold=0)  # an input scoring ~0 stays as well
    assert report.inputs_removed == [] and report.links_removed == {"layers.0": 0, "layers.1": 0}
    assert torch.equal(pruned(x), cancelling_net()(x))


@pytest.mark.parametrize("wrap", [False, True], ids=["mlp", "sequential"])
def test_every_link_from_an_unused_input_is_removed(wrap):
    """f(x, y, z) = g(x, y): the links from z are zero; pruning removes exactly them, and no unit."""
    net = randomize(MLP("continuous", 3, 1, widths=[5], normalization="none", n=4, segments=2).double())
    with torch.no_grad():
        net.layers[0].weight[:, 2] = 0
    module = nn.Sequential(net) if wrap else net
    before = copy.deepcopy(module.state_dict())
    x = uniform(200, [-1] * 3, [1] * 3)
    pruned, report = prune(module, x, threshold=1e-3)
    prefix = "0." if wrap else ""
    assert report.links_removed == {f"{prefix}layers.0": 5, f"{prefix}layers.1": 0}
    assert report.units_removed == ({} if wrap else {0: []})
    scores = link_scores(module, x)[f"{prefix}layers.0"]
    assert (scores[:, 2] == 0).all() and (scores[:, :2] > 1e-3).all()
    assert (pruned(x) - module(x)).abs().max() <= EXACT and report.max_change <= EXACT
    assert all(torch.equal(value, before[key]) for key, value in module.state_dict().items())  # untouched


@pytest.mark.parametrize("score", SCORES)
def test_an_input_whose_links_cancel_scores_zero_and_all_its_links_go(score):
    """Input i's score is the change of the output without its links (their means folded, but under
    ``mean_abs``): here ``sum_j (f_ji - m_ji)`` (``f_ji`` under ``mean_abs``), as the output sums the units.
    z's links cancel across the units: each varies, the input scores 0 and goes whole, the output unchanged;
    link by link they stay."""
    net = cancelling_net()
    x = uniform(300, [-1] * 3, [1] * 3)
    with torch.no_grad():
        links = net.layers[0].links(x)  # [B, O, I]
        change = (links if score == "mean_abs" else links - links.mean(0)).sum(1)  # [B, I]
    expected = change.square().mean(0).sqrt() if score == "std" else change.abs().mean(0)
    scores = input_scores(net, x, score)
    assert scores.dtype == DOUBLE and torch.allclose(scores, expected, rtol=0, atol=EXACT)
    assert scores[2] <= EXACT and (scores[:2] > 0.1).all()  # x and y matter
    assert (link_scores(net, x, score)["layers.0"][:, 2] > 0.05).all()  # each link from z looks needed
    pruned, report = prune(net, x, threshold=1e-2, score=score)
    assert report.inputs_removed == [2] and report.units_removed == {0: []}
    assert report.links_removed == {"layers.0": 2, "layers.1": 0}
    assert (pruned.layers[0].weight[:, 2] == 0).all() and (pruned.layers[0].weight[:, :2] != 0).all()
    assert (pruned(x) - net(x)).abs().max() <= EXACT and report.max_change <= EXACT
    _, report = prune(net, x, threshold=1e-2, score=score, inputs=False)
    assert report.inputs_removed == [] and report.links_removed["layers.0"] == 0


def test_a_small_first_layer_link_amplified_downstream_is_kept():
    """A link from a kept input varying by 2e-3 (below the threshold) feeds a unit whose output link has slope
    100: pruning it would change the output by ~0.2, so it stays; link by link (``inputs=False``) it goes. A
    link that is constant on the samples goes either way."""
    net = cancelling_net()
    linear_links(net.layers[1], 100.0)
    x = uniform(300, [-1] * 3, [1] * 3)
    with torch.no_grad():
        net.layers[0].weight[0, 0] *= 2e-3 / link_scores(net, x)["layers.0"][0, 0]
        net.layers[0].weight[1, 1] = 0.3  # constant
    assert link_scores(net, x)["layers.0"][0, 0] == pytest.approx(2e-3, abs=EXACT)
    pruned, report = prune(net, x, threshold=1e-2)
    assert report.inputs_removed == [2] and report.links_removed == {"layers.0": 3, "layers.1": 0}
    assert (pruned.layers[0].weight[0, 0] != 0).any() and (pruned.layers[0].weight[1, 1] == 0).all()
    assert report.max_change <= 1e-10  # the constant folded, z's links cancelling (times 100)
    pruned, report = prune(net, x, threshold=1e-2, inputs=False)
    assert report.links_removed == {"layers.0": 2, "layers.1": 0} and report.max_change > 0.1


def test_any_module_can_lose_its_first_hol_layers_inputs():
    """``inputs=True`` on any module: the inputs of the first fully connected hol layer the samples reach (by
    default off for modules other than an MLP)."""
    net = cancelling_net()
    module = nn.Sequential(nn.Identity(), net)
    x = uniform(200, [-1] * 3, [1] * 3)
    assert torch.equal(input_scores(module, x), input_scores(net, x))
    pruned, report = prune(module, x, threshold=1e-2, inputs=True)
    assert report.inputs_removed == [2] and report.links_removed == {"1.layers.0": 2, "1.layers.1": 0}
    assert (pruned(x) - module(x)).abs().max() <= EXACT
    _, report = prune(module, x, threshold=1e-2)
    assert report.inputs_removed == [] and report.links_removed == {"1.layers.0": 0, "1.layers.1": 0}


@pytest.mark.parametrize("kind, bias", [("continuous", False), ("continuous", True), ("fourier", False)])
def test_a_constant_link_scores_zero_and_goes_without_changing_the_network(kind, bias):
    """A link that is constant on the data carries no information: its variation is 0 (its mean |f| is not),
    and pruning it moves its constant into the bias, or into another link of the same output."""
    options = {"segments": 2} if kind == "continuous" else {}
    net = randomize(MLP(kind, 3, 2, widths=[4], normalization="none", n=3, bias=bias, **options).double(),
                    scale=0.5)
    with torch.no_grad():
        net.layers[0].weight[1, 2] = 0
        net.layers[0].weight[1, 2, 0 if kind == "fourier" else slice(None)] = 0.7  # f_12 = 0.7 everywhere
    x = uniform(200, [-1] * 3, [1] * 3)
    assert link_scores(net, x)["layers.0"][1, 2] <= EXACT
    assert link_scores(net, x, "mean_abs")["layers.0"][1, 2] == pytest.approx(0.7, abs=EXACT)
    pruned, report = prune(net, x, threshold=1e-6)
    assert report.links_removed == {"layers.0": 1, "layers.1": 0} and report.units_removed == {0: []}
    assert (pruned(x) - net(x)).abs().max() <= EXACT and report.max_change <= EXACT
    before, after = net.layers[0], pruned.layers[0]
    assert (after.weight[1, 2] == 0).all()
    changed = (after.weight - before.weight).abs().amax(2) > 0
    if bias:  # the constant went into the bias of unit 1, no other link changed
        assert (after.bias[1] - before.bias[1]).item() == pytest.approx(0.7, abs=EXACT)
        assert changed.nonzero().tolist() == [[1, 2]]
    else:  # into the kept link of unit 1 with the larger variation
        target = link_scores(net, x)["layers.0"][1, :2].argmax().item()
        assert changed.nonzero().tolist() == [[1, target], [1, 2]]
    # under pykan's score the constant counts: the link stays at any threshold below it
    _, report = prune(net, x, threshold=1e-6, score="mean_abs")
    assert report.links_removed == {"layers.0": 0, "layers.1": 0}


@pytest.mark.parametrize("score", ["variation", "mean_abs"])
@pytest.mark.parametrize("kind, bias", [("continuous", False), ("continuous", True), ("discontinuous", False),
                                        ("polynomial", False), ("fourier", False)])
def test_removing_units_folds_their_constants_exactly(kind, bias, score):
    """Hidden unit 1 has no incoming links (it outputs a constant, which its outgoing links turn into
    constants of the next layer), unit 2 no outgoing ones: both go, and the function stays (``variation``:
    unit 1's outgoing links are constant, so they are pruned and folded as links first)."""
    options = {"segments": 2} if kind in ("continuous", "discontinuous") else {}
    net = randomize(MLP(kind, 3, 2, widths=[4, 3], normalization="none", n=3, bias=bias,
                        **options).double(), scale=0.3)
    move_domains(net)
    with torch.no_grad():
        net.layers[0].weight[1] = 0
        net.layers[1].weight[:, 2] = 0
    x = uniform(200, [-1] * 3, [1] * 3)
    with torch.no_grad():
        constants = net.layers[1].links(net.layers[0](x))[:, :, 1]  # [B, O]: f_o1 of unit 1's constant
    assert constants.abs().min() > 0.01  # dropping them instead of folding would fail the test
    pruned, report = prune(net, x, threshold=1e-3, score=score)
    assert pruned.widths == [2, 3] and pruned.hparams()["widths"] == [2, 3]
    assert report.units_removed == {0: [1, 2], 1: []}
    assert report.links_removed == {"layers.0": 6, "layers.1": 6, "layers.2": 0}
    assert (pruned(x) - net(x)).abs().max() <= EXACT and report.max_change <= EXACT


def test_product_units_lose_a_pruned_links_factor_exactly():
    """``mean_abs``: a small link goes whole, its factor ``1 + f`` becomes 1 (any alpha); ``variation``: a
    constant link's factor ``1 + c`` moves into another link of the unit (exact for alpha = 1)."""
    layer = randomize(fc("continuous_prod", 3, 2, n=3, segments=2, alpha=0.5, dtype=DOUBLE), scale=0.5)
    with torch.no_grad():
        layer.weight[:, 1] *= 1e-9
    x = uniform(100, [-1] * 3, [1] * 3)
    pruned, report = prune(layer, x, score="mean_abs")
    assert report.links_removed == {"": 2}
    with torch.no_grad():
        f = layer.links(x)[:, :, [0, 2]]  # [B, O, 2]: the links kept
        expected = (1 + f).prod(-1) - 1 - 0.5 * f.sum(-1)
    assert (pruned(x) - expected).abs().max() <= EXACT
    layer = randomize(fc("continuous_prod", 3, 2, n=3, segments=2, alpha=1.0, dtype=DOUBLE), scale=0.5)
    with torch.no_grad():
        layer.weight[:, 1] = 0.5  # factors 1.5 on the data and everywhere
    pruned, report = prune(layer, x, threshold=1e-6)
    assert report.links_removed == {"": 2} and (pruned.weight[:, 1] == 0).all()
    assert (pruned(x) - layer(x)).abs().max() <= EXACT
    # unit removal in a network of product units: alpha = 1 folds the removed factor exactly
    net = randomize(MLP("continuous_prod", 3, 2, widths=[4], normalization="none", n=3, alpha=1.0).double(),
                    scale=0.5)
    with torch.no_grad():
        net.layers[0].weight[1] = 0
        net.layers[1].weight[:, 1] += 0.5  # factors 1 + f_o1(0) far from 1
    pruned, report = prune(net, x, threshold=1e-3)
    assert pruned.widths == [3] and report.units_removed == {0: [1]}
    assert (pruned(x) - net(x)).abs().max() <= EXACT


def test_the_pruned_mlp_rebuilds_loads_refines_and_trains():
    domains = [[-2.0, 2.0], [0.0, 1.0], [-1.0, 1.0]]
    net = randomize(MLP("continuous", 3, 1, widths=[4], normalization="none", n=3, segments=2,
                        input_domains=domains).double(), scale=0.3)
    move_domains(net)
    with torch.no_grad():
        net.layers[0].weight[3] = 0
    x = uniform(100, *zip(*domains, strict=True))
    pruned, _ = prune(net, x)
    assert pruned.widths == [3]
    buffer = io.BytesIO()
    torch.save(pruned.state_dict(), buffer)
    twin = build(pruned.hparams()).to(DOUBLE)
    twin.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    assert torch.equal(twin(x), pruned(x))
    refined = hol.refine(pruned, n=5, segments=4)
    assert (refined(x) - pruned(x)).abs().max() <= EXACT
    loss = pruned(x).square().mean()
    loss.backward()
    assert all(parameter.grad is not None for parameter in pruned.parameters())


@pytest.mark.parametrize("threshold", [-0.1, math.nan, "0.1", True])
def test_bad_arguments_raise_one_line_errors(threshold):
    net = MLP("continuous", 3, 1, widths=[2])
    x = torch.rand(10, 3)
    with pytest.raises(ValueError, match=r"^threshold must be a number >= 0, got [^\n]*$"):
        prune(net, x, threshold=threshold)
    with pytest.raises(ValueError, match=r"^samples must be inputs \[\.\.\., 3\] of the MLP, got a batch of "
                                         r"shape \(10, 2\)$"):
        prune(net, torch.rand(10, 2))
    with pytest.raises(ValueError, match=r"^units must be True or False, got 'yes'$"):
        prune(net, x, units="yes")
    for score_of in (link_scores, input_scores, prune):
        with pytest.raises(ValueError, match=r"^unknown score 'l1'; allowed: mean_abs, std, variation$"):
            score_of(net, x, score="l1")
    with pytest.raises(ValueError, match=r"^inputs must be True or False, got 'yes'$"):
        prune(net, x, inputs="yes")
    linear_first = MLP("continuous", 3, 1, widths=[2], input_layer="linear")
    prune(linear_first, x)  # by default its inputs are not scored
    first_layer = r"the MLP's first layer is a fully connected hol layer, got a Linear$"
    for call in (lambda: input_scores(linear_first, x), lambda: prune(linear_first, x, inputs=True)):
        with pytest.raises(ValueError, match=r"^inputs can be scored only where " + first_layer):
            call()
    with pytest.raises(ValueError, match=r"^inputs can be scored only where the samples reach a fully "
                                         r"connected hol layer, got none$"):
        input_scores(nn.Linear(3, 1), x)


def formula_target(x: torch.Tensor) -> torch.Tensor:
    """f(x, y, z) = exp(sin(pi x) + y^2): z unused."""
    return torch.exp(torch.sin(math.pi * x[:, :1]) + x[:, 1:2] ** 2)


def train_formula_net(seed: int, x: torch.Tensor) -> MLP:
    """The shape of hol's ``formula`` preset (3 -> 7 -> 1, constant first links, no bias) fitted to
    :func:`formula_target` by L-BFGS without a sparsity penalty, from torch seed ``seed`` (one thread: ~0.7 s
    on an idle core)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MLP("continuous", 3, 1, widths=[7], normalization="none", n=4, segments=2,
                  input_layer={"kind": "continuous", "init": "constant"}, input_domains=[[-1, 1]] * 3,
                  backend="dense").double()  # dense: the faster path at this size
    optimizer = torch.optim.LBFGS(net.parameters(), max_iter=300, history_size=50,
                                  line_search_fn="strong_wolfe", tolerance_grad=0, tolerance_change=0)
    y = formula_target(x)

    def closure():
        optimizer.zero_grad()
        loss = (net(x) - y).square().mean()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster at this size, and the same on any machine
    try:
        optimizer.step(closure)
    finally:
        torch.set_num_threads(threads)
    return net


@pytest.mark.slow  # ~1 s a seed on one idle core
@pytest.mark.parametrize("seed", range(5))
def test_pruning_a_trained_network_removes_every_link_from_an_unused_input(seed):
    """f(x, y, z) = exp(sin(pi x) + y^2) does not depend on z. Trained without a sparsity penalty, the links
    from z keep constants (mean |f| up to 0.26-0.48: pykan's score prunes none of them at 1e-2) and, on some
    seeds, vary by up to 2.2e-2 each, cancelling across units. Measured on seeds 0-9 (the same samples),
    pruning at 1e-2:

    * link by link (``inputs=False``): links from z stay on 3 seeds; the test RMSE is 1.8 to 6.9 times the
      network's on 7;
    * inputs first (the default): as an input z scores 7.5e-4 to 2.9e-3 (x 1.05 to 1.12, y 0.48 to 0.52),
      and every link from z goes on all 10 seeds; the test RMSE is 0.83 to 0.98 times the network's on 8.

    On seeds 4 and 7 the RMSE grows to 2.2 and 1.8 times the network's: units 1 and 5 go with their output
    links, which vary by 5.0e-3 and 9.7e-3 (exactly what the output loses), below the threshold but above the
    network's test RMSE (3.5e-3, 6.8e-3). That is what the threshold means: contributions below it may go, so
    the test RMSE may grow by up to about the threshold, which the last assertion allows. max_change is 8.4e-3
    to 5.3e-2, and 0.21 on seed 1 (one sample near the peak of f; the test RMSE falls to 0.83 times there)."""
    x = uniform(1000, [-1] * 3, [1] * 3)
    net = train_formula_net(seed, x)
    assert (link_scores(net, x, "mean_abs")["layers.0"][:, 2] >= 1e-2).any()  # the paper's score keeps z
    scores = input_scores(net, x)
    assert scores[2] < 1e-2 and (scores[:2] > 0.1).all()
    pruned, report = prune(net, x, threshold=1e-2)
    assert report.inputs_removed == [2]
    assert (pruned.layers[0].weight[:, 2] == 0).all()  # every link from z, zeroed or gone with its unit
    assert (pruned.layers[0].weight[:, :2] != 0).any(dim=2).any(dim=1).all()  # x and y still reach every unit
    other_z = torch.cat((x[:, :2], x[:, 2:].flip(0)), dim=1)
    assert torch.equal(pruned(other_z), pruned(x))
    test = uniform(1000, [-1] * 3, [1] * 3, seed=2)
    with torch.no_grad():
        rmse, pruned_rmse = ((model(test) - formula_target(test)).square().mean().sqrt()
                             for model in (net, pruned))
    assert pruned_rmse <= rmse + 1e-2  # what a threshold of 1e-2 lets go
