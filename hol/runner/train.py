"""``train(cfg)`` and ``evaluate(cfg)``: plain functions behind ``hol train`` / ``hol eval``.

``train`` validates the config, applies its refinement stages (``cfg.refine``: :mod:`hol.runner.stages`) and
saves the config so resolved as the run's (:func:`save_config`), builds data, network, module, loggers,
callbacks (:class:`hol.runner.stages.RefinementStages`) and the Lightning ``Trainer`` from it, fits
(:func:`fit`), tests the best checkpoint and writes ``metrics.json`` into the run folder as its very last
step (``run/status``: ``finished``), so a run folder with ``metrics.json`` is a finished run. A run whose
loss becomes NaN or infinite stops there, is recorded as ``diverged`` (:mod:`hol.runner.divergence`) and ends
with :class:`~hol.runner.divergence.RunDiverged`; a run that fails otherwise gets a ``FAILED`` file holding
the error instead (:func:`run_task`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import hydra
import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf, open_dict
from threadpoolctl import threadpool_limits
from torch import Tensor

from ..checks import check_int, check_number
from ..layers import kind_info
from ..networks import MLP, build
from .candidates import parse_candidates, train_candidates
from .config import override_key, plain_dict
from .divergence import DivergenceMonitor, RunDiverged
from .lightning_module import HolModule, net_hparams, read_checkpoint
from .records import (
    CONFIG_FILE,
    DIVERGED,
    FAILED_FILE,
    FINISHED,
    METRICS_FILE,
    flatten,
    write_json,
    write_text,
)
from .stages import RefinementStages
from .stages import configure as configure_stages
from .tasks import choose_task
from .widths import REPLACED, resolve_widths


def validate(cfg: DictConfig) -> None:
    """Check the values that would otherwise fail late or obscurely; ``ValueError`` naming key and range."""
    for key, check in (("optimizer.lr", lambda k, v: check_number(k, v, 0)),
                       ("trainer.max_epochs", lambda k, v: check_int(k, v, 0)),
                       ("trainer.min_epochs", lambda k, v: check_int(k, v, 0)),
                       ("data.batch_size", lambda k, v: check_int(k, v, 1)),
                       ("seed", check_int)):
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            check(key, value)
    check_accelerator(cfg)
    check_pde_data(cfg)


PDE_DATA = "hol.runner.pde_data.PDEDataModule"


def check_pde_data(cfg: DictConfig) -> None:
    """An equation (``pde=NAME``) is trained on its collocation points (``data=pde``): ``ValueError`` naming
    both when the data is another."""
    target = OmegaConf.select(cfg, "data._target_", default=None)
    if cfg.get("pde") is not None and target != PDE_DATA:
        raise ValueError(f"pde={cfg.pde.get('_target_', '?').rsplit('.', 1)[-1].lower()} is trained on its "
                         f"collocation points: add data=pde (the data is {target})")


def check_accelerator(cfg: DictConfig) -> None:
    """A GPU accelerator (``trainer=gpu``) needs a GPU torch can see; ``ValueError`` naming ``trainer=cpu``
    otherwise (Lightning's own message does not say what to do)."""
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default=None)
    if accelerator in ("gpu", "cuda") and not _gpu_visible(accelerator):
        raise ValueError(f"trainer.accelerator={accelerator!r} needs a GPU, and torch sees none here "
                         "(torch.cuda.is_available() is False); run on the CPU with trainer=cpu")


def _gpu_visible(accelerator: str) -> bool:
    """Whether Lightning's ``accelerator`` finds a device: a CUDA GPU, or for ``gpu`` also Apple's MPS."""
    return torch.cuda.is_available() or (accelerator == "gpu" and torch.backends.mps.is_available())


DOUBLE_PRECISIONS = ("64-true", "64", 64)
"""The ``trainer.precision`` values that train in float64 (Lightning's names)."""


def data_overrides(cfg: DictConfig, data_cfg: DictConfig) -> dict:
    """Arguments the data config leaves to the run: ``dtype: null`` becomes ``float64`` when the trainer
    trains in float64 (``trainer.precision=64-true``), else ``float32``."""
    if "dtype" not in data_cfg or data_cfg.dtype is not None:
        return {}
    precision = OmegaConf.select(cfg, "trainer.precision", default=None)
    return {"dtype": "float64" if precision in DOUBLE_PRECISIONS else "float32"}


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """Instantiate ``cfg.data`` (:func:`data_overrides`) and read (or download) its files now, so data
    problems stop the run early."""
    datamodule = hydra.utils.instantiate(cfg.data, **data_overrides(cfg, cfg.data))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def build_net(model_cfg: DictConfig, datamodule) -> torch.nn.Module:
    """Instantiate the network; sizes left ``null`` in the config (``in_features``, ``in_channels``,
    ``image_size``, ``out_features``) come from the data, and so do ``input_domains`` where the data has
    intervals (a formula's variables) and an MLP's ``hidden_width``: ``2 d + 1`` for ``d`` inputs, the
    inner width of the Kolmogorov-Arnold representation (Kolmogorov 1957), so that the network grows with
    the number of variables. An MLP's ``widths`` may be written in ``d`` too (:mod:`hol.runner.widths`)."""
    sizes = {"in_features": datamodule.in_features, "in_channels": datamodule.input_shape[0],
             "image_size": list(datamodule.input_shape[1:]), "out_features": datamodule.out_features,
             "input_domains": getattr(datamodule, "input_domains", None),
             "hidden_width": 2 * datamodule.in_features + 1}
    filled = {key: value for key, value in sizes.items() if key in model_cfg and model_cfg[key] is None}
    if model_cfg.get("widths") is not None:
        filled["widths"] = resolve_widths(model_cfg.widths, datamodule.in_features)
    return hydra.utils.instantiate(model_cfg, **filled)


def checkpoint_net_hparams(path: str | None) -> dict | None:
    """The network hyperparameters stored in a runner checkpoint (they may differ from the config after a
    refinement), or ``None``."""
    if not path:
        return None
    if not Path(path).is_file():
        raise ValueError(f"ckpt_path {path!r} is not a file")
    return read_checkpoint(path).get("net_hparams")


def build_module(cfg: DictConfig, datamodule) -> HolModule:
    """The LightningModule: network (from the checkpoint's hparams when resuming, which must describe the
    configured network, :func:`check_resumed_network`), its task (:func:`hol.runner.tasks.choose_task`, with
    ``cfg.beta`` and ``cfg.kl_warmup_epochs``), optimizer, scheduler."""
    configured = build_net(cfg.model, datamodule)
    hparams = checkpoint_net_hparams(cfg.get("ckpt_path"))
    if hparams is not None:
        check_resumed_network(configured, hparams, refinable=bool(cfg.get("refine")))
    net = build(hparams) if hparams is not None else configured
    task, task_options = choose_task(net, datamodule, beta=cfg.get("beta", 1.0),
                                     kl_warmup_epochs=cfg.get("kl_warmup_epochs", 0))
    scheduler = cfg.get("scheduler")
    return HolModule(
        net, task=task, task_options=task_options,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(scheduler) if scheduler else None,
        flatten_input=isinstance(net, MLP) and len(datamodule.input_shape) > 1,
        data_config=plain_dict(cfg.data),
        seed=cfg.get("seed"),
    )


ORDER_KEYS = {f"{layer}.{option}" for layer in ("layer", "input_layer", "output_layer")
              for option in ("n", "segments")}
"""The keys of a network's ``hparams()`` (flattened) that refinement changes."""


def check_resumed_network(configured: torch.nn.Module, checkpoint_hparams: dict, refinable: bool) -> None:
    """A resumed run continues the checkpoint's network, so the configuration must describe that network:
    else the overrides that differ would silently have no effect. ``refinable`` (refinement stages): the order
    (``layer.n``, ``layer.segments``, and those of an MLP's ``input_layer``/``output_layer`` mapping) may
    differ, the stages changed it. Raises ``ValueError`` naming the keys."""
    hparams = net_hparams(configured)
    if hparams is None:
        return
    differences = []
    ours, theirs = flatten(hparams, "."), flatten(checkpoint_hparams, ".")
    for key in sorted(set(ours) | set(theirs)):
        if refinable and key in ORDER_KEYS:
            continue
        if ours.get(key) != theirs.get(key):
            name = key if key.startswith("layer.") else f"model.{key}"
            differences.append(f"{name} {ours.get(key)!r} (the checkpoint's: {theirs.get(key)!r})")
    if differences:
        raise ValueError("ckpt_path: the run resumes the checkpoint's network, but the configured one "
                         f"differs in {'; '.join(differences)}; drop or correct these settings")


def save_config(cfg: DictConfig) -> None:
    """Replace the config Hydra saved for this job (``.hydra/config.yaml``) by ``cfg`` as the run resolved it.

    Hydra saves the composed config before it calls the task, and the run then settles what that leaves open
    (refinement stages set ``trainer.max_epochs``, the first stage's ``layer`` and optimizer:
    :func:`hol.runner.stages.configure`; ``hol eval`` tests a float64 checkpoint in float64). The saved file
    must be the config that runs, so that ``hol train --config-path RUN/.hydra --config-name config`` repeats
    the run. Written as Hydra writes it (interpolations kept) and atomically; ``overrides.yaml`` keeps the
    command line as typed. Nothing to do outside a Hydra job, in one that saves no config
    (``hydra.output_subdir=null``, as in the processes Lightning's DDP starts), or where the Hydra config is
    not this run's job: one without a runtime folder (Hydra keeps its config after ``hol train --help`` in the
    same process), or a job whose folder is not ``paths.output_dir`` (a run composed inside another Hydra
    app's job, whose saved config it would overwrite)."""
    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    job_folder = OmegaConf.select(cast(DictConfig, hydra_cfg), "runtime.output_dir", default=None,
                                  throw_on_missing=False)
    if hydra_cfg.output_subdir is None or job_folder is None:
        return
    if Path(job_folder).resolve() == Path(cfg.paths.output_dir).resolve():
        write_text(Path(job_folder) / hydra_cfg.output_subdir / CONFIG_FILE, OmegaConf.to_yaml(cfg))


def command_line_overrides() -> list[str]:
    """The overrides of this run's command line (``[]`` when the config was composed otherwise)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def check_layer_overrides(net: torch.nn.Module, overrides: list[str]) -> None:
    """A ``layer.<option>=...`` override that no layer of ``net`` takes would have no effect: ``ValueError``
    naming it and the layer kinds (an option reaches only the kinds that take it, e.g. ``segments`` the
    piecewise ones)."""
    named = (getattr(module, "kind", None) for module in net.modules())
    kinds = sorted({kind for kind in named if isinstance(kind, str)})
    taken = set().union(*(kind_info(kind).options for kind in kinds)) | {"kind"}
    for override in overrides:
        key = override_key(override)
        if key.startswith("layer.") and key.removeprefix("layer.") not in taken:
            raise ValueError(f"{override} has no effect: no layer of this network takes "
                             f"{key.removeprefix('layer.')} (layer kinds: {', '.join(kinds)})")


def check_model_overrides(cfg: DictConfig, overrides: list[str]) -> None:
    """``model.hidden_width`` or ``model.hidden_layers`` on the command line has no effect where
    ``model.widths`` sets every hidden width: ``ValueError`` naming both."""
    widths = OmegaConf.select(cfg, "model.widths", default=None)
    replaced = sorted({override_key(override) for override in overrides} & set(REPLACED))
    if widths is not None and replaced:
        raise ValueError(f"{replaced[0]} has no effect: model.widths={list(widths)} sets every hidden width; "
                         "drop one")


def _instantiate_dict(group: DictConfig | None) -> list:
    """Instantiate every ``_target_`` entry of a group config such as ``callbacks`` or ``logger``."""
    if not group:
        return []
    return [hydra.utils.instantiate(entry) for entry in group.values()
            if isinstance(entry, DictConfig) and "_target_" in entry]


def build_trainer(cfg: DictConfig, callbacks: list[pl.Callback] | None = None,
                  inference_mode: bool = True) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured callbacks and loggers, plus ``callbacks``;
    ``inference_mode=False`` for tasks that differentiate in validation and test (a PDE's residual), which
    then run under ``torch.no_grad`` instead (the task enables gradients where it needs them)."""
    callbacks = _instantiate_dict(cfg.get("callbacks")) + list(callbacks or [])
    extra = {} if inference_mode else {"inference_mode": False}
    return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks,
                                   logger=_instantiate_dict(cfg.get("logger")) or False, **extra)


def fit(cfg: DictConfig, trainer: pl.Trainer, module: HolModule, datamodule) -> None:
    """Fit the module (resuming from ``cfg.ckpt_path`` when set)."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))


def _floats(metrics: dict) -> dict[str, float]:
    return {key: float(value) for key, value in sorted(metrics.items())}


def log_hyperparameters(cfg: DictConfig, loggers: list[Logger], metrics: dict[str, float]) -> None:
    """The resolved config (flattened) and the final metrics to every logger (TensorBoard's HPARAMS tab)."""
    params = {key: str(value) if isinstance(value, list | tuple) else value
              for key, value in flatten(OmegaConf.to_container(cfg, resolve=True), ".").items()
              if not key.startswith(("hydra.", "paths.", "callbacks.", "logger."))}
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics={f"hp/{key.replace('/', '_')}": value
                                                    for key, value in metrics.items()
                                                    if math.isfinite(value)})
        else:
            logger.log_hyperparams(params)
        logger.save()


def output_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train and test as ``cfg`` says; return the final metrics (also written to ``metrics.json``). With
    ``cfg.candidates``, train each candidate in turn and keep the one the validation set prefers
    (:mod:`hol.runner.candidates`)."""
    overrides = command_line_overrides()
    candidates = parse_candidates(cfg.get("candidates"), cfg, overrides)
    if candidates:
        return train_candidates(cfg, candidates, train)
    validate(cfg)
    check_model_overrides(cfg, overrides)
    stages = configure_stages(cfg)  # refinement stages (cfg.refine): sets the model's first order, max_epochs
    save_config(cfg)
    refinement = RefinementStages(stages) if stages else None
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)
    check_layer_overrides(module.net, overrides)
    monitor = DivergenceMonitor()
    trainer = build_trainer(cfg, [monitor, *([refinement] if refinement else [])],
                            inference_mode=not module.task.differentiates_inputs)

    if cfg.get("train", True):
        fit(cfg, trainer, module, datamodule)
    metrics: dict[str, Tensor | float] = {key: value for key, value in trainer.callback_metrics.items()
                                          if key.endswith("_best")}
    if refinement:
        metrics.update(refinement.metrics())
    if monitor.divergence is not None:
        divergence = monitor.divergence
        record(cfg, trainer, _floats(metrics), DIVERGED, {"run/diverged_epoch": divergence.epoch,
                                                          "run/diverged_metric": divergence.metric})
        raise RunDiverged(divergence, OmegaConf.select(cfg, "optimizer.lr", default=None),
                          OmegaConf.select(cfg, "trainer.precision", default=None),
                          line_search=bool(OmegaConf.select(cfg, "optimizer.line_search_fn", default=None)))
    if cfg.get("test", True):
        # the first ModelCheckpoint's best (other checkpoint callbacks, e.g. OnExceptionCheckpoint, keep none)
        best = next((callback.best_model_path for callback in trainer.checkpoint_callbacks
                     if isinstance(callback, ModelCheckpoint)), "")
        ckpt_path = best or (None if cfg.get("train", True) else cfg.get("ckpt_path"))
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics.update({key: value for key, value in trainer.callback_metrics.items()
                        if key.startswith("test/")})
        if trainer.is_global_zero:
            module.task.write_outputs(module, datamodule, output_dir(cfg))
    final = _floats(metrics)
    record(cfg, trainer, final, FINISHED)
    return final


def record(cfg: DictConfig, trainer: pl.Trainer, metrics: dict[str, float], status: str,
           details: dict | None = None) -> None:
    """The run's last step: the hyperparameters and final metrics to the loggers, and ``metrics.json`` (strict
    JSON: ``run/status``, the ``details`` and the metrics, non-finite ones as ``null``)."""
    log_hyperparameters(cfg, trainer.loggers, metrics)
    if trainer.is_global_zero:
        write_json(output_dir(cfg) / METRICS_FILE, {"run/status": status, **(details or {}), **metrics})


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint ``cfg.ckpt_path`` on its data (or ``cfg.data`` when given), a float64 checkpoint in
    float64 (``trainer.precision=64-true``, whatever the config says: its accuracy may be below float32's, and
    the saved config says so, :func:`save_config`); write ``metrics.json``."""
    path = cfg.get("ckpt_path")
    if not path or not Path(path).is_file():
        raise ValueError(f"ckpt_path must name a checkpoint file, got {path!r}")
    check_accelerator(cfg)
    module = HolModule.from_checkpoint(path)
    if next(module.net.parameters()).dtype == torch.float64:
        with open_dict(cfg):
            cfg.trainer.precision = "64-true"
    save_config(cfg)
    data_cfg = cfg.get("data") or OmegaConf.create(module.hparams["data_config"])
    if not data_cfg:
        raise ValueError(f"{path} stores no data config; choose the data with data=NAME")
    datamodule = hydra.utils.instantiate(data_cfg, **data_overrides(cfg, data_cfg))
    datamodule.prepare_data()
    trainer = build_trainer(cfg, inference_mode=not module.task.differentiates_inputs)
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = _floats({key: value for key, value in trainer.callback_metrics.items()
                       if key.startswith("test/")})
    if trainer.is_global_zero:
        module.task.write_outputs(module, datamodule, output_dir(cfg))
        write_json(output_dir(cfg) / METRICS_FILE, {"run/status": FINISHED, **metrics})
    return metrics


def run_task(cfg: DictConfig, task=train) -> dict[str, float]:
    """Run ``task(cfg)``; if it fails, leave ``FAILED`` (with the error) in the run folder and re-raise (a
    diverged run is recorded in its ``metrics.json`` instead).

    numpy's BLAS (OpenBLAS, from scipy and numpy) runs on one thread meanwhile: the run's numerical work is
    torch's, and a second pool of BLAS threads beside torch's OpenMP threads slowed training on two cores
    4-10x (the Burgers preset, 100 L-BFGS iterations with two threads: 118-302 s, against 22 s with BLAS
    limited; measured on a 2-core Intel Xeon)."""
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return task(cfg)
    except RunDiverged:
        raise
    except BaseException as error:
        folder = output_dir(cfg)
        if folder.is_dir():
            message = " ".join(str(error).split()) or type(error).__name__
            (folder / FAILED_FILE).write_text(f"{type(error).__name__}: {message}\n")
        raise
