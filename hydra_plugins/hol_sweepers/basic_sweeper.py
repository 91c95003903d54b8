"""``hydra/sweeper=hol_basic``: Hydra's basic sweeper, but every job runs and the sweep folder gets a
summary.

Hydra's ``BasicSweeper`` raises on the first failed job of a batch, skipping later batches and the
end-of-sweep callbacks. This subclass launches every batch through :func:`run_batch` (failures are recorded,
not raised), rewrites ``summary.csv``/``summary.md`` after each batch, prints the table at the end, and only
then ends with a one-line error (exit status 1) when some job failed.
"""
from typing import Any

from hydra._internal.core_plugins import basic_sweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

TITLE = "Sweep summary"


class HolBasicSweeper(basic_sweeper.BasicSweeper):
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hol.runner.sweep import TimedTask

        super().setup(hydra_context=hydra_context, task_function=TimedTask(task_function), config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from ._batch import SweepFailed, failure_message, run_sweep

        assert self.config is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        self.overrides = self.split_arguments(overrides, self.max_batch_size)
        sweep_dir, records = run_sweep(self, TITLE,
                                       lambda done: None if self.is_done() else self.get_job_batch())
        if not all(r.ok for r in records):
            raise SweepFailed(failure_message(records, sweep_dir))
        return records
