"""Refinement stages: train at a low order, refine the network exactly with :func:`hol.refine`, continue.

The config key ``refine`` lists the stages, each ``{epochs: E, n: N, segments: S, adapt: A, optimizer: O}``
(all but ``epochs`` optional)::

    hol train experiment=xor 'refine=[{epochs: 5, n: 2}, {epochs: 5, n: 3}, {epochs: 10, n: 5, segments: 4}]'
    hol train experiment=function_2d      # a KAN-style ladder: coarse fit, adapt, refine, continue (L-BFGS)

* The run lasts the sum of the stages' epochs (``trainer.max_epochs`` is set to it).
* The first stage's ``n``/``segments`` are the order the network is *built* with (they replace
  ``layer.n``/``layer.segments``), so no approximation happens at epoch 0.
* At the first epoch of every later stage, :class:`RefinementStages` replaces the module's ``net`` by
  ``hol.refine(net, n, segments)``. A later stage that sets ``n``/``segments`` must raise the order or the
  segment count and keep the new space a superset of the old one (``n`` not below the previous stage's,
  ``segments`` a multiple of it), so every refinement is exact: the network computes the same function
  before and after. A later stage that adapts or changes the optimizer may keep the order.
* ``adapt: true``: before the stage trains (after its refinement), every layer's domains move to the ranges
  its inputs take on the training inputs (:func:`hol.adapt_domains`, all of the training set, in eval mode;
  in an MLP without normalization the hidden layers are rescaled instead). Refining first makes the
  projection onto the finer grid, the smaller change. The first stage may adapt too (the initial network,
  before any training).
* ``optimizer``: the stage's optimizer. A name of the ``optimizer`` config group (``optimizer: lbfgs``), or a
  mapping of options merged over the run's ``optimizer`` config (``optimizer: {lr: 0.1}``), or both
  (``optimizer: {name: lbfgs, lr: 0.5}``: the group's config with these options), or a whole optimizer config
  (a mapping with ``_target_``, taken as it is). A stage without it uses the run's ``optimizer``.
* The run's saved config (``.hydra/config.yaml``) and logged hyperparameters are the config as the stages set
  it (:func:`configure`): ``trainer.max_epochs`` their total, ``layer`` the first stage's, and with stage
  optimizers ``optimizer`` the first stage's and every stage's whole optimizer config in its entry. Running
  that config (``hol train --config-path RUN/.hydra --config-name config``) trains the same stages.
* Then the optimizer(s) and scheduler(s) are built anew for the new parameters (their per-parameter state,
  e.g. Adam's moments, starts empty). With the same optimizer config as the stage before, the learning-rate
  schedule carries on: every param group takes over the old group's hyperparameters (its current learning
  rate) and every scheduler the old scheduler's state, so e.g. a cosine schedule spans the whole run. With
  another optimizer config, the new optimizer starts from its configured hyperparameters and each scheduler
  carries on its count from them (its state less ``base_lrs``).
* The validation loss just before and just after each refinement (the whole validation set, model in eval
  mode; equal up to float error) and the refinement's largest change of a link function
  (``refine_max_change``) are logged to the run's loggers (``refine/stage``, ``refine/n``,
  ``refine/segments``, ``refine/val_loss_before``, ``refine/val_loss_after``, ``refine/max_change``, at the
  step of the boundary) and to the console. ``metrics.json`` gets ``refine/max_change`` and
  ``refine/val_loss_change`` (the largest ``|after - before|``), each the maximum over the refinements;
  with adapting stages also ``refine/adapt_max_change`` (logged per boundary too, the largest change of a
  link function by :func:`hol.adapt_domains`).
* Per stage ``k`` (counted from 0, as ``refine[k]``): at its end, the network as it is then is tested on the
  test set; logged and in ``metrics.json`` as ``stage<k>/test/loss``, ``stage<k>/test/<metric>`` (``rmse``
  or ``acc``) and ``stage<k>/parameters`` (the number of trainable parameters: for a hol network without
  bias, its coefficients), e.g. ``stage3/test/rmse``; the same metrics on the validation set as
  ``stage<k>/val/loss`` and ``stage<k>/val/<metric>``, to choose a stage or a run without the test set. They
  describe the ladder, where ``test/*`` is the best checkpoint's.
* Resume: checkpoints store the refined network's hyperparameters (its domains in its state) and the
  refinements and stage tests done so far (the callback's state), so a run resumed after a refinement reloads
  the refined shapes, with the optimizer of its stage, and does not refine again; one resumed from the last
  checkpoint before a boundary refines at the boundary, as the uninterrupted run did.
* DDP: every process refines its replica identically and the model is wrapped in DDP anew.
"""
from __future__ import annotations

import copy
import functools
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import hydra
import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from torch import nn

from ..adapt import adapt_domains
from ..checks import check_bool, check_choice, check_int
from ..refine import refine
from .config import config_folder, plain_dict
from .data import trainer_datamodule
from .lightning_module import HolModule, net_hparams
from .optimizers import BFGS, MAX_PARAMETERS

STAGE_KEYS = ("epochs", "n", "segments", "adapt", "optimizer")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """Train ``epochs`` epochs at order ``n`` with ``segments`` segments (``None``: as the stage before),
    adapting the domains first (``adapt``), with the optimizer config ``optimizer`` (``None``: the run's; as
    given in the stage, resolved by :func:`configure`)."""

    epochs: int
    n: int | None = None
    segments: int | None = None
    adapt: bool = False
    optimizer: Any = None


def optimizer_names() -> list[str]:
    """The configs of the ``optimizer`` group (``conf/optimizer/*.yaml``), sorted."""
    folder = config_folder() / "optimizer"
    return sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir()
                  if entry.name.endswith(".yaml"))


def _check_optimizer(name: str, value: Any) -> None:
    """A stage's ``optimizer``: a group name, or a mapping (with an optional group ``name``)."""
    if isinstance(value, str):
        check_choice(name, value, optimizer_names())
    elif isinstance(value, Mapping):
        if "name" in value:
            check_choice(f"{name}.name", value["name"], optimizer_names())
    else:
        raise ValueError(f"{name} must be an optimizer config name ({', '.join(optimizer_names())}) or a "
                         f"mapping of optimizer options like {{lr: 0.1}}, got {value!r}")


def resolve_optimizer(value: Any, run_optimizer: Mapping | None) -> dict:
    """The optimizer config of a stage (:class:`Stage`): the group config named by ``value`` (a string, or
    ``value["name"]``) or else ``run_optimizer``, with the other options of a mapping ``value`` merged over
    it. A mapping with ``_target_`` but no ``name`` is a whole optimizer config, taken as it is: so
    :func:`configure` writes every stage's into the config it resolves, and that config resolves to the same
    optimizers again (merged over its ``optimizer``, by then the first stage's, a stage's config could gain
    the options of another optimizer class)."""
    options = dict(value) if isinstance(value, Mapping) else {"name": value}
    name = options.pop("name", None)
    if name is not None:
        base = OmegaConf.load(config_folder() / "optimizer" / f"{name}.yaml")
    else:
        base = OmegaConf.create({} if "_target_" in options else dict(run_optimizer or {}))
    merged = OmegaConf.merge(base, options)
    return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]  # a mapping

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
        if "adapt" in entry:
            check_bool(f"{name}.adapt", entry["adapt"])
        if entry.get("optimizer") is not None:
            _check_optimizer(f"{name}.optimizer", entry["optimizer"])
        stage = Stage(entry["epochs"], entry.get("n"), entry.get("segments"), bool(entry.get("adapt", False)),
                      entry.get("optimizer"))
        if index > 0:
            _check_refinement(name, stage, n, segments)
        n = stage.n if stage.n is not None else n
        segments = stage.segments if stage.segments is not None else segments
        stages.append(stage)
    return stages


def _check_refinement(name: str, stage: Stage, n: int | None, segments: int | None) -> None:
    """A later stage must change the order exactly (``n`` up, ``segments`` to a multiple), or adapt, or have
    its own optimizer."""
    if stage.n is None and stage.segments is None:
        if stage.adapt or stage.optimizer is not None:
            return
        raise ValueError(f"{name} must set n and/or segments, or adapt or optimizer (a stage after the first "
                         "refines the network or changes how it trains)")
    if stage.n is not None and n is not None and stage.n < n:
        raise ValueError(f"{name}.n must be >= the previous stage's n {n} (refinement raises the order), "
                         f"got {stage.n}")
    if stage.segments is not None and segments is not None and stage.segments % segments:
        raise ValueError(f"{name}.segments must be a multiple of the previous stage's segments {segments}, "
                         f"got {stage.segments}")
    same_order = stage.n in (None, n) and stage.segments in (None, segments)
    if same_order and not stage.adapt and stage.optimizer is None:
        raise ValueError(f"{name} changes neither n nor segments (both as the previous stage: n={n}, "
                         f"segments={segments})")


def configure(cfg: DictConfig) -> list[Stage]:
    """Parse ``cfg.refine``; with stages, set ``trainer.max_epochs`` to their total and ``layer.n``/
    ``layer.segments`` to the first stage's. When a stage has its own optimizer, every stage gets its
    resolved optimizer config (:func:`resolve_optimizer`; the run's for the others), written into its entry
    of ``cfg.refine``, and ``cfg.optimizer`` becomes the first stage's. Returns the stages (``[]``: ordinary
    training).

    ``cfg`` is then the config the run uses, saved as the run's config (:func:`hol.runner.train.save_config`)
    and configured again when that is run: configuring a configured config changes nothing."""
    layer = cfg.get("layer") or {}
    stages = parse_stages(cfg.get("refine"), layer.get("n"), layer.get("segments"))
    if not stages:
        return stages
    if any(stage.optimizer is not None for stage in stages):
        run_optimizer = plain_dict(cfg.optimizer) if cfg.get("optimizer") else None
        stages = [Stage(stage.epochs, stage.n, stage.segments, stage.adapt,
                        resolve_optimizer(stage.optimizer, run_optimizer) if stage.optimizer is not None
                        else run_optimizer) for stage in stages]
    with open_dict(cfg):
        if stages[0].optimizer is not None:
            cfg.optimizer = OmegaConf.create(stages[0].optimizer)
            entries = cast(list, OmegaConf.to_container(cfg.refine, resolve=True))  # parse_stages checked it
            cfg.refine = [{**entry, "optimizer": stage.optimizer}
                          for entry, stage in zip(entries, stages, strict=True)]
        cfg.trainer.max_epochs = sum(stage.epochs for stage in stages)
        for key in ("n", "segments"):
            value = getattr(stages[0], key)
            if value is not None:
                if key not in layer:
                    raise ValueError(f"refine[0].{key} needs a layer config with {key}")
                cfg.layer[key] = value
    return stages


def _batches(trainer: pl.Trainer, module: HolModule, dataloader) -> Iterator[Any]:
    """Every batch of ``dataloader`` as the module sees it in a step: on its device, converted by the
    precision plugin (e.g. to float64 under ``64-true``)."""
    for batch in dataloader:
        yield trainer.precision_plugin.convert_input(move_data_to_device(batch, module.device))


@torch.no_grad()
def validation_loss(trainer: pl.Trainer, module: HolModule, dataloader) -> float:
    """The module's loss (its task's :meth:`~hol.runner.tasks.Task.step`) over all of ``dataloader`` in eval
    mode, batches weighted by their size (``nan`` without a dataloader); torch's random state is left as it
    was."""
    if dataloader is None:
        return math.nan
    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    with torch.random.fork_rng(devices=[]), trainer.precision_plugin.val_step_context():
        for batch in _batches(trainer, module, dataloader):
            size = module.task.size(batch)
            total += float(module.task.step(module, batch)) * size
            count += size
    module.train(was_training)
    return total / count if count else math.nan


@torch.no_grad()
def evaluate(trainer: pl.Trainer, module: HolModule, dataloader) -> dict[str, float]:
    """The module's task's test metrics (:meth:`hol.runner.tasks.Task.compute`: ``loss`` and e.g. ``rmse``
    or ``acc``, as ``test/*`` would log them) over all of ``dataloader`` in eval mode, computed on a copy of
    the task (the module's own metrics are left alone); ``{}`` without a dataloader. torch's random state
    is left as it was."""
    if dataloader is None:
        return {}
    task = copy.deepcopy(module.task)
    for name in task.stage_metrics("test"):
        task.metric("test", name).reset()
    was_training = module.training
    module.eval()
    with torch.random.fork_rng(devices=[]), trainer.precision_plugin.val_step_context():
        for batch in _batches(trainer, module, dataloader):
            task.step(module, batch, "test")
    module.train(was_training)
    return {name: float(value) for name, value in task.compute("test", module.net).items()
            if value.numel() == 1}


def _net_order(net: nn.Module) -> dict[str, int]:
    """``n`` and ``segments`` of the network's layers (its ``hparams()["layer"]``), where it has them."""
    hparams = net_hparams(net) or {}
    layer = hparams["layer"] if isinstance(hparams.get("layer"), dict) else hparams
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
        self.tests: dict[int, dict[str, float]] = {}  # stage index -> its network's test metrics at its end

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        strategy = trainer.strategy
        supported = isinstance(strategy, SingleDeviceStrategy) or type(strategy) is DDPStrategy
        if stage == "fit" and not supported:
            raise ValueError(f"refinement stages support single-device and DDP training, not the "
                             f"{type(strategy).__name__} strategy")
        if stage == "fit":
            self._check_sizes(cast(HolModule, pl_module))  # the runner's module

    def _check_sizes(self, pl_module: HolModule) -> None:
        """Refuse, before the first epoch, a stage whose refined network has more parameters than its
        optimizer takes (``optimizer=bfgs``: ``max_parameters``), rather than when that stage starts."""
        factories = [pl_module.optimizer_factory if stage.optimizer is None
                     else hydra.utils.instantiate(stage.optimizer) for stage in self.stages]
        limits = [factory.keywords.get("max_parameters", MAX_PARAMETERS)
                  if isinstance(factory, functools.partial) and factory.func is BFGS else None
                  for factory in factories]
        if all(limit is None for limit in limits):
            return
        net = pl_module.net
        for index, (stage, limit) in enumerate(zip(self.stages, limits, strict=True)):
            if index > 0 and (stage.n is not None or stage.segments is not None):
                net = refine(net, n=stage.n, segments=stage.segments)
            if limit is not None:
                try:
                    BFGS.check_size(sum(p.numel() for p in net.parameters() if p.requires_grad), limit)
                except ValueError as error:
                    raise ValueError(f"refine[{index}]: {error}") from None

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict) -> None:
        # the optimizer state in the checkpoint is that of its epoch's stage: build that stage's optimizer
        epoch = checkpoint.get("epoch", 0)
        index = max(i for i, start in enumerate(self.starts) if start <= epoch)
        if self.stages[index].optimizer is not None:
            pl_module.optimizer_factory = hydra.utils.instantiate(self.stages[index].optimizer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch not in self.starts:
            return
        module = cast(HolModule, pl_module)  # the runner's module, which this callback refines
        index = self.starts.index(trainer.current_epoch)
        if index > 0 and index - 1 not in self.tests:
            self.test(trainer, module, index - 1)
        first_adapts = index == 0 and self.stages[0].adapt
        if (index > 0 or first_adapts) and index not in self.records:  # not yet done (a resumed run has it)
            self.records[index] = self.refine(trainer, module, self.stages[index], index)
            record = self.records[index]
            adapted = (f", domains adapted (max change {record['adapt_max_change']:.3g})"
                       if "adapt_max_change" in record else "")
            if trainer.is_global_zero:
                log.info(
                    f"refinement stage {index + 1}/{len(self.stages)} at epoch {trainer.current_epoch}: "
                    f"{_describe(self.stages[index])}; val loss {record['val_loss_before']:.8g} -> "
                    f"{record['val_loss_after']:.8g}, max change of a link {record['max_change']:.3g}"
                    f"{adapted}")
        metrics = {"refine/stage": float(index), **{f"refine/{key}": float(value)
                                                   for key, value in _net_order(module.net).items()}}
        if index in self.records:
            metrics.update({f"refine/{key}": value for key, value in self.records[index].items()})
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        last = len(self.stages) - 1
        if trainer.current_epoch >= self.starts[last] and last not in self.tests:
            self.test(trainer, cast(HolModule, pl_module), last)  # the runner's module

    def refine(self, trainer: pl.Trainer, pl_module: HolModule, stage: Stage,
               index: int) -> dict[str, float]:
        """Bring the module's network to ``stage`` (refine, adapt its domains), rebuild the optimizers; what
        was measured."""
        datamodule = trainer_datamodule(trainer)
        dataloader = datamodule.val_dataloader() if datamodule else trainer.val_dataloaders
        before = validation_loss(trainer, pl_module, dataloader)
        record = {"val_loss_before": before, "max_change": 0.0}
        if stage.n is not None or stage.segments is not None:
            pl_module.net = refine(pl_module.net, n=stage.n, segments=stage.segments)
            record["max_change"] = cast(float, pl_module.net.refine_max_change)  # set by hol.refine
        if stage.adapt:
            pl_module.net = adapt_domains(pl_module.net, self._training_inputs(trainer, pl_module))
            record["adapt_max_change"] = cast(float, pl_module.net.adapt_max_change)  # set by adapt_domains
        new_optimizer = index > 0 and stage.optimizer != self.stages[index - 1].optimizer
        if new_optimizer:
            pl_module.optimizer_factory = hydra.utils.instantiate(stage.optimizer)
        _rebuild_optimizers(trainer, carry_hyperparameters=not new_optimizer)
        record["val_loss_after"] = validation_loss(trainer, pl_module, dataloader)
        return record

    @staticmethod
    def _training_inputs(trainer: pl.Trainer, pl_module: HolModule) -> Iterator[torch.Tensor]:
        """The network inputs of the whole training set (the datamodule's loader, the same on every process),
        as the network sees them."""
        datamodule = trainer_datamodule(trainer)
        dataloader = datamodule.train_dataloader() if datamodule else trainer.train_dataloader
        flatten = bool(getattr(pl_module.hparams, "flatten_input", False))
        for batch in _batches(trainer, pl_module, dataloader):
            x = pl_module.task.network_inputs(batch)
            yield x.flatten(1) if flatten else x

    def test(self, trainer: pl.Trainer, pl_module: HolModule, index: int) -> None:
        """Test the network at the end of stage ``index`` (and measure it on the validation set); log and keep
        ``stage<index>/...`` (module docstring)."""
        datamodule = trainer_datamodule(trainer)
        if datamodule is None or (dataloader := datamodule.test_dataloader()) is None:
            return
        result = {f"test/{key}": value for key, value in evaluate(trainer, pl_module, dataloader).items()}
        result |= {f"val/{key}": value
                   for key, value in evaluate(trainer, pl_module, datamodule.val_dataloader()).items()}
        result["parameters"] = float(sum(p.numel() for p in pl_module.net.parameters() if p.requires_grad))
        self.tests[index] = result
        if trainer.is_global_zero:
            log.info(f"stage {index + 1}/{len(self.stages)} ends: "
                     + ", ".join(f"{key} {value:.6g}" for key, value in result.items()))
        for logger in trainer.loggers:
            logger.log_metrics({f"stage{index}/{key}": value for key, value in result.items()},
                               step=trainer.global_step)

    def metrics(self) -> dict[str, float]:
        """``refine/max_change`` and ``refine/val_loss_change`` over the refinements done (with adapting
        stages ``refine/adapt_max_change``), and every stage's test metrics (``{}``: none)."""
        metrics = {f"stage{index}/{key}": value for index, test in sorted(self.tests.items())
                   for key, value in test.items()}
        refinements = [record for index, record in self.records.items() if index > 0]
        if refinements:
            metrics["refine/max_change"] = max(record["max_change"] for record in refinements)
            metrics["refine/val_loss_change"] = max(abs(record["val_loss_after"] - record["val_loss_before"])
                                                    for record in refinements)
        adapted = [record["adapt_max_change"] for record in self.records.values()
                   if "adapt_max_change" in record]
        if adapted:
            metrics["refine/adapt_max_change"] = max(adapted)
        return metrics

    def state_dict(self) -> dict:
        return {"stages": [asdict(stage) for stage in self.stages], "records": dict(self.records),
                "tests": dict(self.tests)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.records = {int(index): dict(record) for index, record in state_dict.get("records", {}).items()}
        self.tests = {int(index): dict(test) for index, test in state_dict.get("tests", {}).items()}


def _describe(stage: Stage) -> str:
    parts = [f"{key}={value}" for key, value in (("n", stage.n), ("segments", stage.segments))
             if value is not None]
    return ", ".join(parts + (["adapt"] if stage.adapt else []))


def _rebuild_optimizers(trainer: pl.Trainer, carry_hyperparameters: bool = True) -> None:
    """New optimizers and schedulers from ``configure_optimizers`` for the module's new parameters, with the
    old param groups' hyperparameters (current learning rates; only with ``carry_hyperparameters``) and the
    old schedulers' states (without ``base_lrs`` unless ``carry_hyperparameters``); under DDP the module is
    wrapped anew, since DDP registers the parameters it synchronizes when it wraps."""
    strategy = trainer.strategy
    old_optimizers, old_schedulers = strategy.optimizers, strategy.lr_scheduler_configs
    if isinstance(strategy, DDPStrategy) and strategy.model is not strategy.lightning_module:
        strategy.model = strategy.lightning_module
        strategy.configure_ddp()
    strategy.setup_optimizers(trainer)
    if len(old_optimizers) != len(strategy.optimizers):
        return
    for old, new in zip(old_optimizers, strategy.optimizers, strict=True):
        if carry_hyperparameters and len(old.param_groups) == len(new.param_groups):
            for old_group, new_group in zip(old.param_groups, new.param_groups, strict=True):
                new_group.update({key: value for key, value in old_group.items() if key != "params"})
    if len(old_schedulers) == len(strategy.lr_scheduler_configs):
        for old_config, new_config in zip(old_schedulers, strategy.lr_scheduler_configs, strict=True):
            state = old_config.scheduler.state_dict()
            if not carry_hyperparameters:  # the new optimizer's learning rates are the schedule's base
                for key in ("base_lrs", "_last_lr"):
                    state.pop(key, None)
            new_config.scheduler.load_state_dict(state)
