"""hol.symbolic.fix: links fixed to their symbolic form compute what the layer computed where the fits are
exact, their four parameters per link train (gradients, L-BFGS lowers the loss), links without a good fit stay
numeric, bad arguments raise one line."""
import copy

import pytest
import torch

from hol.layers import fc
from hol.networks import MLP
from hol.symbolic import LinkFit, SymbolicLinear, fit_layer, fit_link, fix_symbolic
from tests.symbolic.common import DOMAINS, FIRST, LIBRARY, PRODUCT, hand_set_mlp, set_links, uniform


@pytest.mark.parametrize(("kind", "functions"), [("polynomial", FIRST), ("polynomial_prod", PRODUCT)])
def test_a_symbolic_layer_computes_what_the_layer_computed(kind, functions):
    layer = fc(kind, 2, 2 if kind == "polynomial" else 1, n=20, bias=True).double()
    set_links(layer, functions)
    with torch.no_grad():
        layer.bias.fill_(0.25)
    symbolic = SymbolicLinear(layer, fit_layer(layer, library=LIBRARY))
    assert bool(symbolic.symbolic.all())
    x = uniform(300, [[-1, 1], [-1, 1]], seed=1).reshape(3, 100, 2)  # any leading dimensions
    with torch.no_grad():
        torch.testing.assert_close(symbolic(x), layer(x), rtol=0, atol=1e-12)


def test_only_the_chosen_links_are_symbolic_and_the_others_keep_training():
    layer = fc("polynomial", 2, 2, n=20).double()
    set_links(layer, FIRST)
    fits = fit_layer(layer, library=LIBRARY, links=[(0, 0), (1, 1)])
    symbolic = SymbolicLinear(layer, fits)
    assert symbolic.symbolic.tolist() == [[True, False], [False, True]]
    x = uniform(50, [[-1, 1], [-1, 1]], seed=2)
    torch.testing.assert_close(symbolic(x), layer(x), rtol=0, atol=1e-12)
    symbolic(x).square().sum().backward()
    for name in ("a", "b", "c", "d"):
        grad = getattr(symbolic, name).grad
        assert grad[0, 0] != 0 and grad[1, 1] != 0 and grad[0, 1] == 0 and grad[1, 0] == 0, name
    weight = symbolic.numeric.weight.grad
    assert weight[0, 0].abs().max() == 0 and weight[1, 1].abs().max() == 0  # the symbolic links' weights
    assert weight[0, 1].abs().max() > 0 and weight[1, 0].abs().max() > 0
    fitted = symbolic.link_fits()
    assert sorted(fitted) == [(0, 0), (1, 1)] and fitted[(0, 0)].a == pytest.approx(2.0, abs=1e-9)


def test_a_few_lbfgs_steps_on_data_bring_perturbed_constants_back():
    net = hand_set_mlp()
    first = fit_layer(net.layers[0], library=LIBRARY)
    fixed = fix_symbolic(net, {(0, o, i): fit for (o, i), fit in first.items()})
    assert isinstance(fixed.layers[0], SymbolicLinear) and not isinstance(fixed.layers[1], SymbolicLinear)
    x = uniform(400, DOMAINS, seed=3)
    with torch.no_grad():
        y = net(x)
        for name in ("a", "b", "c", "d"):
            getattr(fixed.layers[0], name).mul_(1.03).add_(0.01)
    parameters = [getattr(fixed.layers[0], name) for name in ("a", "b", "c", "d")]
    optimizer = torch.optim.LBFGS(parameters, max_iter=50, tolerance_grad=1e-14, tolerance_change=1e-16,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (fixed(x) - y).square().mean()
        loss.backward()
        return loss

    before = closure().item()
    for _ in range(3):
        optimizer.step(closure)
    after = closure().item()
    assert after < 1e-4 * before, (before, after)


def test_links_with_a_low_r2_stay_numeric():
    net = MLP("continuous", 1, 1, widths=[1], n=2, segments=2, normalization="none").double()
    set_links(net.layers[0], {(0, 0): torch.relu})  # a kink: no candidate fits it
    set_links(net.layers[1], {(0, 0): lambda u: 2 * u - 1})
    x = torch.linspace(-1, 1, 101, dtype=torch.float64)[:, None]
    fits = {(0, 0, 0): fit_link(x[:, 0], torch.relu(x[:, 0]), LIBRARY),
            (1, 0, 0): fit_layer(net.layers[1], library=LIBRARY)[(0, 0)]}
    fixed = fix_symbolic(net, fits)
    assert not isinstance(fixed.layers[0], SymbolicLinear) and isinstance(fixed.layers[1], SymbolicLinear)
    torch.testing.assert_close(fixed(x), net(x), rtol=0, atol=1e-12)
    assert not isinstance(net.layers[1], SymbolicLinear)  # the network itself is not changed
    assert isinstance(fix_symbolic(net, fits, min_r2=0.9).layers[0], SymbolicLinear)


def test_bad_arguments_raise_one_line():
    layer = fc("polynomial", 2, 1, n=3).double()
    fit = fit_link(torch.linspace(-1, 1, 11), torch.linspace(-1, 1, 11), ["x"])
    net = MLP("polynomial", 2, 1, widths=[2], n=3, normalization="none")
    fixed = fix_symbolic(net, {(0, 0, 0): fit})
    for call, match in [(lambda: SymbolicLinear(layer, {(1, 0): fit}), r"\(output, input\) links of a 2 ->"),
                        (lambda: SymbolicLinear(torch.nn.Linear(2, 1), {}), "HighOrderLinear"),
                        (lambda: fix_symbolic(layer, {}), "hol.networks.MLP"),
                        (lambda: fix_symbolic(net, {(2, 0, 0): fit}), "with a layer of the network's 2"),
                        (lambda: fix_symbolic(fixed, {(0, 0, 1): fit}), "layer 0 must be a HighOrderLinear"),
                        (lambda: fix_symbolic(net, {(0, 5, 0): fit}), r"\(output, input\) links")]:
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    assert isinstance(copy.deepcopy(fixed).layers[0], SymbolicLinear)
    assert isinstance(LinkFit("x", 1.0, 1.0, 0.0, 0.0, 1.0, fit.candidate)(torch.ones(2)), torch.Tensor)
