"""The equations of hol.pde against exact solutions: residuals at rounding level, conditions, sampling, the
break jumps of piecewise links, backends, bad input."""
from __future__ import annotations

import math

import pytest
import torch

import hol
from hol.pde import Burgers, Euler, Poisson, Solution, break_jumps, make_equation
from hol.pde.breaks import layer_break_jumps

KAN_FORCING = "-pi**2*(1+4*y**2)*sin(pi*x)*sin(pi*y**2)+2*pi*sin(pi*x)*cos(pi*y**2)"
KAN_EXACT = "sin(pi*x)*sin(pi*y**2)"


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def interior(equation, count: int = 500) -> torch.Tensor:
    return equation.uniform(count, generator()).requires_grad_(True)


def test_the_kan_poisson_solution_has_a_residual_at_rounding_level():
    equation = Poisson(forcing=KAN_FORCING, exact=KAN_EXACT)
    points = interior(equation)

    def exact(p):
        return (torch.sin(math.pi * p[:, 0]) * torch.sin(math.pi * p[:, 1] ** 2)).unsqueeze(-1)

    residual = equation.residual(points, exact(points))
    assert residual.shape == (500, 1)
    assert residual.abs().max() < 1e-11  # f reaches ~40: a relative 3e-13
    wrong = Poisson(forcing=KAN_FORCING.replace("2*pi*", "2.001*pi*"))
    assert wrong.residual(points, exact(points)).abs().max() > 1e-3  # the check can fail
    terms = equation.losses(exact, equation.sample(500, 100, 0, generator(), torch.float64))
    assert terms["boundary"] < 1e-28 and terms["residual"] < 1e-22


def test_a_steady_viscous_shock_solves_burgers():
    # u = -tanh(x / (2 nu)) solves u u_x = nu u_xx, so the time-dependent residual vanishes too
    nu = 0.05
    equation = Burgers(viscosity=nu, initial="-tanh(x/(2*0.05))")
    points = interior(equation)
    values = -torch.tanh(points[:, :1] / (2 * nu))
    assert equation.residual(points, values).abs().max() < 1e-12
    assert Burgers(viscosity=2 * nu).residual(points, values).abs().max() > 1.0
    assert equation.exact(points.detach()) is None  # a reference exists for -sin(pi x) only


@pytest.mark.parametrize("form", ["conservative", "primitive"])
@pytest.mark.parametrize("compression", [0.0, 0.5])
def test_an_advected_density_wave_solves_euler(form, compression):
    # rho = 1 + 0.2 sin(2 pi (x - u0 t)), u = u0, p = p0 is an exact solution
    equation = Euler(form=form, compression=compression)
    points = interior(equation)
    x, t = points.unbind(-1)
    rho = 1 + 0.2 * torch.sin(2 * math.pi * (x - 0.7 * t))
    fields = torch.stack([rho, torch.full_like(x, 0.7), torch.full_like(x, 2.0)], dim=-1) + 0 * points[:, :1]
    assert equation.residual(points, fields).abs().max() < 1e-12
    moving = torch.stack([rho, torch.full_like(x, 0.7), 2.0 + 0.1 * x], dim=-1)  # a pressure gradient
    assert equation.residual(points, moving).abs().max() > 0.05


def test_euler_residual_weight_is_small_in_compression_only():
    equation = Euler(compression=10.0)
    points = interior(equation, 50)
    x = points[:, 0]
    ones = torch.ones_like(x)
    for slope, shrinks in ((-1.0, True), (1.0, False)):  # u_x < 0 compresses
        fields = torch.stack([ones, slope * x, ones + 0.1 * x], dim=-1)
        unweighted = Euler().residual(points, fields)
        ratio = (equation.residual(points, fields) / unweighted).detach()
        expected = 1 / 21 if shrinks else 1.0  # 1 / (10 (|u_x| - u_x) + 1)
        assert torch.allclose(ratio, torch.full_like(ratio, expected))


def test_conditions_and_sampling():
    equation = Poisson(forcing="0", exact="x*y", domain=[[0, 2], [-1, 3]])
    batch = equation.sample(300, 200, 0, generator(), torch.float64)
    assert set(batch) == {"interior", "boundary", "boundary_values"}
    x, y = batch["boundary"].unbind(-1)
    on_edge = (x == 0) | (x == 2) | (y == -1) | (y == 3)
    assert bool(on_edge.all()) and torch.allclose(batch["boundary_values"][:, 0], x * y)
    vertical = ((x == 0) | (x == 2)).double().mean()
    assert 0.5 < float(vertical) < 0.8  # the vertical edges are 4 of the perimeter's 6
    inside = batch["interior"]
    low, high = torch.tensor([0.0, -1.0]).double(), torch.tensor([2.0, 3.0]).double()
    assert bool(((inside >= low) & (inside <= high)).all())
    assert torch.allclose(equation.to_unit(torch.tensor([[0.0, -1.0], [2.0, 3.0]])),
                          torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))

    sod = Euler()
    batch = sod.sample(100, 50, 40, generator(), torch.float32)
    assert batch["initial"].dtype == torch.float32 and bool((batch["initial"][:, 1] == 0).all())
    left = batch["initial"][:, 0] < 0.5
    sod_left = torch.tensor([1.0, 0.0, 1.0]).expand(int(left.sum()), 3)
    assert torch.allclose(batch["initial_values"][left], sod_left)
    assert bool(((batch["boundary"][:, 0] == 0) | (batch["boundary"][:, 0] == 1)).all())
    grid = sod.grid([5, 3])
    assert grid.shape == (15, 2) and grid[:5, 1].eq(0).all() and grid[-5:, 1].eq(0.2).all()
    assert torch.allclose(grid[:5, 0], torch.linspace(0, 1, 5, dtype=torch.float64))


def test_equations_rebuild_from_their_hparams():
    for equation in (Poisson(forcing=KAN_FORCING, exact=KAN_EXACT, weights={"residual": 0.01}),
                     Burgers(viscosity=0.02, t_end=0.5), Euler(left=[0.445, 0.698, 3.528], compression=0.2)):
        rebuilt = make_equation(equation.hparams())
        assert type(rebuilt) is type(equation) and rebuilt.hparams() == equation.hparams()


def continuous_layer(segments: int, kind: str = "continuous") -> torch.nn.Module:
    torch.manual_seed(0)
    layer = hol.layers.fc(kind, 2, 3, n=4, segments=segments, init="uniform").double()
    layer.domain_width.fill_(3.0)  # an adapted domain: the jump is in the input's units
    return layer


@pytest.mark.parametrize("kind", ["continuous", "discontinuous", "continuous_prod"])
def test_break_jumps_are_the_links_one_sided_derivatives(kind):
    layer = continuous_layer(4, kind)
    jumps = layer_break_jumps(layer).reshape(3, 2, 3, -1)  # [O, I, S - 1, J]
    breaks = torch.tensor([-0.75, 0.0, 0.75], dtype=torch.float64)  # reference -0.5, 0, 0.5 times w / L
    for side, offset in (("left", -1e-7), ("right", 1e-7)):
        x = (breaks + offset).unsqueeze(-1).expand(3, 2).clone().requires_grad_(True)
        links = layer.links(x)  # [3 breaks, O, I]
        slope = torch.stack([torch.autograd.grad(links[:, o, i].sum(), x, retain_graph=True)[0][:, i]
                             for o in range(3) for i in range(2)]).reshape(3, 2, 3)
        if side == "left":
            left_slope, left_value = slope, links.detach().permute(1, 2, 0)
        else:
            right_slope, right_value = slope, links.detach().permute(1, 2, 0)
    assert torch.allclose(jumps[..., 0], left_slope - right_slope, atol=1e-5)
    if kind == "discontinuous":
        assert torch.allclose(jumps[..., 1], left_value - right_value, atol=1e-5)
    assert jumps.abs().max() > 0.1


def test_refined_smooth_links_have_no_jumps():
    net = hol.networks.MLP("continuous", 2, 1, hidden_layers=0, hidden_width=3, n=5, segments=1).double()
    assert break_jumps(net).numel() == 0
    refined = hol.refine(net, segments=4)
    assert break_jumps(refined).numel() > 0 and break_jumps(refined).abs().max() < 1e-12


def test_the_breaks_term_sees_a_kink_the_residual_cannot():
    # u = |x| - 1 on one-dimensional Poisson data: u_xx = 0 inside both segments, a kink at the break x = 0
    equation = Poisson(forcing="0", exact="abs(x)-1", weights={"breaks": 1.0})
    net = hol.networks.MLP("continuous", 2, 1, hidden_layers=0, hidden_width=1, n=2, segments=2,
                           normalization="none", output_layer="linear").double()
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor([[[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]]))  # links |x|, 0
        net.layers[1].weight.fill_(1.0)
        net.layers[1].bias.fill_(-1.0)
    model = Solution(net, equation)
    terms = equation.losses(model, equation.sample(200, 100, 0, generator(), torch.float64))
    assert terms["residual"] < 1e-24
    assert float(terms["breaks"]) == pytest.approx(4 / 2)  # a slope jump 2 at one break of two links
    with pytest.raises(ValueError, match=r"needs a model that is an nn\.Module"):
        equation.losses(lambda p: model(p), equation.sample(10, 10, 0, generator(), torch.float64))


def test_residual_derivatives_agree_between_backends():
    equation = Burgers()
    points = interior(equation, 300)
    residuals, gradients = [], []
    for backend in ("dense", "sparse", "fused"):
        torch.manual_seed(3)
        net = hol.networks.MLP("continuous", 2, 1, hidden_layers=1, hidden_width=6, n=4, segments=3,
                               backend=backend, normalization="none", init="uniform").double()
        model = Solution(net, equation)
        residual = equation.residual(points, model(points))
        residuals.append(residual.detach())
        gradients.append(torch.autograd.grad(residual.square().sum(), list(net.parameters())))
    for residual, gradient in zip(residuals[1:], gradients[1:], strict=True):
        assert torch.allclose(residual, residuals[0], rtol=1e-10, atol=1e-12)
        for dense, other in zip(gradients[0], gradient, strict=True):
            assert torch.allclose(other, dense, rtol=1e-9, atol=1e-11)


def test_solution_refuses_batch_normalization():
    net = hol.networks.MLP("continuous", 2, 1, hidden_layers=1, hidden_width=4, normalization="batch_norm")
    with pytest.raises(ValueError, match="batch normalization"):
        Solution(net, Poisson())


@pytest.mark.parametrize("build, fragment", [
    (lambda: Poisson(forcing="sin(z)"), "pde.forcing: bad expression 'sin(z)': the name 'z'"),
    (lambda: Poisson(forcing="1", exact="x+t"), "the name 't'"),
    (lambda: Burgers(initial="x*y"), "pde.initial: bad expression 'x*y': the name 'y' (variables: x)"),
    (lambda: Burgers(t_end=0), "pde.t_end must be a number > 0, got 0"),
    (lambda: Burgers(viscosity=-1), "pde.viscosity must be a number > 0, got -1"),
    (lambda: Euler(left=[0, 0, 1]), "pde.left must have rho > 0 and p > 0, got [0, 0, 1]"),
    (lambda: Euler(right=[1, 0, -0.1]), "pde.right must have rho > 0 and p > 0, got [1, 0, -0.1]"),
    (lambda: Euler(left=[1, 0]), "pde.left must be [rho, u, p]"),
    (lambda: Euler(t_end=-1), "pde.t_end must be a number > 0, got -1"),
    (lambda: Euler(x0=2), "pde.x0 must be a number in (0.0, 1.0), got 2"),
    (lambda: Euler(gamma=1), "pde.gamma must be a number > 1"),
    (lambda: Euler(form="weak"), "unknown pde.form 'weak'; allowed: conservative, primitive"),
    (lambda: Poisson(weights={"residul": 1}),
     "unknown pde.weights residul; allowed: residual, boundary, breaks"),
    (lambda: Poisson(domain=[[1, 0], [0, 1]]), "pde.domain[0] must be a pair [low, high]"),
    (lambda: make_equation({"name": "heat"}),
     "unknown pde equation 'heat'; allowed: burgers, euler, poisson"),
])
def test_bad_input_names_the_value(build, fragment):
    with pytest.raises(ValueError) as info:
        build()
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("viscosity", [0.0, 0.01])
def test_the_conservative_euler_residual_is_u_t_plus_f_x_of_the_conserved_variables(viscosity):
    """The residual's product-rule terms against autograd's derivatives of U and F themselves."""
    equation = Euler(viscosity=viscosity, gamma=1.3)
    points = interior(equation, 200)
    x, t = points.unbind(-1)
    rho = 1.2 + 0.3 * torch.sin(3 * x + t)
    u = 0.5 * torch.cos(2 * x - 3 * t) + x * t
    p = 1.0 + 0.2 * torch.exp(-x * t) * x
    energy = p / 0.3 + 0.5 * rho * u * u
    conserved, fluxes = (rho, rho * u, energy), (rho * u, rho * u * u + p, u * (energy + p))
    expected = []
    for value, flux in zip(conserved, fluxes, strict=True):
        value_x, value_t = hol.pde.derivative(value, points).unbind(-1)
        value_xx = hol.pde.derivative(value_x, points)[:, 0]
        expected.append(value_t + hol.pde.derivative(flux, points)[:, 0] - viscosity * value_xx)
    residual = equation.residual(points, torch.stack([rho, u, p], dim=-1))
    assert torch.allclose(residual, torch.stack(expected, dim=-1), rtol=1e-12, atol=1e-12)
    assert residual.abs().max() > 0.1  # a field that solves nothing
