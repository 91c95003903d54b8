"""The skeleton both sweepers share: launch batches of jobs so that no single job can end the sweep, keep the
summary up to date after every batch, and report the sweep at the end; a stop signal (Ctrl-C, SIGTERM) ends
the running job and the sweep, after the summary of what ran."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from hol.runner.records import describe_error
from hol.runner.sweep import (
    FAILED,
    INTERRUPTED,
    OK,
    JobInterrupted,
    JobNotStarted,
    JobRecord,
    make_record,
    print_summary,
    stop_on_signals,
    write_summary,
)

log = logging.getLogger(__name__)


class SweepConfigError(CompactHydraException, ValueError):
    """A bad sweeper setting; Hydra prints the message without a traceback."""


class SweepFailed(CompactHydraException):
    """Raised after the summary is written when jobs of a sweep failed; Hydra prints it and exits 1 (so does
    ``hol``, which reads :attr:`exit_status`)."""

    exit_status = 1


class SweepInterrupted(CompactHydraException):
    """Raised after the summary is written when a stop signal ended the sweep; ``hol`` exits with
    :attr:`exit_status`, ``128 + signal`` (130 for SIGINT, 143 for SIGTERM), as a shell reports it."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status


def consecutive_runs(positions: Sequence[int]) -> list[list[int]]:
    """``[0, 1, 3, 4, 6]`` -> ``[[0, 1], [3, 4], [6]]``."""
    runs: list[list[int]] = []
    for position in positions:
        if runs and runs[-1][-1] == position - 1:
            runs[-1].append(position)
        else:
            runs.append([position])
    return runs


def record_from_return(job: int, overrides: Sequence[str], job_return: JobReturn) -> JobRecord | None:
    """A record from what the launcher returned for one job; a failed job's exception becomes its error, an
    interrupted job is marked so, and a job not started after a stop signal has none (``None``)."""
    output_dir = None
    if job_return.hydra_cfg is not None:
        output_dir = OmegaConf.select(job_return.hydra_cfg, "hydra.runtime.output_dir")
    overrides = filter_overrides(overrides)
    if job_return.status == JobStatus.COMPLETED:
        return make_record(job, overrides, OK, result=job_return.return_value, output_dir=output_dir)
    if job_return.status == JobStatus.FAILED:
        # the stored exception (the return_value property would raise it)
        stored = job_return._return_value
        if isinstance(stored, JobNotStarted):
            return None
        if isinstance(stored, JobInterrupted):
            return make_record(job, overrides, INTERRUPTED, error=str(stored), output_dir=output_dir)
        error = describe_error(stored)
    else:
        error = f"job status {job_return.status.name}"
    return make_record(job, overrides, FAILED, error=error, output_dir=output_dir)


def run_batch(sweeper: Sweeper, batch: Sequence[Sequence[str]], first_job: int) -> list[JobRecord]:
    """Launch ``batch`` (job overrides) as jobs ``first_job, first_job + 1, ...``; one record per job, in
    order (none for the jobs a stop signal kept from starting).

    Nothing here raises for a job: a job whose config does not compose is recorded as failed without being
    launched (the others keep their numbers), and an exception from the launcher marks its jobs as failed.
    """
    assert sweeper.launcher is not None
    records: dict[int, JobRecord | None] = {}
    legal = []
    for position, overrides in enumerate(batch):
        try:
            sweeper.validate_batch_is_legal([overrides])
        except Exception as exc:
            error = f"invalid configuration: {describe_error(exc)}"
            records[position] = make_record(first_job + position, filter_overrides(overrides), FAILED,
                                            error=error)
        else:
            legal.append(position)
    for run in consecutive_runs(legal):
        jobs = [list(batch[p]) for p in run]
        try:
            returns = sweeper.launcher.launch(jobs, initial_job_idx=first_job + run[0])
        except Exception as exc:
            error = f"launcher failed: {describe_error(exc)}"
            returns = [JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError(error)) for _ in run]
        for position, job_return in zip(run, returns, strict=True):
            records[position] = record_from_return(first_job + position, batch[position], job_return)
    ran = [record for p in range(len(batch)) if (record := records[p]) is not None]
    for record in ran:
        if record.status == FAILED:
            log.warning(f"job #{record.job} failed: {record.error}")
    return ran


def report(sweep_dir: Any, records: Sequence[JobRecord], title: str, metric: str | None) -> None:
    """Write ``summary.csv``/``summary.md`` into the sweep folder and print the table."""
    if not records:
        return
    csv_path, md_path = write_summary(Path(str(sweep_dir)), records, title=title, metric=metric)
    print_summary(records, title=title, metric=metric)
    log.info(f"Summary: {md_path} and {csv_path}")


def failure_message(records: Sequence[JobRecord], sweep_dir: Any) -> str:
    failed = [r for r in records if not r.ok]
    first = failed[0]
    return (f"{len(failed)} of {len(records)} jobs failed (first: job #{first.job}, {first.error}); "
            f"see {Path(str(sweep_dir)) / 'summary.md'}")


def run_sweep(sweeper: Sweeper, title: str, next_batch: Callable[[int], Sequence[Sequence[str]] | None],
              after_batch: Callable[[list[JobRecord]], None] | None = None) -> tuple[Path, list[JobRecord]]:
    """Run a sweep: ``next_batch(jobs_done)`` gives the overrides of the next batch of jobs (``None``: done),
    :func:`run_batch` launches it, ``after_batch`` sees its records (and may mark some failed), and the sweep
    folder's ``summary.csv``/``summary.md`` are rewritten after every batch; at the end, whatever happened,
    the summary is printed. Returns the sweep folder and every job's record."""
    assert sweeper.config is not None
    sweep_dir = Path(str(sweeper.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(sweeper.config, sweep_dir / "multirun.yaml")
    metric = sweeper.config.get("optimized_metric")
    records: list[JobRecord] = []
    with stop_on_signals() as interruption:
        try:
            while interruption.signal is None and (batch := next_batch(len(records))) is not None:
                batch_records = run_batch(sweeper, batch, first_job=len(records))
                if after_batch is not None:
                    after_batch(batch_records)
                records += batch_records
                write_summary(sweep_dir, records, title=title, metric=metric)
        finally:
            report(sweep_dir, records, title, metric)
    if interruption.signal is not None:
        raise SweepInterrupted(f"the sweep was {interruption.describe()} after {len(records)} jobs; see "
                               f"{sweep_dir / 'summary.md'}", interruption.exit_status)
    return sweep_dir, records
