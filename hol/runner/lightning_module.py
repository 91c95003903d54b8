"""The LightningModule of the runner: a network, a loss by task, torchmetrics per stage, rebuildable
checkpoints.

Logged keys: ``train/loss``, ``val/loss``, ``test/loss`` and, by task, ``*/acc`` (classification, cross
entropy) or ``*/rmse`` (regression, mean squared error); plus the best validation values so far,
``val/loss_best`` and ``val/acc_best`` or ``val/rmse_best`` (the objectives of sweeps).

Checkpoints carry ``net_hparams`` (``net.hparams()``, which describes the network also after
:func:`hol.refine`), the module's own hyperparameters and the data config, so
:meth:`HolModule.from_checkpoint` rebuilds the model without the run's config. Training reseeds torch at each
epoch (``seed``), so a run resumed from an epoch's checkpoint repeats the uninterrupted one exactly (on CPU
with ``deterministic=True``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, MeanSquaredError, MinMetric
from torchmetrics.classification import MulticlassAccuracy

from ..networks import build

TASKS = ("classification", "regression")
STAGES = ("train", "val", "test")


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The torch seed of training epoch ``epoch`` on process ``rank`` of a run seeded with ``seed``."""
    return ((seed * 1_000_003 + epoch) * 1_009 + rank) % 2**63


class HolModule(pl.LightningModule):
    """Train ``net`` on a ``task``.

    Args:
        net: the network (``hol.networks.MLP``/``ConvNet`` or any module with ``hparams()`` to be
            rebuildable).
        task: ``"classification"`` (``net`` returns logits for ``num_classes`` classes) or ``"regression"``.
        num_classes: number of classes (classification only).
        optimizer: ``params -> torch.optim.Optimizer`` (a Hydra ``_partial_`` optimizer).
        scheduler: ``optimizer -> LR scheduler`` or ``None``; stepped once per epoch, ``ReduceLROnPlateau``
            on ``val/loss``.
        flatten_input: flatten each sample to a vector before ``net`` (images into a fully connected net).
        data_config: the data config stored in checkpoints for ``hol eval``.
        seed: reseed torch at every training epoch from ``(seed, epoch, rank)`` (:func:`epoch_seed`), so that
            random draws during training do not depend on what ran before; ``None``: no reseeding.
    """

    def __init__(self, net: nn.Module, task: str, num_classes: int | None = None,
                 optimizer: Callable[..., torch.optim.Optimizer] | None = None,
                 scheduler: Callable[..., Any] | None = None, flatten_input: bool = False,
                 data_config: dict | None = None, seed: int | None = None):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
        if task == "classification" and (not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(f"num_classes must be an integer >= 2 for classification, got {num_classes!r}")
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.net, self.optimizer_factory, self.scheduler_factory = net, optimizer, scheduler
        self.metric_name = "acc" if task == "classification" else "rmse"
        for stage in STAGES:  # train_loss, train_metric, val_loss, ...
            setattr(self, f"{stage}_loss", MeanMetric())
            setattr(self, f"{stage}_metric", self._metric())
        best_metric = MaxMetric if task == "classification" else MinMetric
        self.best = nn.ModuleDict({"loss": MinMetric(nan_strategy="ignore"),  # a NaN epoch is no best value
                                   self.metric_name: best_metric(nan_strategy="ignore")})
        for metric in self.best.values():
            metric.persistent(True)  # the best values so far survive a resume

    def _metric(self):
        if self.hparams.task == "classification":
            return MulticlassAccuracy(num_classes=self.hparams.num_classes, average="micro")
        return MeanSquaredError(squared=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1) if self.hparams.flatten_input else x)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        """The training loss: cross entropy (classification) or mean squared error (regression), batch
        mean."""
        if self.hparams.task == "classification":
            return nn.functional.cross_entropy(output, target)
        return nn.functional.mse_loss(output, target)

    def model_step(self, batch, stage: str) -> Tensor:
        x, target = batch
        output = self(x)
        loss = self.loss(output, target)
        if self.hparams.task == "classification":
            getattr(self, f"{stage}_metric").update(output.argmax(dim=-1), target)
        else:
            getattr(self, f"{stage}_metric").update(output.detach(), target)
        getattr(self, f"{stage}_loss").update(loss.detach(), weight=len(target))
        return loss

    def training_step(self, batch, batch_idx: int) -> Tensor:
        loss = self.model_step(batch, "train")
        self.log("train/loss_step", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.model_step(batch, "test")

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        loss, metric = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_metric")
        values = {"loss": loss.compute(), self.metric_name: metric.compute()}
        loss.reset()
        metric.reset()
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=stage != "test")
        return values

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        if self.trainer.sanity_checking:
            return  # the sanity check's numbers are no validation result
        for name, best in self.best.items():
            best.update(values[name])
            value = best.compute()
            if torch.isfinite(value):  # until a finite epoch value exists, there is no best value to log
                self.log(f"val/{name}_best", value)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("no optimizer configured; choose one with optimizer=NAME")
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": "val/loss"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if callable(getattr(self.net, "hparams", None)):
            checkpoint["net_hparams"] = self.net.hparams()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint of another refinement stage holds another network shape: rebuild the network to it.
        hparams = checkpoint.get("net_hparams")
        rebuildable = callable(getattr(self.net, "hparams", None))
        if hparams is not None and rebuildable and hparams != self.net.hparams():
            self.net = build(hparams)

    def on_train_epoch_start(self) -> None:
        # Random draws in training (dropout) depend only on (seed, epoch, rank): a resumed run repeats them.
        if self.hparams.seed is not None:
            torch.manual_seed(epoch_seed(self.hparams.seed, self.current_epoch, self.global_rank))

    @classmethod
    def from_checkpoint(cls, path: str, map_location="cpu") -> HolModule:
        """Rebuild a module from a checkpoint written by the runner (network from its ``net_hparams``)."""
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
        if "net_hparams" not in checkpoint or "hyper_parameters" not in checkpoint:
            raise ValueError(f"{path} is no hol checkpoint (it lacks net_hparams/hyper_parameters)")
        module = cls(build(checkpoint["net_hparams"]), **checkpoint["hyper_parameters"])
        module.load_state_dict(checkpoint["state_dict"])
        return module
