"""Issue 27's target: a [2, 1, 1] network trained on pykan's first example, f(x, y) = exp(sin(pi x) + y^2),
read back as that formula (fit every link, write the formula, simplify its constants)."""
import math

import pytest
import sympy
import torch

import hol
from hol.networks import MLP
from hol.symbolic import evaluate, fit_network, formula, simplify_formula
from tests.symbolic.common import DOUBLE

# conf/experiment/function_2d.yaml, shortened: float64, full-batch L-BFGS (the loss divided by its value at
# each stage's start, as the runner's ScaledLBFGS), then the domains adapted and the links refined, stage by
# stage
LADDER = [(4, 4), (5, 8), (7, 8), (8, 8)]


def target(points):
    return torch.exp(torch.sin(math.pi * points[:, :1]) + points[:, 1:] ** 2)


def train(net, x, y, epochs):
    optimizer = torch.optim.LBFGS(net.parameters(), max_iter=200, history_size=100, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")
    scale = ((net(x) - y).square().mean()).item()

    def closure():
        optimizer.zero_grad()
        loss = (net(x) - y).square().mean() / scale
        loss.backward()
        return loss

    for _ in range(epochs):
        optimizer.step(closure)


def rmse(values, targets):
    return (values - targets).square().mean().sqrt().item()


@pytest.mark.slow
def test_the_network_trained_on_exp_sin_pi_x_plus_y_squared_reads_as_that_formula():
    generator = torch.Generator().manual_seed(0)
    x_train, x_test = (torch.rand(1000, 2, generator=generator, dtype=DOUBLE) * 2 - 1 for _ in range(2))
    y_train, y_test = target(x_train), target(x_test)
    net = MLP("continuous", 2, 1, widths=[1], normalization="none", n=4, segments=2,
              input_layer={"kind": "continuous", "init": "constant"}).double()
    train(net, x_train, y_train, 1)
    for n, segments in LADDER:
        net = hol.refine(hol.adapt_domains(net, x_train), n=n, segments=segments)
        train(net, x_train, y_train, 2)
    with torch.no_grad():
        network_rmse = rmse(net(x_test)[:, 0], y_test[:, 0])
    assert network_rmse < 1e-7

    fits = fit_network(net)  # every built-in candidate, on each layer's input domain
    names = {key: fit.name for key, fit in fits.items()}
    assert names == {(0, 0, 0): "sin", (0, 0, 1): "x**2", (1, 0, 0): "exp"}
    assert min(fit.r2 for fit in fits.values()) > 1 - 1e-12
    [f] = formula(net, ["x", "y"], fits)
    assert rmse(evaluate(f, ["x", "y"], x_test), y_test[:, 0]) <= network_rmse

    axis = torch.linspace(-1, 1, 101, dtype=DOUBLE)
    grid = torch.cartesian_prod(axis, axis)
    assert (evaluate(f, ["x", "y"], grid) - target(grid)[:, 0]).abs().max() < 1e-6
    x, y = sympy.symbols("x y")
    assert simplify_formula(f, ["x", "y"], grid) == sympy.exp(sympy.sin(sympy.pi * x) + y**2)
