"""hol.runner.optimizers: ScaledLBFGS (torch's L-BFGS on the loss relative to its first value), BFGS (a dense
inverse Hessian) and Float32MasterWeights."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from hol.runner.optimizers import BFGS, Float32MasterWeights, ScaledLBFGS

OPTIONS = {"lr": 1.0, "max_iter": 5, "history_size": 10, "line_search_fn": "strong_wolfe"}
GENERATOR_SEED = 0


def loss_of(weight: torch.Tensor, scale: float = 1e-6) -> torch.Tensor:
    """A small nonlinear least-squares loss, ``scale`` times an O(1) loss."""
    generator = torch.Generator().manual_seed(GENERATOR_SEED)
    x = torch.rand(40, 3, generator=generator, dtype=torch.float64)
    y = torch.sin(x @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
    return scale * (torch.tanh(x @ weight) - y).pow(2).mean()


def closure_of(optimizer: torch.optim.Optimizer, weight: torch.Tensor, divide_by: float = 1.0):
    def closure():
        optimizer.zero_grad()
        value = loss_of(weight) / divide_by
        value.backward()
        return value
    return closure


def parameter() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))


def test_the_iterates_are_lbfgs_on_the_loss_over_its_first_value():
    ours, reference = parameter(), parameter()
    scaled, plain = ScaledLBFGS([ours], **OPTIONS), torch.optim.LBFGS([reference], **OPTIONS)
    first = float(loss_of(ours).detach())
    for _ in range(3):
        returned = scaled.step(closure_of(scaled, ours))
        reference_loss = plain.step(closure_of(plain, reference, divide_by=first))
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-15)
        assert float(returned.detach()) == pytest.approx(float(reference_loss.detach()) * first, rel=1e-12)
    assert float(loss_of(ours).detach()) < 1e-2 * first


def test_torch_lbfgs_stalls_on_a_tiny_loss_where_the_scaled_one_converges():
    """The reason for the class: torch's absolute thresholds (curvature pairs need y.s > 1e-10)."""
    ours, reference = parameter(), parameter()
    scaled, plain = ScaledLBFGS([ours], **OPTIONS), torch.optim.LBFGS([reference], **OPTIONS)
    for _ in range(4):
        scaled.step(closure_of(scaled, ours))
        plain.step(closure_of(plain, reference))
    assert float(loss_of(ours).detach()) < 0.1 * float(loss_of(reference).detach())


def test_a_resumed_optimizer_continues_with_the_first_scale():
    uninterrupted = parameter()
    optimizer = ScaledLBFGS([uninterrupted], **OPTIONS)
    for _ in range(3):
        optimizer.step(closure_of(optimizer, uninterrupted))

    resumed = parameter()
    first = ScaledLBFGS([resumed], **OPTIONS)
    for _ in range(2):
        first.step(closure_of(first, resumed))
    state = first.state_dict()
    first_loss = float(loss_of(parameter()).detach())  # at the start, zero weights
    assert next(iter(state["state"].values()))["loss_scale"] == pytest.approx(1 / first_loss)
    second = ScaledLBFGS([resumed], **OPTIONS)
    second.load_state_dict(state)
    second.step(closure_of(second, resumed))
    torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)


def test_a_zero_first_loss_leaves_the_scale_at_one():
    weight = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = ScaledLBFGS([weight], **OPTIONS)

    def closure():
        optimizer.zero_grad()
        value = (weight - 0.0).pow(2).sum()
        value.backward()
        return value
    assert float(optimizer.step(closure)) == 0.0
    assert optimizer.state[weight]["loss_scale"] == 1.0


def test_a_restarting_optimizer_takes_every_step_as_a_new_one_would():
    ours, fresh_start, continuing = parameter(), parameter(), parameter()
    restarting = ScaledLBFGS([ours], restart=True, **OPTIONS)
    carried = ScaledLBFGS([continuing], **OPTIONS)
    for _ in range(3):
        restarting.step(closure_of(restarting, ours))
        fresh = ScaledLBFGS([fresh_start], **OPTIONS)  # no curvature pairs, its own first loss
        fresh.step(closure_of(fresh, fresh_start))
        carried.step(closure_of(carried, continuing))
        torch.testing.assert_close(ours, fresh_start, rtol=1e-12, atol=1e-15)
    assert not torch.allclose(ours, continuing, rtol=1e-6, atol=0)  # the carried pairs change the steps


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_weights_are_updated_in_float32_and_converge_to_rounding(dtype):
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(10).to(dtype))
    target = torch.linspace(-1, 1, 10)
    optimizer = ScaledLBFGS([weight], max_iter=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = 1e3 * (weight.float() - target).square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert weight.dtype == dtype and optimizer.state[weight]["d"].dtype == torch.float32
    assert (weight.float() - target).abs().max() <= torch.finfo(dtype).eps


def test_updates_below_half_a_float16_ulp_accumulate_in_the_float32_copies():
    # SGD with a constant gradient: each step moves the weight by 1e-4, a tenth of float16's ulp at 1; torch's
    # SGD on the float16 weight stays at 1 forever, the copy moves by exactly 100 * 1e-4 = 0.01
    weight = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    plain = torch.nn.Parameter(torch.ones(3, dtype=torch.float16))
    optimizer = Float32MasterWeights([weight], lambda params: torch.optim.SGD(params, lr=1e-4))
    reference = torch.optim.SGD([plain], lr=1e-4)
    for _ in range(100):
        for parameter, step in ((weight, optimizer), (plain, reference)):
            step.zero_grad()
            parameter.sum().backward()
            step.step()
    assert torch.equal(plain, torch.ones(3, dtype=torch.float16))
    assert torch.allclose(optimizer.masters[0], torch.full((3,), 0.99), rtol=0, atol=1e-5)  # 100 roundings
    assert torch.equal(weight, optimizer.masters[0].half())


def test_adam_on_gradients_whose_squares_underflow_float16_takes_adams_float32_steps():
    # |g| = 1e-4: g**2 = 1e-8 is 0 in float16 (smallest subnormal 6e-8), so torch's Adam on float16 weights
    # divides by zero; over float32 copies the first step is lr * sign(g), as Adam's is
    weight = torch.nn.Parameter(torch.zeros(4, dtype=torch.float16))
    optimizer = Float32MasterWeights([weight], lambda params: torch.optim.Adam(params, lr=1e-2))
    (weight * torch.tensor([1e-4, -1e-4, 2e-4, -3e-4], dtype=torch.float16)).sum().backward()
    optimizer.step()
    expected = torch.tensor([-1e-2, 1e-2, -1e-2, 1e-2])
    assert torch.allclose(optimizer.masters[0], expected, rtol=1e-4)
    assert torch.isfinite(weight).all() and weight.dtype == torch.float16


def test_lbfgs_over_the_copies_evaluates_the_closure_at_the_copies_values():
    # a quadratic with its minimum at values float16 cannot hold exactly: the copies reach them in float32
    target = torch.tensor([0.1, 1 / 3, -2.2])
    weight = torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))
    optimizer = Float32MasterWeights([weight], lambda params: torch.optim.LBFGS(params, max_iter=50,
                                                                                line_search_fn="strong_wolfe"))
    seen = []

    def closure():
        optimizer.zero_grad()
        seen.append(weight.detach().clone())
        loss = ((weight.float() - target) ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    assert len(seen) > 2 and all(value.dtype == torch.float16 for value in seen)
    assert torch.allclose(optimizer.masters[0], target, atol=1e-3)
    assert torch.equal(weight, optimizer.masters[0].half())


def test_a_resumed_optimizer_continues_from_the_float32_copies():
    def build():
        weight = torch.nn.Parameter(torch.ones(2, dtype=torch.float16))
        return weight, Float32MasterWeights([weight], lambda params: torch.optim.Adam(params, lr=1e-3))

    weight, optimizer = build()
    for _ in range(3):
        optimizer.zero_grad()
        (weight * weight).sum().backward()
        optimizer.step()
    state = optimizer.state_dict()
    resumed_weight, resumed = build()
    resumed.load_state_dict(state)
    assert torch.equal(resumed.masters[0], optimizer.masters[0])
    assert not torch.equal(resumed.masters[0], resumed.masters[0].half().float())  # more than float16 holds
    assert torch.equal(resumed_weight, weight)
    assert resumed.state[resumed.masters[0]]["step"] == 3


def test_weights_of_other_dtypes_are_stepped_as_they_are():
    half = torch.nn.Parameter(torch.ones(2, dtype=torch.float16))
    single = torch.nn.Parameter(torch.ones(2))
    optimizer = Float32MasterWeights([half, single], lambda params: torch.optim.SGD(params, lr=0.5))
    assert optimizer.masters[1] is single and optimizer.masters[0] is not half
    (half.float().sum() + single.sum()).backward()
    optimizer.step()
    assert torch.equal(single.detach(), torch.full((2,), 0.5))
    assert torch.equal(half.detach(), torch.full((2,), 0.5, dtype=torch.float16))
    assert optimizer.param_groups[0]["params"] == optimizer.masters


def rosenbrock_closure(optimizer: torch.optim.Optimizer, x: torch.Tensor, evaluations: list[int]):
    def closure():
        optimizer.zero_grad()
        evaluations.append(1)
        value = (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
        value.backward()
        return value
    return closure


def test_bfgs_reaches_the_minimum_of_the_rosenbrock_function():
    x = torch.nn.Parameter(torch.zeros(20, dtype=torch.float64))
    optimizer = BFGS([x], max_iter=500, tolerance_grad=1e-12, tolerance_change=0.0)
    evaluations: list[int] = []
    first = optimizer.step(rosenbrock_closure(optimizer, x, evaluations))
    assert first == 19.0  # the unscaled loss at the start
    torch.testing.assert_close(x.detach(), torch.ones(20, dtype=torch.float64), rtol=0, atol=1e-8)
    assert len(evaluations) < 500  # superlinear: L-BFGS with 100 pairs takes about as many


def test_the_bfgs_update_is_the_textbook_product_and_satisfies_the_secant_equation():
    generator = np.random.default_rng(0)
    root = generator.standard_normal((6, 6))
    inverse = np.asfortranarray(root @ root.T + 6 * np.eye(6))
    s, y = generator.standard_normal(6), generator.standard_normal(6)
    y += (1 - y @ s) / (s @ s) * s  # y.s = 1 > 0
    rho = 1 / (y @ s)
    left = np.eye(6) - rho * np.outer(s, y)
    expected = left @ inverse @ left.T + rho * np.outer(s, s)  # Nocedal & Wright (6.17)
    optimizer = BFGS([torch.nn.Parameter(torch.zeros(6, dtype=torch.float64))])
    updated = np.triu(optimizer._update(inverse.copy(order="F"), s, y))
    updated = updated + np.triu(updated, 1).T  # only the upper triangle is kept
    np.testing.assert_allclose(updated, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(updated @ y, s, rtol=1e-12, atol=1e-12)
    assert np.linalg.eigvalsh(updated).min() > 0


def test_bfgs_skips_a_pair_without_positive_curvature():
    optimizer = BFGS([torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))])
    inverse = np.eye(3, order="F")
    s = np.array([1.0, 0.0, 0.0])
    assert optimizer._update(inverse, s, -s) is inverse
    assert optimizer._update(None, s, np.zeros(3)) is None


def test_bfgs_starts_its_matrix_at_the_scaled_identity_of_the_first_pair():
    optimizer = BFGS([torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))])
    s, y = np.array([1.0, 0.0]), np.array([4.0, 0.0])  # curvature 4 along s: H = 1/4 there
    updated = optimizer._update(None, s, y)
    assert updated[0, 0] == pytest.approx(0.25) and updated[1, 1] == pytest.approx(0.25)  # (6.20): y.s / y.y


def test_a_resumed_bfgs_continues_as_the_uninterrupted_one():
    uninterrupted = parameter()
    optimizer = BFGS([uninterrupted], max_iter=3)
    for _ in range(3):
        optimizer.step(closure_of(optimizer, uninterrupted))

    resumed = parameter()
    first = BFGS([resumed], max_iter=3)
    for _ in range(2):
        first.step(closure_of(first, resumed))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # strict data, as Lightning loads a checkpoint
    second = BFGS([resumed], max_iter=3)
    second.load_state_dict(state)
    second.step(closure_of(second, resumed))
    torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)
    assert float(loss_of(resumed).detach()) < 1e-2 * float(loss_of(parameter()).detach())


def test_a_restarting_bfgs_takes_every_step_as_a_new_one_would():
    ours, fresh_start = parameter(), parameter()
    restarting = BFGS([ours], max_iter=3, restart=True)
    for _ in range(3):
        restarting.step(closure_of(restarting, ours))
        fresh = BFGS([fresh_start], max_iter=3)
        fresh.step(closure_of(fresh, fresh_start))
        torch.testing.assert_close(ours, fresh_start, rtol=0, atol=0)


def test_bfgs_on_float32_weights_computes_in_float64_and_keeps_their_dtype():
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = BFGS([weight], max_iter=30, tolerance_grad=0.0, tolerance_change=0.0)

    def closure():
        optimizer.zero_grad()
        value = ((weight - torch.tensor([0.1, 1 / 3, -2.2])) ** 2).sum()
        value.backward()
        return value
    optimizer.step(closure)
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight.detach(), torch.tensor([0.1, 1 / 3, -2.2]))
    saved = optimizer.state[weight]["inverse_hessian"]
    resumed = BFGS([weight])
    resumed.load_state_dict(optimizer.state_dict())  # torch's load casts the state to float32
    again = resumed.state[weight]["inverse_hessian"]
    assert again.dtype == saved.dtype == torch.float64 and torch.equal(again, saved)


def test_bfgs_refuses_a_matrix_too_large_in_one_line():
    with pytest.raises(ValueError, match=r"3 parameters, more than optimizer\.max_parameters=2"):
        BFGS([torch.nn.Parameter(torch.zeros(3))], max_parameters=2)


def overshooting_closure(optimizer: torch.optim.Optimizer, x: torch.Tensor, non_finite: str):
    """``sum(exp(x) - 2 x)`` (minimum at ``x = ln 2``) where ``x < 3``, and beyond that ``inf``, or NaN (``0 *
    sqrt(3 - x)``, as a float16 network's values that overflowed)."""
    def closure():
        optimizer.zero_grad()
        value = (torch.exp(x) - 2 * x).sum()
        if non_finite == "inf":
            value = value + torch.where(x > 3, math.inf, 0.0).sum()
        else:
            value = value + (0 * torch.sqrt(3 - x)).sum()
        value.backward()
        return value
    return closure


@pytest.mark.parametrize("non_finite", ["inf", "nan"])
@pytest.mark.parametrize("make", [
    lambda p: ScaledLBFGS(p, lr=1000.0, max_iter=50, line_search_fn="strong_wolfe", tolerance_change=0.0),
    lambda p: BFGS(p, lr=1000.0, max_iter=50, tolerance_change=0.0)], ids=["lbfgs", "bfgs"])
def test_a_trial_step_where_the_loss_is_not_finite_is_backed_away_from(make, non_finite):
    """The first trial step (1000 / 4 along the descent direction) lands where the loss is infinite or NaN;
    the line search backs away from it and the optimizer converges to the minimum."""
    x = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    optimizer = make([x])
    for _ in range(2):
        optimizer.step(overshooting_closure(optimizer, x, non_finite))
    torch.testing.assert_close(x.detach(), torch.full((4,), math.log(2.0), dtype=torch.float64), rtol=0,
                               atol=1e-8)


def test_bfgs_comes_back_from_a_first_gradient_step_orders_of_magnitude_too_long():
    """``(1e5 x0 - 1)^2 + (x1 - 1)^2`` from 0: the first trial step along the gradient (1 in the 1-norm) is
    1e5 times the step to the line's minimum, beyond what the strong Wolfe zoom can shorten; the search is
    tried again from the quadratic model's step (``2 loss / |slope|``) and the optimizer converges."""
    x = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    optimizer = BFGS([x], max_iter=50, tolerance_grad=0.0, tolerance_change=0.0)

    def closure():
        optimizer.zero_grad()
        value = (1e5 * x[0] - 1) ** 2 + (x[1] - 1) ** 2
        value.backward()
        return value
    optimizer.step(closure)
    torch.testing.assert_close(x.detach(), torch.tensor([1e-5, 1.0], dtype=torch.float64), rtol=1e-10, atol=0)
