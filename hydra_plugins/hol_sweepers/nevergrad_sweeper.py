"""``hydra/sweeper=nevergrad``: hyperparameter search with nevergrad's ask/tell interface.

Each round asks the optimizer for ``num_workers`` candidates, launches them as one batch of jobs through the
configured Hydra launcher, and tells the optimizer each job's objective: the value the task function returned
(hol's runner returns ``cfg.optimized_metric``), negated when ``maximize``. A failed job, or one returning
something that is not a finite number, is told the worst loss nevergrad accepts and the search goes on.
``budget`` jobs in all. The sweep folder gets ``optimization_results.yaml`` (best evaluated parameters and
value) and the same ``summary.csv``/``summary.md`` as a grid sweep.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
TITLE = "Nevergrad sweep summary"
# the loss told for a failed trial: just below 5e20, from where nevergrad clips losses (with a warning)
WORST_LOSS = 1.0e20


def objective(result: Any) -> float | None:
    """The task's return value as a finite float, or None when it is not one (the trial counts as failed).

    Numbers and 0-d arrays/tensors count; strings and booleans do not.
    """
    if isinstance(result, (bool, str, bytes)):
        return None
    try:
        value = float(result)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class NevergradSweeper(Sweeper):
    def __init__(self, optim: DictConfig, parametrization: DictConfig | None = None) -> None:
        self.optim = optim
        self.parametrization = parametrization if parametrization is not None else {}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hol.runner.sweep import TimedTask

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=TimedTask(task_function), config=config)

    def _optimizer(self, parametrization: Any) -> Any:
        import nevergrad as ng

        from hol.checks import check_int

        from ._batch import SweepConfigError

        for name in ("budget", "num_workers"):
            try:
                check_int(f"hydra.sweeper.optim.{name}", self.optim[name], 1)
            except ValueError as error:
                raise SweepConfigError(str(error)) from None
        name = self.optim.optimizer
        if name not in ng.optimizers.registry:
            raise SweepConfigError(
                f"hydra.sweeper.optim.optimizer={name!r} is not a nevergrad optimizer; use one of "
                "NGOpt, OnePlusOne, CMA, TwoPointsDE, DE, PSO, RandomSearch, ... "
                "(nevergrad.optimizers.registry)")
        return ng.optimizers.registry[name](parametrization=parametrization, budget=self.optim.budget,
                                            num_workers=self.optim.num_workers)

    def sweep(self, arguments: list[str]) -> Any:
        from hol.runner.sweep import FAILED, INTERRUPTED

        from ._batch import SweepFailed, failure_message, run_sweep
        from ._parametrization import build_search_space

        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        space = build_search_space(self.parametrization, arguments, parser)
        optimizer = self._optimizer(space.parametrization(self.optim.seed))
        sign = -1.0 if self.optim.maximize else 1.0
        log.info(f"Nevergrad {self.optim.optimizer}: budget {self.optim.budget}, "
                 f"{self.optim.num_workers} workers, tuning {', '.join(space.dimensions)}")
        metric = self.config.get("optimized_metric")
        candidates: list[Any] = []
        trials: list[tuple[Any, dict[str, Any], float | None]] = []  # (record, tuned values, objective)

        def ask(done: int) -> list[list[str]] | None:
            if done >= self.optim.budget:
                return None
            count = min(self.optim.num_workers, self.optim.budget - done)
            candidates[:] = [optimizer.ask() for _ in range(count)]
            return [space.overrides(c) for c in candidates]

        def tell(batch_records: list) -> None:
            # after a stop signal the batch's later candidates did not run (no records), and the stopped
            # trial is no evaluation: neither is told
            for candidate, record in zip(candidates, batch_records, strict=False):
                if record.status == INTERRUPTED:
                    continue
                value = objective(record.result) if record.ok else None
                if record.ok and value is None:
                    record.status = FAILED
                    record.error = f"objective is not a finite number: {record.result!r}"
                    log.warning(f"job #{record.job} failed: {record.error}")
                optimizer.tell(candidate, WORST_LOSS if value is None else sign * value)
                trials.append((record, space.values(candidate), value))

        sweep_dir, records = run_sweep(self, TITLE, ask, tell)
        done = [(record, params, value) for record, params, value in trials if value is not None]
        if not done:
            raise SweepFailed("no trial succeeded: " + failure_message(records, sweep_dir))
        best_record, best_params, best_value = min(done, key=lambda t: sign * t[2])
        results = {
            "name": "nevergrad",
            "optimizer": self.optim.optimizer,
            "optimized_metric": metric,
            "maximize": bool(self.optim.maximize),
            "budget": self.optim.budget,
            "num_failed": len(records) - len(done),
            "best_job": best_record.job,
            "best_evaluated_result": best_value,
            "best_evaluated_params": best_params,
            "best_overrides": best_record.overrides,
        }
        OmegaConf.save(OmegaConf.create(results), sweep_dir / RESULTS_FILE)
        log.info(f"Best value {best_value:.6g} (job #{best_record.job}) with {best_params}; "
                 f"see {sweep_dir / RESULTS_FILE}")
        if len(done) < len(records):  # as a grid sweep: exit status 1 when a job failed, after the results
            raise SweepFailed(f"{failure_message(records, sweep_dir)}; the best of the others is in "
                              f"{sweep_dir / RESULTS_FILE}")
        return results
