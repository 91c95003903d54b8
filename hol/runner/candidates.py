"""Candidates: train several variants of one run in turn and keep the one the validation set prefers.

The config key ``candidates`` lists the variants, each a mapping of config keys (dotted) to the values that
variant sets over the run's config; ``{}`` is the run as configured::

    candidates:                     # e.g. two network shapes
      - {}                          # d -> 2d + 1 -> 1
      - {model.widths: [d, d, 1]}   # d -> d -> d -> 1 -> 1

* Each candidate ``i`` is a whole run of its own in the folder ``candidate<i>/`` of the run's folder (its
  ``metrics.json``, checkpoints, logs and ``.hydra/config.yaml``, :func:`save_config`), trained from the
  run's seed: it computes what the run alone, with the candidate's values on its command line, computes (bit
  for bit).
* The choice: the lowest validation loss (:func:`validation_score`). The test set plays no part in it.
* The run's ``metrics.json`` holds the chosen candidate's metrics as they are (``test/rmse``,
  ``stage<k>/test/rmse``, ...), ``candidate/chosen`` (its index), and for every candidate
  ``candidate<i>/val_score`` and ``candidate<i>/seconds`` (its wall time). The run's ``checkpoints`` is a
  link to the chosen candidate's (relative: it moves with the run's folder), so ``hol eval`` and ``hol
  symbolic`` read ``ckpt_path=RUN/checkpoints/last.ckpt`` as for any run. A candidate that diverges is not
  chosen; when every candidate diverges, the run is recorded as diverged and ends with the first one's error.
* The log names each candidate as it starts, each that diverges, and the one kept with every candidate's
  validation loss.
* ``candidates: null`` (or ``[]``) trains the configured run alone. Every candidate is checked before any
  trains (:func:`parse_candidates`, :func:`check_key`): a key that the command line sets and a candidate sets
  too, or overrides (``model.hidden_width`` where it sets ``model.widths``), would be replaced silently, so it
  is refused, as are keys the config does not have, config nodes, the run's own keys (:data:`RUN_KEYS`),
  repeated candidates and resuming a checkpoint (``ckpt_path`` continues one network).
"""
from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from .config import override_key
from .divergence import RunDiverged
from .records import (
    CONFIG_FILE,
    DIVERGED,
    FINISHED,
    METRICS_FILE,
    read_json,
    unwrap_error,
    write_json,
    write_text,
)
from .widths import REPLACED, parse_widths

log = logging.getLogger(__name__)

CHOSEN = "candidate/chosen"
CHECKPOINTS = "checkpoints"


RUN_KEYS = ("paths", "hydra", "candidates", "ckpt_path", "train", "test", "overwrite", "optimized_metric",
            "data")
"""Keys a candidate may not set: where and whether the run runs, and its data (the candidates are compared on
one validation set)."""


_ADVICE = ("candidates=null trains the configured run alone, 'candidates=[{},{model.widths:[8,4]}]' lists "
           "your own")


def describe(values: Mapping[str, Any]) -> str:
    """A candidate as one would write it: ``{model.widths: [d, d, 1]}``."""
    return "{" + ", ".join(f"{key}: {value}" for key, value in values.items()) + "}"


def parse_candidates(spec: Any, cfg: DictConfig, command_line: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The candidates of the config value ``spec`` (``None`` or empty: none), each a ``{dotted key: value}``
    mapping, all checked before any trains (:func:`check_key`; ``model.widths`` written in ``d``:
    :func:`hol.runner.widths.parse_widths`); ``ValueError`` naming the candidate: a repeated one, or
    ``ckpt_path`` set (it resumes one network)."""
    if isinstance(spec, DictConfig | ListConfig):
        spec = OmegaConf.to_container(spec, resolve=True)
    if spec is None:
        return []
    if not isinstance(spec, Sequence) or isinstance(spec, str):
        raise ValueError(f"candidates must list mappings of config keys to values, e.g. "
                         f"[{{}}, {{model.widths: [d, d, 1]}}], got {spec!r}")
    candidates: list[dict[str, Any]] = []
    typed = [override_key(override) for override in command_line]
    for index, candidate in enumerate(spec):
        if not isinstance(candidate, Mapping):
            raise ValueError(f"candidates[{index}] must map config keys to values, got {candidate!r}")
        values = {str(key): value for key, value in candidate.items()}
        for key in values:
            check_key(cfg, index, key, values, typed)
        if values.get("model.widths") is not None:
            parse_widths(values["model.widths"])
            replaced = sorted(set(REPLACED) & set(typed))
            if replaced:
                raise ValueError(f"{replaced[0]} has no effect in candidates[{index}] {describe(values)}, "
                                 f"whose model.widths sets every hidden width; {_ADVICE}")
        if values in candidates:
            raise ValueError(f"candidates[{index}] {describe(values)} repeats "
                             f"candidates[{candidates.index(values)}]")
        candidates.append(values)
    if candidates and cfg.get("ckpt_path"):
        raise ValueError(f"ckpt_path={cfg.ckpt_path} resumes one network; set candidates=null")
    return candidates


def check_key(cfg: DictConfig, index: int, key: str, values: Mapping[str, Any], typed: Sequence[str]) -> None:
    """``ValueError`` naming candidate ``index`` (``values``) and its ``key`` when ``key`` is one of
    :data:`RUN_KEYS`, is no key of ``cfg`` (naming the keys there are), is a config node (a candidate sets
    values; a group choice such as ``layer: discontinuous`` would replace the node), or is set on the command
    line too (``typed``: the candidate would replace it silently)."""
    where = f"candidates[{index}] {describe(values)}"
    if key.split(".", 1)[0] in RUN_KEYS:
        raise ValueError(f"{where}: {key} is the run's, not a candidate's (a candidate sets none of "
                         f"{', '.join(RUN_KEYS)}: the candidates run in the run's folder, on its data)")
    node = OmegaConf.select(cfg, key, default=KeyError)
    if node is KeyError:
        parent, _, _ = key.rpartition(".")
        keys = OmegaConf.select(cfg, parent) if parent else cfg
        allowed = (f"; {parent or 'the config'} has: {', '.join(map(str, keys))}"
                   if isinstance(keys, DictConfig) else "")
        raise ValueError(f"{where}: {key!r} is not a key of the config{allowed}")
    if isinstance(node, DictConfig):
        example = str(next(iter(node), "option"))
        raise ValueError(f"{where}: {key} is a config node; a candidate sets values with dotted keys, e.g. "
                         f"{{{key}.{example}: ...}} (a config group choice cannot be a candidate)")
    if key in typed:
        raise ValueError(f"{key} is set on the command line and by {where} of the config, which would "
                         f"replace it; {_ADVICE}")


def alone(cfg: DictConfig, values: Mapping[str, Any]) -> DictConfig:
    """``cfg`` with ``values`` set and no candidates: the config of one candidate trained alone."""
    sub = copy.deepcopy(cfg)
    with open_dict(sub):
        sub.candidates = None
        for key, value in values.items():
            OmegaConf.update(sub, key, value, merge=False)
    return sub


def candidate_config(cfg: DictConfig, index: int, values: Mapping[str, Any]) -> DictConfig:
    """The config of candidate ``index`` (:func:`alone`) with its own folder ``candidate<index>/`` inside the
    run's (``paths.output_dir``, which its checkpoints and logs follow)."""
    sub = alone(cfg, values)
    with open_dict(sub):
        sub.paths.output_dir = str(Path(cfg.paths.output_dir) / f"candidate{index}")
    return sub


def save_config(cfg: DictConfig, index: int, values: Mapping[str, Any]) -> None:
    """Write candidate ``index``'s config (:func:`alone`, its folder left to Hydra) where Hydra keeps the
    run's, into its folder: ``candidate<i>/.hydra/config.yaml``. ``hol train --config-path
    RUN/candidate<i>/.hydra --config-name config`` trains the candidate alone, e.g. to resume it
    (``ckpt_path=RUN/candidate<i>/checkpoints/last.ckpt``). Nothing outside a Hydra job that saves configs."""
    subdir = HydraConfig.get().output_subdir if HydraConfig.initialized() else None
    if subdir is None:
        return
    folder = Path(cfg.paths.output_dir) / f"candidate{index}" / subdir
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / CONFIG_FILE, OmegaConf.to_yaml(alone(cfg, values)))


def validation_score(metrics: Mapping[str, Any]) -> float | None:
    """The lowest validation loss among the networks a finished run reports: with refinement stages, each
    stage's end (``stage<k>/val/loss``), whose test metrics the ladder reports; else its best epoch's
    (``val/loss_best``). ``None`` for a run that diverged or measured none finite."""
    if metrics.get("run/status") != FINISHED:
        return None
    staged = [value for key, value in metrics.items()
              if key.startswith("stage") and key.endswith("/val/loss")]
    values = staged or [metrics.get("val/loss_best")]
    finite = [float(value) for value in values if value is not None and math.isfinite(value)]
    return min(finite) if finite else None


def train_candidates(cfg: DictConfig, candidates: Sequence[Mapping[str, Any]],
                     train_one: Callable[[DictConfig], dict[str, float]]) -> dict[str, float]:
    """Train every candidate with ``train_one`` (one run, e.g. :func:`hol.runner.train.train`), in turn, and
    log each one's start, divergence and the choice; write the run's ``metrics.json`` (the chosen
    candidate's metrics and ``candidate/*``) and return the chosen candidate's metrics with ``candidate/*``.
    A user error in a candidate (``ValueError``, e.g. a width it comes to) is raised again naming the
    candidate; ``ValueError`` when no candidate measured a validation loss; the first candidate's
    :class:`RunDiverged` when each diverged."""
    results: dict[int, dict[str, float]] = {}
    files: dict[int, dict[str, Any]] = {}
    summary: dict[str, float | None] = {}
    diverged: list[RunDiverged] = []
    for index, values in enumerate(candidates):
        sub = candidate_config(cfg, index, values)
        Path(sub.paths.output_dir).mkdir(parents=True, exist_ok=True)
        save_config(cfg, index, values)
        log.info("candidate %d of %d %s: training in %s", index, len(candidates), describe(values),
                 sub.paths.output_dir)
        start = time.perf_counter()
        try:
            results[index] = train_one(sub)
        except RunDiverged as error:
            log.warning("candidate %d %s diverged, not kept: %s", index, describe(values), error)
            diverged.append(error)
        except (ValueError, InstantiationException) as error:
            cause = unwrap_error(error)
            if not isinstance(cause, ValueError | TypeError):
                raise
            message = " ".join(str(cause).split())
            raise ValueError(f"candidates[{index}] {describe(values)}: {message}") from error
        summary[f"candidate{index}/seconds"] = time.perf_counter() - start
        files[index] = read_json(Path(sub.paths.output_dir) / METRICS_FILE)
        summary[f"candidate{index}/val_score"] = validation_score(files[index])
    scores = [(score, index) for index in results
              if (score := summary[f"candidate{index}/val_score"]) is not None]
    folder = Path(cfg.paths.output_dir)
    if not scores:
        if diverged:
            write_json(folder / METRICS_FILE, {"run/status": DIVERGED, **summary})
            log.warning("every candidate diverged")
            raise diverged[0]
        raise ValueError("candidates: no candidate measured a validation loss (val/loss_best); the choice "
                         "needs a validation set")
    chosen = min(scores)[1]
    compared = ", ".join(f"candidate {index}: "
                         f"{_outcome(index in results, summary[f'candidate{index}/val_score'])}"
                         for index in range(len(candidates)))
    log.info("kept candidate %d %s, the lowest validation loss (%s)", chosen, describe(candidates[chosen]),
             compared)
    if (folder / f"candidate{chosen}" / CHECKPOINTS).is_dir():
        (folder / CHECKPOINTS).symlink_to(Path(f"candidate{chosen}") / CHECKPOINTS, target_is_directory=True)
    write_json(folder / METRICS_FILE, {**files[chosen], CHOSEN: chosen, **summary})
    return {**results[chosen], CHOSEN: float(chosen),
            **{key: value for key, value in summary.items() if value is not None}}


def _outcome(finished: bool, score: float | None) -> str:
    if not finished:
        return "diverged"
    return "no validation loss" if score is None else f"{score:.6g}"
