"""Optimizers of the runner beyond torch's: :class:`ScaledLBFGS`, and :class:`Float32MasterWeights`, any
optimizer over float32 copies of float16 weights."""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from scipy.linalg import blas
from scipy.optimize import line_search


class ScaledLBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` on the loss divided by its value at the optimizer's first evaluation.

    torch's L-BFGS has absolute thresholds: it keeps a curvature pair ``(s, y)`` only if ``y . s > 1e-10``,
    and stops when the largest gradient entry is below ``tolerance_grad`` or the loss changes by less than
    ``tolerance_change``. A regression driven to a test RMSE of 1e-7 has a loss of 1e-14 and steps of 1e-6, so
    ``y . s`` falls below 1e-10: L-BFGS stops learning curvature and crawls (measured on the two-variable KAN
    example, ``conf/experiment/function_2d.yaml``: stuck at a training RMSE of 1.6e-7 where the same network
    reaches 4e-9 with the loss scaled). Dividing the loss, and so its gradients, by its first value makes
    every threshold relative to where the optimizer started: the same iterates as torch's L-BFGS on ``loss /
    loss_0``, with the same arguments. The runner builds a new optimizer at every refinement stage, so each
    stage starts from a loss of 1.

    ``loss_0`` is kept in the optimizer's state (``state_dict()``, so a resumed run continues with it);
    ``step`` returns the unscaled loss of its first evaluation, as ``LBFGS.step`` does. A loss that is 0 or
    not finite at the first evaluation leaves the scale at 1.

    Half-precision weights (``trainer.precision=bf16-true`` or ``16-true``): the optimizer's own vectors (the
    flattened gradient, the direction, the curvature pairs) and each update are computed in float32 and the
    weights rounded once per update; in the weights' dtype, float16's range overflowed at the line search's
    first step (torch's L-BFGS adds ``step_size * direction`` in place) and bfloat16's 8 bits rounded the
    curvature pairs away.

    A trial step of the line search where the loss or its gradient is not finite (a float16 network whose
    values overflow, a polynomial link evaluated far outside its domain) counts as an infinite loss: the
    strong Wolfe search then bisects its bracket back towards the last iterate. torch's L-BFGS interpolates
    a cubic through the infinite value instead, gets a NaN step and moves every weight to NaN (measured on
    ``experiment=formula`` with ``trainer.precision=16-true`` on 64 points: NaN in the 9th epoch).

    ``restart=True`` starts every ``step`` afresh: no curvature pairs, no direction and no ``loss_0`` carried
    over from the step before. That is right when the loss changes between steps, as with collocation points
    drawn anew every epoch (``data.resample=true``): torch's L-BFGS would otherwise pair the new loss's
    gradient with the old one's, a curvature pair of two different functions.
    """

    def __init__(self, params, *args, restart: bool = False, **kwargs):
        super().__init__(params, *args, **kwargs)
        self.restart = restart

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]  # LBFGS requires the closure
        state = self.state[self._params[0]]
        if self.restart:
            state.clear()

        def scaled_closure():
            loss = closure()
            if loss is None:
                return loss
            if "loss_scale" not in state:
                first = float(torch.as_tensor(loss).detach())
                state["loss_scale"] = _scale_of(first)
            scale = state["loss_scale"]
            for parameter in self._params:
                if parameter.grad is not None:
                    parameter.grad.mul_(scale)
            return loss * scale

        loss = super().step(scaled_closure)
        return None if loss is None else loss / state["loss_scale"]

    def _directional_evaluate(self, closure, x, t, d):
        loss, flat_grad = super()._directional_evaluate(closure, x, t, d)
        if math.isfinite(loss) and bool(torch.isfinite(flat_grad).all()):
            return loss, flat_grad
        # an infinite loss with a NaN slope: the search's cubic step is then undefined (its discriminant is
        # NaN) and it takes the midpoint of its bracket, as it does for a cubic without a minimum
        return math.inf, torch.full_like(flat_grad, math.nan)

    def _gather_flat_grad(self):
        # float32 for half-precision weights; torch's _add_grad then adds the float32 update to them in
        # float32 (type promotion) and rounds once
        return _working(super()._gather_flat_grad())


def _model_step(loss: float, slope: float) -> float:
    """The first trial step along a descent direction, as a multiple of it: ``2 loss / |slope|``, where the
    quadratic ``loss + slope t + c t^2 / 2`` whose least value is 0 (the least a non-negative loss can reach)
    has its minimum; at most 1, and 1 where the loss is not positive. For the gradient of an ill-conditioned
    least-squares loss, where the unit step overshoots by orders of magnitude, beyond what the strong Wolfe
    search's zoom (10 interpolations, each keeping at least a fifth of the interval) can shorten."""
    return min(1.0, 2 * loss / -slope) if loss > 0 and slope < 0 else 1.0


def _scale_of(first_loss: float) -> float:
    """The factor that makes the first loss 1: ``1 / first_loss``, or 1 where that is 0 or not finite."""
    return 1.0 / first_loss if math.isfinite(first_loss) and first_loss > 0 else 1.0


def _working(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in the dtype L-BFGS computes in: float32 for the half types, else its own."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


class Float32MasterWeights(torch.optim.Optimizer):
    """Any torch optimizer stepping float32 copies ("master weights") of float16 weights.

    Under ``trainer.precision=16-true`` the network's weights are float16, and torch's optimizers keep their
    state in the weights' dtype: Adam's second moments of gradients below 2.4e-4 underflow to 0 (its ``eps``
    of 1e-8 is 0 in float16 too), so its steps divide by zero, and an update smaller than half a float16 ulp
    of its weight is lost. Measured on the presets: every run diverged or stalled. Here the wrapped optimizer
    works on a float32 copy of each float16 weight: each gradient is converted to float32, the optimizer
    updates the copy, and the float16 weight is the copy rounded, once per step. This is the scheme of
    Micikevicius et al., "Mixed Precision Training" (ICLR 2018), §3.1; weights of any other dtype are stepped
    as they are.

    Args:
        params: the network's parameters, in one group.
        optimizer: ``params -> torch.optim.Optimizer`` (a Hydra ``_partial_`` optimizer); it is built over the
            copies, so ``param_groups`` and ``state`` (learning rates of a scheduler, gradient clipping) are
            its.

    The copies travel in ``state_dict()`` (key ``"float32_master_weights"``), so a resumed run continues with
    the float32 values, not the rounded ones. ``step`` takes the closure of any optimizer (L-BFGS evaluates it
    several times: before each evaluation the float16 weights are set to the copies' current values).

    Gradients are taken over from the float16 weights when :meth:`gather_gradients` is called, or else after
    the closure: the runner's module calls it in ``on_before_optimizer_step``, so that Lightning's gradient
    clipping, which runs before the optimizer's step and works on ``param_groups``, clips the float32 copies'
    gradients (after DDP has reduced them).
    """

    def __init__(self, params: Iterable[torch.Tensor], optimizer: Callable[..., torch.optim.Optimizer]):
        self.weights = list(params)
        self.masters = [weight.detach().float().requires_grad_(weight.requires_grad)
                        if weight.dtype == torch.float16 else weight for weight in self.weights]
        self.optimizer = optimizer(params=self.masters)
        super().__init__(self.masters, self.optimizer.defaults)
        self.param_groups = self.optimizer.param_groups
        self.state = self.optimizer.state
        self._gathered = False

    def _pairs(self):
        pairs = zip(self.weights, self.masters, strict=True)
        return ((weight, master) for weight, master in pairs if master is not weight)

    @torch.no_grad()
    def gather_gradients(self) -> None:
        """Set each copy's gradient to its float16 weight's, in float32 (``None`` where that has none)."""
        for weight, master in self._pairs():
            master.grad = None if weight.grad is None else weight.grad.float()
        self._gathered = True

    @torch.no_grad()
    def _round_to_weights(self) -> None:
        for weight, master in self._pairs():
            weight.copy_(master)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            if not self._gathered:
                self.gather_gradients()
            loss = self.optimizer.step()
        else:
            def master_closure():
                self._round_to_weights()
                self._gathered = False
                with torch.enable_grad():
                    loss = closure()
                if not self._gathered:
                    self.gather_gradients()
                return loss

            loss = self.optimizer.step(master_closure)
        self._round_to_weights()
        self._gathered = False
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none)
        for weight, _ in self._pairs():
            if set_to_none:
                weight.grad = None
            elif weight.grad is not None:
                weight.grad.zero_()
        self._gathered = False

    def state_dict(self) -> dict:
        state = self.optimizer.state_dict()
        state["float32_master_weights"] = {index: master.detach().clone()
                                           for index, master in enumerate(self.masters)
                                           if master is not self.weights[index]}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        masters = state_dict.pop("float32_master_weights", {})
        self.optimizer.load_state_dict(state_dict)
        self.param_groups, self.state = self.optimizer.param_groups, self.optimizer.state  # new objects
        with torch.no_grad():
            for index, value in masters.items():
                self.masters[index].copy_(value)
            self._round_to_weights()


MAX_HALVINGS = 60
"""The most times :class:`BFGS` halves a first trial step where the loss is not finite (a factor of 1e-18)."""


MAX_PARAMETERS = 20_000
""":class:`BFGS`'s default limit on the parameters: its matrix then takes up to 3.2 GB."""


class BFGS(torch.optim.Optimizer):
    """Quasi-Newton BFGS with a dense inverse-Hessian approximation and a strong Wolfe line search, on the
    loss relative to its first value (as :class:`ScaledLBFGS`).

    Each iteration moves along ``d = -H g`` by a step that satisfies the strong Wolfe conditions
    (``scipy.optimize.line_search``, first trial step 1), then updates the ``n x n`` inverse Hessian ``H`` by
    the BFGS formula (Nocedal & Wright, *Numerical Optimization*, 2nd ed., 2006, eq. 6.17), scaled before the
    first update by ``y.s / y.y`` (eq. 6.20). A pair with ``y.s <= 1e-10 * |s| |y|`` is skipped; a search
    that finds no Wolfe step drops the matrix and tries again along the gradient, then along the gradient
    from the step where the quadratic model of the (non-negative) loss reaches 0, ``2 loss / |slope|`` (an
    ill-conditioned least-squares loss, where the unit step overshoots by orders of magnitude), and ends
    the step if that fails too. A trial step where the loss or its gradient is not finite counts as an
    infinite loss: the first trial step is halved until the loss there is finite (up to 60 times), and the
    search bisects back from any later one (as :class:`ScaledLBFGS` does).

    For the small networks of physics-informed training (a few thousand parameters, one batch), the full
    matrix keeps every curvature pair that L-BFGS's history drops; storing it costs ``8 n^2`` bytes in float64
    (57 MB for 2677 parameters), and each iteration ``O(n^2)`` on top of the loss and its gradient.

    Args:
        params: the parameters, in one group, of any floating dtype (the optimizer computes in float64 and
            rounds each evaluation's weights to their dtype).
        lr: the line search's first trial step, as a multiple of the quasi-Newton step ``-H g`` (as torch's
            L-BFGS takes it).
        max_iter: iterations per :meth:`step`.
        tolerance_grad: stop when the largest entry of the scaled gradient is at most this.
        tolerance_change: stop when the scaled loss or the step's largest entry changes by less than this.
        max_parameters: the most parameters accepted; more raise ``ValueError`` (the matrix's memory).
        restart: start every ``step`` afresh, as :class:`ScaledLBFGS` does with ``restart=True``.

    ``step`` returns the unscaled loss of its first evaluation. The matrix (in float64, whatever the weights'
    dtype) and the loss scale are in ``state_dict()``, so a resumed run continues with them.
    """

    def __init__(self, params, lr: float = 1.0, max_iter: int = 20, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, max_parameters: int = MAX_PARAMETERS,
                 restart: bool = False):
        super().__init__(params, {"lr": lr})
        if len(self.param_groups) != 1:
            raise ValueError("optimizer=bfgs takes one parameter group")
        self._params = [p for p in self.param_groups[0]["params"] if p.requires_grad]
        self.check_size(sum(p.numel() for p in self._params), max_parameters)
        self.max_iter, self.tolerance_grad, self.tolerance_change = max_iter, tolerance_grad, tolerance_change
        self.restart = restart

    @staticmethod
    def check_size(count: int, max_parameters: int = MAX_PARAMETERS) -> None:
        """Raise ``ValueError`` (naming both numbers) where ``count`` parameters are more than
        ``max_parameters``: the dense matrix's memory, checked ahead by refinement stages for each stage's
        network."""
        if count > max_parameters:
            raise ValueError(f"optimizer=bfgs keeps a dense {count} x {count} inverse Hessian; the network "
                             f"has {count} parameters, more than optimizer.max_parameters={max_parameters} "
                             f"(use optimizer=lbfgs)")

    def _flat_parameters(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self._params]).double()

    def _set_parameters(self, flat: torch.Tensor) -> None:
        offset = 0
        for p in self._params:
            p.copy_(flat[offset:offset + p.numel()].view_as(p))  # to the weight's dtype and device
            offset += p.numel()

    def _flat_gradient(self) -> torch.Tensor:
        return torch.cat([torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1)
                          for p in self._params]).double().cpu()

    @torch.no_grad()
    def step(self, closure):  # type: ignore[override]  # BFGS requires the closure
        state = self.state[self._params[0]]
        if self.restart:
            state.clear()
        last: dict[str, Any] = {}

        def evaluate(point: np.ndarray) -> tuple[float, np.ndarray]:
            """The scaled loss and gradient at ``point``; the line search asks for both at each trial step."""
            if "point" not in last or not np.array_equal(last["point"], point):
                self._set_parameters(torch.from_numpy(point))
                with torch.enable_grad():
                    loss = float(torch.as_tensor(closure()).detach())
                if "loss_scale" not in state:
                    state["loss_scale"] = _scale_of(loss)
                scale = state["loss_scale"]
                gradient = self._flat_gradient().numpy() * scale
                if not (math.isfinite(loss) and np.isfinite(gradient).all()):
                    loss = math.inf  # scipy's search bisects away from an infinite value; NaN fails its tests
                last.update(point=point.copy(), loss=loss * scale, gradient=gradient)
            return last["loss"], last["gradient"]

        x = self._flat_parameters().cpu().numpy()
        loss, gradient = evaluate(x)
        first_loss = loss / state["loss_scale"]
        kept = state.get("inverse_hessian")  # a tensor in the state (a checkpoint holds no numpy arrays)
        inverse = None if kept is None else np.asfortranarray(kept.cpu().numpy(), dtype=np.float64)
        from_model = False  # the gradient's first trial step from the quadratic model (after a failed search)
        for _ in range(self.max_iter):
            if math.isinf(loss) or np.abs(gradient).max() <= self.tolerance_grad:  # diverged, or converged
                break
            lr = self.param_groups[0]["lr"]
            if inverse is None:  # along the gradient, a first step of at most lr in the 1-norm (as L-BFGS)
                direction = -gradient * (lr * min(1.0, 1.0 / np.abs(gradient).sum()))
                if from_model:
                    direction *= _model_step(loss, float(gradient @ direction))
            else:
                direction = -blas.dsymv(lr, inverse, gradient)
            for _ in range(MAX_HALVINGS):  # scipy's search gives up after 10 bisections: start it finite
                if math.isfinite(evaluate(x + direction)[0]):
                    break
                direction = direction / 2
            with warnings.catch_warnings():  # a failed search returns None, handled below
                warnings.filterwarnings("ignore", "The line search algorithm", RuntimeWarning)
                step_size = line_search(lambda point: evaluate(point)[0], lambda point: evaluate(point)[1], x,
                                        direction, gfk=gradient, old_fval=loss, maxiter=25)[0]
            if step_size is None:  # no Wolfe step: drop the curvature, then shorten the first trial, or stop
                if inverse is None and from_model:
                    break
                from_model, inverse = inverse is None, None
                continue
            from_model = False
            new_x = x + step_size * direction
            new_loss, new_gradient = evaluate(new_x)
            s, y = new_x - x, new_gradient - gradient
            change = abs(new_loss - loss)
            x, loss, gradient = new_x, new_loss, new_gradient
            inverse = self._update(inverse, s, y)
            if change < self.tolerance_change or np.abs(s).max() < self.tolerance_change:
                break
        self._set_parameters(torch.from_numpy(x))
        if inverse is None:
            state.pop("inverse_hessian", None)
        else:
            state["inverse_hessian"] = torch.from_numpy(inverse)
        return first_loss

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)  # which casts the state to the weights' dtype
        for saved in state_dict["state"].values():
            if "inverse_hessian" in saved:
                self.state[self._params[0]]["inverse_hessian"] = saved["inverse_hessian"].double()

    def _update(self, inverse: np.ndarray | None, s: np.ndarray, y: np.ndarray) -> np.ndarray | None:
        """``H`` after the pair ``(s, y)``; only its upper triangle is kept (BLAS ``dsyr2``, read by
        ``dsymv``)."""
        curvature = float(y @ s)
        if curvature <= 1e-10 * float(np.linalg.norm(s) * np.linalg.norm(y)):
            return inverse
        if inverse is None:
            inverse = np.eye(len(s), order="F") * (curvature / float(y @ y))
        hy = blas.dsymv(1.0, inverse, y)
        yhy = float(y @ hy)
        rho = 1.0 / curvature
        # (I - rho s y^T) H (I - rho y s^T) + rho s s^T = H + s w^T + w s^T
        # with w = (rho + rho^2 y.H.y) s / 2 - rho H y
        w = (0.5 * (rho + rho * rho * yhy)) * s - rho * hy
        return blas.dsyr2(1.0, s, w, a=inverse, overwrite_a=True)
