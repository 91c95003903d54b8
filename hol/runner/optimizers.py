"""Optimizers of the runner beyond torch's: :class:`ScaledLBFGS`."""
from __future__ import annotations

import math

import torch


class ScaledLBFGS(torch.optim.LBFGS):
    """``torch.optim.LBFGS`` on the loss divided by its value at the optimizer's first evaluation.

    torch's L-BFGS has absolute thresholds: it keeps a curvature pair ``(s, y)`` only if ``y . s > 1e-10``,
    and stops when the largest gradient entry is below ``tolerance_grad`` or the loss changes by less than
    ``tolerance_change``. A regression driven to a test RMSE of 1e-7 has a loss of 1e-14 and steps of 1e-6, so
    ``y . s`` falls below 1e-10: L-BFGS stops learning curvature and crawls (measured on the two-variable KAN
    example, ``experiments/function_2d.yaml``: stuck at a training RMSE of 1.6e-7 where the same network
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
                state["loss_scale"] = 1.0 / first if math.isfinite(first) and first > 0 else 1.0
            scale = state["loss_scale"]
            for parameter in self._params:
                if parameter.grad is not None:
                    parameter.grad.mul_(scale)
            return loss * scale

        loss = super().step(scaled_closure)
        return None if loss is None else loss / state["loss_scale"]

    def _gather_flat_grad(self):
        # float32 for half-precision weights; torch's _add_grad then adds the float32 update to them in
        # float32 (type promotion) and rounds once
        return _working(super()._gather_flat_grad())


def _working(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in the dtype L-BFGS computes in: float32 for the half types, else its own."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor
