"""``train(cfg)`` and ``evaluate(cfg)``: plain functions behind ``hol train`` / ``hol eval``.

``train`` validates the config, builds data, network, module, loggers, callbacks (refinement stages,
``cfg.refine``: :class:`hol.stages.RefinementStages`) and the Lightning ``Trainer`` from it, fits
(:func:`fit`), tests the best checkpoint and writes ``metrics.json`` into the run folder as its very last
step, so a run folder with ``metrics.json`` is a finished run. A run that fails gets a ``FAILED`` file
holding the error instead (:func:`run_task`).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from .lightning_module import HolModule
from ..networks import MLP, build
from .stages import RefinementStages
from .stages import configure as configure_stages

METRICS_FILE = "metrics.json"
FAILED_FILE = "FAILED"


def _number(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, default=None)


def validate(cfg: DictConfig) -> None:
    """Check the values that would otherwise fail late or obscurely; ``ValueError`` naming key and range."""
    lr = _number(cfg, "optimizer.lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr >= 0):
        raise ValueError(f"optimizer.lr must be a number >= 0, got {lr!r}")
    for key in ("trainer.max_epochs", "trainer.min_epochs"):
        value = _number(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{key} must be an integer >= 0, got {value!r}")
    batch_size = _number(cfg, "data.batch_size")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"data.batch_size must be an integer >= 1, got {batch_size!r}")
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or null, got {seed!r}")


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """Instantiate ``cfg.data`` and read (or download) its files now, so data problems stop the run early."""
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_net(model_cfg: DictConfig, datamodule) -> torch.nn.Module:
    """Instantiate the network; sizes left ``null`` in the config (``in_features``, ``in_channels``,
    ``out_features``) come from the data."""
    sizes = {"in_features": datamodule.in_features, "in_channels": datamodule.input_shape[0],
             "out_features": datamodule.out_features}
    filled = {key: value for key, value in sizes.items() if key in model_cfg and model_cfg[key] is None}
    return hydra.utils.instantiate(model_cfg, **filled)


def checkpoint_net_hparams(path: str | None) -> dict | None:
    """The network hyperparameters stored in a runner checkpoint (they may differ from the config after a
    refinement), or ``None``."""
    if not path:
        return None
    if not Path(path).is_file():
        raise ValueError(f"ckpt_path {path!r} is not a file")
    return torch.load(path, map_location="cpu", weights_only=False).get("net_hparams")


def build_module(cfg: DictConfig, datamodule) -> HolModule:
    """The LightningModule: network (from the checkpoint's hparams when resuming), optimizer, scheduler."""
    hparams = checkpoint_net_hparams(cfg.get("ckpt_path"))
    net = build(hparams) if hparams is not None else build_net(cfg.model, datamodule)
    scheduler = cfg.get("scheduler")
    return HolModule(
        net, task=datamodule.task, num_classes=datamodule.num_classes,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(scheduler) if scheduler else None,
        flatten_input=isinstance(net, MLP) and len(datamodule.input_shape) > 1,
        data_config=OmegaConf.to_container(cfg.data, resolve=True),
        seed=cfg.get("seed"),
    )


def _instantiate_dict(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a group config such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [hydra.utils.instantiate(entry) for entry in group.values()
            if isinstance(entry, DictConfig) and "_target_" in entry]


def build_trainer(cfg: DictConfig, callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured callbacks and loggers, plus ``callbacks``."""
    callbacks = _instantiate_dict(cfg.get("callbacks")) + list(callbacks or [])
    return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks,
                                   logger=_instantiate_dict(cfg.get("logger")) or False)


def fit(cfg: DictConfig, trainer: pl.Trainer, module: HolModule, datamodule) -> None:
    """Fit the module (resuming from ``cfg.ckpt_path`` when set)."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))


def _floats(metrics: dict) -> dict[str, float]:
    return {key: float(value) for key, value in sorted(metrics.items())}


def log_hyperparameters(cfg: DictConfig, loggers: list[Logger], metrics: dict[str, float]) -> None:
    """The resolved config (flattened) and the final metrics to every logger (TensorBoard's HPARAMS tab)."""
    params = {key: value for key, value in _flatten(OmegaConf.to_container(cfg, resolve=True)).items()
              if not key.startswith(("hydra.", "paths.", "callbacks.", "logger."))}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics={f"hp/{key.replace('/', '_')}": value
                                                    for key, value in metrics.items() if math.isfinite(value)})
        else:
            logger.log_hyperparams(params)
        logger.save()


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    if isinstance(tree, (list, tuple)):
        return {prefix[:-1]: str(tree)}
    return {prefix[:-1]: tree}


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train and test as ``cfg`` says; return the final metrics (also written to ``metrics.json``)."""
    validate(cfg)
    stages = configure_stages(cfg)  # refinement stages (cfg.refine): sets the model's first order, max_epochs
    refinement = RefinementStages(stages) if stages else None
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    trainer = build_trainer(cfg, [refinement] if refinement else [])

    if cfg.get("train", True):
        fit(cfg, trainer, module, datamodule)
    metrics = {key: value for key, value in trainer.callback_metrics.items() if key.endswith("_best")}
    if refinement:
        metrics.update(refinement.metrics())
    if cfg.get("test", True):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        ckpt_path = best or (None if cfg.get("train", True) else cfg.get("ckpt_path"))
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics.update({key: value for key, value in trainer.callback_metrics.items() if key.startswith("test/")})
    metrics = _floats(metrics)
    log_hyperparameters(cfg, trainer.loggers, metrics)
    if trainer.is_global_zero:
        (output_dir(cfg) / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint ``cfg.ckpt_path`` on its data (or ``cfg.data`` when given); write ``metrics.json``."""
    path = cfg.get("ckpt_path")
    if not path or not Path(path).is_file():
        raise ValueError(f"ckpt_path must name a checkpoint file, got {path!r}")
    module = HolModule.from_checkpoint(path)
    data_cfg = cfg.get("data") or OmegaConf.create(module.hparams.data_config)
    if not data_cfg:
        raise ValueError(f"{path} stores no data config; choose the data with data=NAME")
    datamodule = hydra.utils.instantiate(data_cfg)
    datamodule.prepare_data()
    trainer = build_trainer(cfg)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = _floats({key: value for key, value in trainer.callback_metrics.items() if key.startswith("test/")})
    if trainer.is_global_zero:
        (output_dir(cfg) / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def run_task(cfg: DictConfig, task=train) -> dict[str, float]:
    """Run ``task(cfg)``; if it fails, leave ``FAILED`` (with the error) in the run folder and re-raise."""
    try:
        return task(cfg)
    except BaseException as error:
        folder = output_dir(cfg)
        if folder.is_dir():
            message = " ".join(str(error).split()) or type(error).__name__
            (folder / FAILED_FILE).write_text(f"{type(error).__name__}: {message}\n")
        raise
