"""Refinement stages: train at a low order, refine the network exactly with :func:`hol.refine`, continue.

The config key ``refine`` lists the stages, each ``{epochs: E, n: N, segments: S}`` (``n``/``segments``
optional)::

    hol train experiment=xor 'refine=[{epochs: 5, n: 2}, {epochs: 5, n: 3}, {epochs: 10, n: 5, segments: 4}]'

* The run lasts the sum of the stages' epochs (``trainer.max_epochs`` is set to it).
* The first stage's ``n``/``segments`` are the order the network is *built* with (they replace
  ``layer.n``/``layer.segments``), so no approximation happens at epoch 0.
* At the first epoch of every later stage, :class:`RefinementStages` replaces the module's ``net`` by
  ``hol.refine(net, n, segments)``. Each later stage must raise the order or the segment count and keep the
  new space a superset of the old one (``n`` not below the previous stage's, ``segments`` a multiple of
  it), so every refinement is exact: the network computes the same function before and after.
* Then the optimizer(s) and scheduler(s) are built anew from the config for the new parameters (their
  per-parameter state, e.g. Adam's moments, starts empty); the learning-rate schedule carries on: every
  param group takes over the old group's hyperparameters (its current learning rate) and every scheduler
  the old scheduler's state, so e.g. a cosine schedule spans the whole run.
* The validation loss just before and just after each refinement (the whole validation set, model in eval
  mode; equal up to float error) and the refinement's largest change of a link function
  (``refine_max_change``) are logged to the run's loggers (``refine/stage``, ``refine/n``,
  ``refine/segments``, ``refine/val_loss_before``, ``refine/val_loss_after``, ``refine/max_change``, at the
  step of the boundary) and to the console. ``metrics.json`` gets ``refine/max_change`` and
  ``refine/val_loss_change`` (the largest ``|after - before|``), each the maximum over the refinements.
* Resume: checkpoints store the refined network's hyperparameters and the refinements done so far (the
  callback's state), so a run resumed after a refinement reloads the refined shapes and does not refine
  again; one resumed from the last checkpoint before a boundary refines at the boundary, as the
  uninterrupted run did.
* DDP: every process refines its replica identically and the model is wrapped in DDP anew.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from torch import nn

from ..checks import check_int
from ..refine import refine

STAGE_KEYS = ("epochs", "n", "segments")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """Train ``epochs`` epochs at order ``n`` with ``segments`` segments (``None``: as the stage before)."""

    epochs: int
    n: int | None = None
    segments: int | None = None


def parse_stages(spec, n: int | None = None, segments: int | None = None) -> list[Stage]:
    """The stages of the config value ``refine`` (a list of mappings), checked.

    ``n``/``segments`` are the model's order before the first stage (used to check the first stage's
    successor when the first stage leaves them unset). Raises ``ValueError`` naming ``refine[i].key``.
    """
    if spec is None:
        return []
    if isinstance(spec, (ListConfig, DictConfig)):
        spec = OmegaConf.to_container(spec, resolve=True)
    if not isinstance(spec, (list, tuple)):
        example = "[{epochs: 5, n: 2}, {epochs: 5, n: 3}]"
        raise ValueError(f"refine must be a list of stages like {example}, got {spec!r}")
    stages = []
    for index, entry in enumerate(spec):
        name = f"refine[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{name} must be a mapping like {{epochs: 5, n: 3}}, got {entry!r}")
        unknown = sorted(str(key) for key in entry if key not in STAGE_KEYS)
        if unknown:
            raise ValueError(f"{name} has unknown key(s) {', '.join(unknown)}; "
                             f"allowed: {', '.join(STAGE_KEYS)}")
        if "epochs" not in entry:
            raise ValueError(f"{name} needs epochs (an integer >= 1), got {dict(entry)!r}")
        check_int(f"{name}.epochs", entry["epochs"], 1)
        for key in ("n", "segments"):
            if entry.get(key) is not None:
                check_int(f"{name}.{key}", entry[key], 1)
        stage = Stage(entry["epochs"], entry.get("n"), entry.get("segments"))
        if index > 0:
            _check_refinement(name, stage, n, segments)
        n = stage.n if stage.n is not None else n
        segments = stage.segments if stage.segments is not None else segments
        stages.append(stage)
    return stages


def _check_refinement(name: str, stage: Stage, n: int | None, segments: int | None) -> None:
    """A later stage must change the order exactly: ``n`` up, ``segments`` to a multiple."""
    if stage.n is None and stage.segments is None:
        raise ValueError(f"{name} must set n and/or segments (a stage after the first refines the network)")
    if stage.n is not None and n is not None and stage.n < n:
        raise ValueError(f"{name}.n must be >= the previous stage's n {n} (refinement raises the order), "
                         f"got {stage.n}")
    if stage.segments is not None and segments is not None and stage.segments % segments:
        raise ValueError(f"{name}.segments must be a multiple of the previous stage's segments {segments}, "
                         f"got {stage.segments}")
    if stage.n in (None, n) and stage.segments in (None, segments):
        raise ValueError(f"{name} changes neither n nor segments (both as the previous stage: n={n}, "
                         f"segments={segments})")


def configure(cfg: DictConfig) -> list[Stage]:
    """Parse ``cfg.refine``; with stages, set ``trainer.max_epochs`` to their total and ``layer.n``/
    ``layer.segments`` to the first stage's. Returns the stages (``[]``: ordinary training)."""
    layer = cfg.get("layer") or {}
    stages = parse_stages(cfg.get("refine"), layer.get("n"), layer.get("segments"))
    if not stages:
        return stages
    with open_dict(cfg):
        cfg.trainer.max_epochs = sum(stage.epochs for stage in stages)
        for key in ("n", "segments"):
            value = getattr(stages[0], key)
            if value is not None:
                if key not in layer:
                    raise ValueError(f"refine[0].{key} needs a layer config with {key}")
                cfg.layer[key] = value
    return stages


@torch.no_grad()
def validation_loss(module: pl.LightningModule, dataloader) -> float:
    """The module's loss (:meth:`~hol.runner.lightning_module.HolModule.loss`, on the batches as its task
    splits them) over all of ``dataloader`` in eval mode, batches weighted by their size (``nan`` without a
    dataloader); torch's random state is left as it was."""
    if dataloader is None:
        return math.nan
    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    with torch.random.fork_rng(devices=[]):
        for batch in dataloader:
            x, target = (tensor.to(module.device) for tensor in module.task.split(batch))
            total += float(module.loss(module(x), target)) * len(target)
            count += len(target)
    module.train(was_training)
    return total / count if count else math.nan


def _net_order(net: nn.Module) -> dict[str, int]:
    """``n`` and ``segments`` of the network's layers (its ``hparams()["layer"]``), where it has them."""
    hparams = net.hparams() if callable(getattr(net, "hparams", None)) else {}
    layer = hparams.get("layer") if isinstance(hparams.get("layer"), dict) else hparams
    return {key: layer[key] for key in ("n", "segments") if isinstance(layer.get(key), int)}


class RefinementStages(pl.Callback):
    """Refine ``pl_module.net`` at the first epoch of every stage after the first (see the module docstring).

    Args:
        stages: the stages (:func:`parse_stages`); the network is expected to be built at the first
            stage's order and the Trainer to run ``sum(epochs)`` epochs.
    """

    def __init__(self, stages: Sequence[Stage]):
        if not stages:
            raise ValueError("RefinementStages needs at least one stage")
        self.stages = list(stages)
        self.starts = [sum(stage.epochs for stage in self.stages[:i]) for i in range(len(self.stages))]
        self.records: dict[int, dict[str, float]] = {}  # stage index -> what its refinement measured

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        strategy = trainer.strategy
        supported = isinstance(strategy, SingleDeviceStrategy) or type(strategy) is DDPStrategy
        if stage == "fit" and not supported:
            raise ValueError(f"refinement stages support single-device and DDP training, not the "
                             f"{type(strategy).__name__} strategy")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch not in self.starts:
            return
        index = self.starts.index(trainer.current_epoch)
        if index > 0 and index not in self.records:  # not yet done (a resumed run has it in its state)
            self.records[index] = self.refine(trainer, pl_module, self.stages[index])
            record = self.records[index]
            if trainer.is_global_zero:
                log.info(
                    f"refinement stage {index + 1}/{len(self.stages)} at epoch {trainer.current_epoch}: "
                    f"{_describe(self.stages[index])}; val loss {record['val_loss_before']:.8g} -> "
                    f"{record['val_loss_after']:.8g}, max change of a link {record['max_change']:.3g}")
        metrics = {"refine/stage": float(index), **{f"refine/{key}": float(value)
                                                   for key, value in _net_order(pl_module.net).items()}}
        if index in self.records:
            metrics.update({f"refine/{key}": value for key, value in self.records[index].items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def refine(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: Stage) -> dict[str, float]:
        """Refine the module's network to ``stage``'s order, rebuild the optimizers; what was measured."""
        dataloader = trainer.datamodule.val_dataloader() if trainer.datamodule else trainer.val_dataloaders
        before = validation_loss(pl_module, dataloader)
        pl_module.net = refine(pl_module.net, n=stage.n, segments=stage.segments)
        max_change = pl_module.net.refine_max_change
        _rebuild_optimizers(trainer)
        after = validation_loss(pl_module, dataloader)
        return {"val_loss_before": before, "val_loss_after": after, "max_change": max_change}

    def metrics(self) -> dict[str, float]:
        """``refine/max_change`` and ``refine/val_loss_change`` over the refinements done (``{}``: none)."""
        if not self.records:
            return {}
        records = self.records.values()
        return {"refine/max_change": max(record["max_change"] for record in records),
                "refine/val_loss_change": max(abs(record["val_loss_after"] - record["val_loss_before"])
                                              for record in records)}

    def state_dict(self) -> dict:
        return {"stages": [asdict(stage) for stage in self.stages], "records": dict(self.records)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.records = {int(index): dict(record) for index, record in state_dict.get("records", {}).items()}


def _describe(stage: Stage) -> str:
    return ", ".join(f"{key}={value}" for key, value in (("n", stage.n), ("segments", stage.segments))
                     if value is not None)


def _rebuild_optimizers(trainer: pl.Trainer) -> None:
    """New optimizers and schedulers from ``configure_optimizers`` for the module's new parameters, with the
    old param groups' hyperparameters (current learning rates) and the old schedulers' states; under DDP the
    module is wrapped anew, since DDP registers the parameters it synchronizes when it wraps."""
    strategy = trainer.strategy
    old_optimizers, old_schedulers = strategy.optimizers, strategy.lr_scheduler_configs
    if isinstance(strategy, DDPStrategy) and strategy.model is not strategy.lightning_module:
        strategy.model = strategy.lightning_module
        strategy.configure_ddp()
    strategy.setup_optimizers(trainer)
    if len(old_optimizers) != len(strategy.optimizers):
        return
    for old, new in zip(old_optimizers, strategy.optimizers, strict=True):
        if len(old.param_groups) == len(new.param_groups):
            for old_group, new_group in zip(old.param_groups, new.param_groups, strict=True):
                new_group.update({key: value for key, value in old_group.items() if key != "params"})
    if len(old_schedulers) == len(strategy.lr_scheduler_configs):
        for old, new in zip(old_schedulers, strategy.lr_scheduler_configs, strict=True):
            new.scheduler.load_state_dict(old.scheduler.state_dict())
