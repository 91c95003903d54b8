"""Diverged runs: training stops at the first non-finite loss, and the run says so in one line.

:class:`DivergenceMonitor` watches the training loss of every batch and the validation metrics of every epoch;
at the first NaN or infinity it records where (epoch, metric, value) and stops the Trainer. ``train`` then
skips testing, writes ``metrics.json`` with ``run/status: diverged`` and raises :class:`RunDiverged`, a user
error: the ``hol`` command prints its one line and exits with status 1, and a sweep records the job as failed
and goes on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import lightning.pytorch as pl
from torch import Tensor


@dataclass(frozen=True)
class Divergence:
    """Where a run diverged: the (0-based) epoch, the metric and its value."""

    epoch: int
    metric: str
    value: float


HALF_WEIGHTS = ("16-true", "16")
"""The ``trainer.precision`` values that train float16 weights (Lightning's names)."""


class RunDiverged(ValueError):
    """The run diverged (:class:`Divergence`); the message names the epoch and the metric and gives a hint
    that fits the run: float16 weights, a line search (L-BFGS: its steps are not the learning rate's), or a
    smaller learning rate."""

    def __init__(self, divergence: Divergence, lr: float | None = None, precision: str | int | None = None,
                 line_search: bool = False):
        self.divergence = divergence
        hint = "try a smaller learning rate" if lr is None else f"try a smaller optimizer.lr (it is {lr:g})"
        if line_search:
            hint = ("the optimizer chose its steps by a line search, so a smaller optimizer.lr would not "
                    "change them; look at the loss's inputs (data, targets) and try float64 "
                    "(trainer.precision=64-true)")
        if str(precision) in HALF_WEIGHTS:
            hint = (f"trainer.precision={precision} computes in float16, where values beyond 65504 overflow "
                    "and gradients below 6e-8 vanish: try trainer.precision=16-mixed (float32 weights, "
                    "float16 products) or bf16-true")
        super().__init__(f"the run diverged in epoch {divergence.epoch}: {divergence.metric} is "
                         f"{divergence.value}; {hint}")


class DivergenceMonitor(pl.Callback):
    """Stop training at the first non-finite training loss (per batch) or validation metric (per epoch);
    :attr:`divergence` then tells where. Its state survives a resume."""

    def __init__(self) -> None:
        self.divergence: Divergence | None = None

    def _check(self, trainer: pl.Trainer, metric: str, value: Tensor | float) -> None:
        value = float(value)
        if self.divergence is None and not math.isfinite(value):
            self.divergence = Divergence(trainer.current_epoch, metric, value)
            trainer.should_stop = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, Tensor):
            self._check(trainer, "train/loss", loss.detach())

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/") and isinstance(value, Tensor) and value.numel() == 1:
                self._check(trainer, key, value)

    def state_dict(self) -> dict:
        return {"divergence": None if self.divergence is None else vars(self.divergence)}

    def load_state_dict(self, state_dict: dict) -> None:
        found = state_dict.get("divergence")
        self.divergence = None if found is None else Divergence(**found)
