"""The LightningModule of the runner: a network, a task (its loss, metrics and images), rebuildable
checkpoints.

Logged keys: ``train/loss``, ``val/loss``, ``test/loss`` and the task's metrics (:mod:`hol.runner.tasks`:
``*/acc`` for classification, ``*/rmse`` for regression, ``*/psnr`` and ``test/bpp`` for an implicit image,
``*/recon`` and ``*/kl`` for a VAE, whose ``*/loss`` is the negative ELBO); plus the best validation values so
far, ``val/loss_best`` and e.g. ``val/acc_best`` or ``val/rmse_best`` (the objectives of sweeps).

Checkpoints carry ``net_hparams`` (``net.hparams()``, which describes the network also after
:func:`hol.refine`), the module's own hyperparameters and the data config, so
:meth:`HolModule.from_checkpoint` rebuilds the model without the run's config. Training reseeds torch at each
epoch (``seed``), so a run resumed from an epoch's checkpoint repeats the uninterrupted one exactly (on CPU
with ``deterministic=True``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.plugins.precision import DoublePrecision
from torch import Tensor, nn
from torchmetrics import MaxMetric, Metric, MinMetric

from ..networks import build
from .optimizers import BFGS, Float32MasterWeights
from .records import describe_error
from .tasks import make_task


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The torch seed of training epoch ``epoch`` on process ``rank`` of a run seeded with ``seed``."""
    return ((seed * 1_000_003 + epoch) * 1_009 + rank) % 2**63


def net_hparams(net: nn.Module) -> dict[str, Any] | None:
    """``net.hparams()``, the arguments that rebuild ``net`` (:func:`hol.networks.build`), or ``None`` for a
    network without that method."""
    hparams = getattr(net, "hparams", None)
    return hparams() if callable(hparams) else None


class HolModule(pl.LightningModule):
    """Train ``net`` on a ``task``.

    Args:
        net: the network (``hol.networks.MLP``/``ConvNet``, ``hol.vae.VAE`` or any module with ``hparams()``
            to be rebuildable).
        task: a task of :data:`hol.runner.tasks.TASKS` (``"classification"``: ``net`` returns logits,
            ``"regression"``, ``"image_regression"``, ``"generative"``: ``net`` is a VAE).
        task_options: the task's keyword arguments (e.g. ``num_classes`` of a classification).
        optimizer: ``params -> torch.optim.Optimizer`` (a Hydra ``_partial_`` optimizer).
        scheduler: ``optimizer -> LR scheduler`` or ``None``; stepped once per epoch, ``ReduceLROnPlateau``
            on ``val/loss``.
        flatten_input: flatten each sample to a vector before ``net`` (images into a fully connected net).
        data_config: the data config stored in checkpoints for ``hol eval``.
        seed: reseed torch at every training epoch from ``(seed, epoch, rank)`` (:func:`epoch_seed`), so that
            random draws during training do not depend on what ran before; ``None``: no reseeding.
    """

    def __init__(self, net: nn.Module, task: str, task_options: dict | None = None,
                 optimizer: Callable[..., torch.optim.Optimizer] | None = None,
                 scheduler: Callable[..., Any] | None = None, flatten_input: bool = False,
                 data_config: dict | None = None, seed: int | None = None):
        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["net", "optimizer", "scheduler"])
        self.net, self.optimizer_factory, self.scheduler_factory = net, optimizer, scheduler
        self.task = make_task(task, **(task_options or {}))
        best: dict[str, Metric] = {  # a NaN epoch is no best value
            name: (MaxMetric if mode == "max" else MinMetric)(nan_strategy="ignore")
            for name, mode in self.task.best.items()}
        for metric in best.values():
            metric.persistent(True)  # the best values so far survive a resume
        self.best = nn.ModuleDict(best)

    def forward(self, x: Tensor):
        return self.net(x.flatten(1) if self.hparams["flatten_input"] else x)

    def model_step(self, batch, stage: str) -> Tensor:
        """The batch's loss (the task's objective, :meth:`hol.runner.tasks.Task.step`), added to ``stage``'s
        metrics."""
        return self.task.step(self, batch, stage)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        batches = self.trainer.num_training_batches
        fraction = batch_idx / batches if 0 < batches < float("inf") else 0.0
        self.task.set_progress(self.current_epoch + fraction)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        loss = self.model_step(batch, "train")
        self.log("train/loss_step", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.model_step(batch, "test")

    def _log_epoch(self, stage: str) -> dict[str, Tensor]:
        values = self.task.compute(stage, self.net)
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=stage != "test")
        if stage != "train" and not self.trainer.sanity_checking:
            self.task.log_images(stage, self)
        return values

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val")
        if self.trainer.sanity_checking:
            return  # the sanity check's numbers are no validation result
        for name, module in self.best.items():
            if name not in values:  # a metric the data does not give (a PDE without a reference)
                continue
            best = cast(Metric, module)  # an nn.ModuleDict hands out its entries as plain modules
            best.update(values[name])
            value = best.compute()
            if torch.isfinite(value):  # until a finite epoch value exists, there is no best value to log
                self.log(f"val/{name}_best", value)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ValueError("no optimizer configured; choose one with optimizer=NAME")
        parameters = list(self.parameters())
        if any(parameter.dtype == torch.float16 for parameter in parameters):  # trainer.precision=16-true
            optimizer: torch.optim.Optimizer = Float32MasterWeights(parameters, self.optimizer_factory)
        else:
            optimizer = self.optimizer_factory(params=parameters)
        _check_accumulation(optimizer, getattr(self._trainer, "accumulate_grad_batches", 1))
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": "val/loss"}}

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # float16 weights: the float32 copies take their gradients now, before Lightning clips the gradients
        # of the optimizer's parameters
        if isinstance(optimizer, Float32MasterWeights):
            optimizer.gather_gradients()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        hparams = net_hparams(self.net)
        if hparams is not None:
            checkpoint["net_hparams"] = hparams

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # A checkpoint of another refinement stage holds another network shape: rebuild the network to it, in
        # the running network's dtype and device.
        hparams, own = checkpoint.get("net_hparams"), net_hparams(self.net)
        if hparams is not None and own is not None and hparams != own:
            reference = next(self.net.parameters(), None)
            net = build(hparams)
            self.net = net if reference is None else net.to(device=reference.device, dtype=reference.dtype)
        # Lightning loads a resumed run's weights before its precision plugin converts the module: under
        # trainer.precision=64-true, still float32 weights would round the checkpoint's float64 ones (a
        # resumed run differed from the uninterrupted one by 1e-7 relative in its weights, 3e-5 in errors)
        trainer = self._trainer
        if trainer is not None and isinstance(trainer.precision_plugin, DoublePrecision):
            self.double()

    def on_train_epoch_start(self) -> None:
        # Random draws in training (dropout) depend only on (seed, epoch, rank): a resumed run repeats them.
        seed = self.hparams["seed"]
        if seed is not None:
            torch.manual_seed(epoch_seed(seed, self.current_epoch, self.global_rank))
        self.task.start_epoch(self, getattr(self._trainer, "datamodule", None))

    @classmethod
    def from_checkpoint(cls, path: str, map_location="cpu") -> HolModule:
        """Rebuild a module from a checkpoint written by the runner (network from its ``net_hparams``), in
        float64 when its weights are (a run with ``trainer.precision=64-true``), else in float32."""
        checkpoint = read_checkpoint(path, map_location)
        if "net_hparams" not in checkpoint or "hyper_parameters" not in checkpoint:
            raise ValueError(f"{path} is no hol checkpoint (it lacks net_hparams/hyper_parameters)")
        module = cls(build(checkpoint["net_hparams"]), **checkpoint["hyper_parameters"])
        weights = [tensor for key, tensor in checkpoint["state_dict"].items()
                   if key.startswith("net.") and key.endswith(".weight") and tensor.is_floating_point()]
        if weights and all(tensor.dtype == torch.float64 for tensor in weights):
            module.net.double()
        module.load_state_dict(checkpoint["state_dict"])
        return module


def read_checkpoint(path: str, map_location="cpu") -> dict:
    """The Lightning checkpoint at ``path``, as ``torch.load`` reads it.

    Raises:
        ValueError: naming the file, when it is no readable checkpoint (empty, truncated, corrupt, another
            kind of file) or no Lightning checkpoint (no ``state_dict``).
    """
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # unpickling, archive and end-of-file errors of a file that is no checkpoint
        raise ValueError(f"ckpt_path {path!r} is no readable checkpoint ({describe_error(error)})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"ckpt_path {path!r} is no Lightning checkpoint (it holds no state_dict)")
    return checkpoint


def _check_accumulation(optimizer: torch.optim.Optimizer, batches: int) -> None:
    """Refuse L-BFGS and BFGS with gradient accumulation: they evaluate one batch's loss many times per step
    (the closure), and the gradients Lightning keeps from the window's earlier batches would join every
    evaluation (and be rescaled by :class:`~hol.runner.optimizers.ScaledLBFGS` at each one): the run went to
    NaN."""
    if isinstance(optimizer, Float32MasterWeights):
        optimizer = optimizer.optimizer
    if isinstance(optimizer, torch.optim.LBFGS | BFGS) and batches > 1:
        name = "bfgs" if isinstance(optimizer, BFGS) else "lbfgs"
        raise ValueError(f"optimizer={name} cannot accumulate gradients over batches "
                         f"(trainer.accumulate_grad_batches={batches}): it evaluates one batch's loss many "
                         "times per step; use one larger batch instead (data.batch_size, null for the full "
                         "data set)")
