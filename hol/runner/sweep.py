"""Sweep bookkeeping: one record per job, and the summary written into the sweep folder.

Every job of a hol sweep runs its task through :class:`TimedTask`, which writes ``job.json`` (status, wall
time, error) into the job's folder. After each batch, and once more at the end, the sweeper turns its jobs
into :class:`JobRecord` rows, reading each job's ``metrics.json``, and :func:`write_summary` writes
``summary.csv`` and ``summary.md`` into the sweep folder; :func:`print_summary` shows the same table.

The functions here are plain Python (no Hydra run needed) so they can be tested and reused on their own.
"""
from __future__ import annotations

import csv
import math
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import is_number
from .records import JOB_FILE, METRICS_FILE, describe_error, flatten, read_json, write_json

SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"

# width of the printed table when stdout is not a terminal
LOG_WIDTH = 200

OK = "ok"
FAILED = "failed"
INTERRUPTED = "interrupted"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a sweep: Ctrl-C, and what a cluster sends a cancelled job."""


@dataclass
class JobRecord:
    """What a sweep knows about one job once it has returned (or failed to start).

    ``job`` is Hydra's job number (``hydra.job.num``), ``overrides`` the job's task overrides, ``result`` the
    value the task function returned, ``metrics`` the flattened ``metrics.json`` of the job's folder.
    """

    job: int
    overrides: list[str]
    status: str
    result: Any = None
    wall_time_s: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    output_dir: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


class JobExited(RuntimeError):
    """A task called ``sys.exit``; raised instead so that Hydra records the job as failed and the sweep goes
    on."""


class JobInterrupted(RuntimeError):
    """The sweep received a stop signal while this job ran; raised so that Hydra records the job (the sweep
    then stops, :func:`stop_on_signals`)."""


class JobNotStarted(RuntimeError):
    """A job of a batch the sweep reached after a stop signal: it is not run, and not reported."""


@dataclass
class Interruption:
    """The stop signal a sweep received (``None``: none) and whether a job is running."""

    signal: int | None = None
    in_job: bool = False

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by the signal: ``128 + signal`` (130, 143)."""
        return 128 + (self.signal or 0)

    def describe(self) -> str:
        return f"stopped by {signal.Signals(self.signal).name}" if self.signal else "not stopped"


INTERRUPTION = Interruption()
"""The state of the sweep running in this process (:func:`stop_on_signals`, :class:`TimedTask`)."""


@contextmanager
def stop_on_signals() -> Iterator[Interruption]:
    """While a sweep runs: SIGINT or SIGTERM is recorded in :data:`INTERRUPTION` and, if a job is running,
    stops it as Ctrl-C stops a run (``KeyboardInterrupt``: Lightning ends the fit gracefully); the sweep
    starts no further job (:class:`TimedTask`) and ends after writing its summary. Without these handlers a
    signal ended only the running job, and the sweep went on with the next. The previous handlers are
    restored at the end. (Only in the main thread, where Python delivers signals.)"""
    INTERRUPTION.signal, INTERRUPTION.in_job = None, False
    if threading.current_thread() is not threading.main_thread():
        yield INTERRUPTION
        return

    def handler(signum: int, frame: Any) -> None:
        INTERRUPTION.signal = signum
        if INTERRUPTION.in_job:
            raise KeyboardInterrupt

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield INTERRUPTION
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


class TimedTask:
    """Wraps a Hydra task function: times each call and writes ``job.json`` into the job's output folder.

    ``job.json`` holds ``{"status": "ok" | "failed" | "interrupted", "wall_time_s": float, "error": str |
    null}``. A ``SystemExit`` raised by the task is re-raised as :class:`JobExited` (an ``Exception``),
    because Hydra records only ``Exception`` as a failed job and lets anything else end the whole sweep. After
    a stop signal (:func:`stop_on_signals`) the running job ends as :class:`JobInterrupted` and later jobs as
    :class:`JobNotStarted`, without running.
    """

    def __init__(self, task_function: Callable[[Any], Any]):
        self.task_function = task_function

    def __call__(self, cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig

        output_dir = Path(HydraConfig.get().runtime.output_dir)
        if INTERRUPTION.signal is not None:
            _remove_unused(output_dir)
            raise JobNotStarted(f"not started: the sweep was {INTERRUPTION.describe()}")
        status, error = FAILED, None
        start = time.perf_counter()
        INTERRUPTION.in_job = True
        try:
            value = self.task_function(cfg)
            status = OK
            return value
        except (KeyboardInterrupt, SystemExit) as exc:
            if INTERRUPTION.signal is not None:  # Lightning turns the KeyboardInterrupt into sys.exit(1)
                status, error = INTERRUPTED, INTERRUPTION.describe()
                raise JobInterrupted(error) from exc
            if isinstance(exc, KeyboardInterrupt):
                raise
            error = f"the job exited with status {exc.code}"
            raise JobExited(error) from exc
        except Exception as exc:
            error = describe_error(exc)
            raise
        finally:
            INTERRUPTION.in_job = False
            write_job_file(output_dir, status, time.perf_counter() - start, error)


def _remove_unused(output_dir: Path) -> None:
    """Remove the folder Hydra made for a job that does not start, if it holds nothing but the job's config
    (``.hydra``) and empty files (its log)."""
    entries = list(output_dir.iterdir()) if output_dir.is_dir() else []
    if all(entry.name == ".hydra" or (entry.is_file() and entry.stat().st_size == 0) for entry in entries):
        shutil.rmtree(output_dir, ignore_errors=True)


def write_job_file(output_dir: Path, status: str, wall_time_s: float, error: str | None) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / JOB_FILE, {"status": status, "wall_time_s": wall_time_s, "error": error})


def read_metrics(output_dir: str | Path | None) -> dict[str, Any]:
    """The job's ``metrics.json``, flattened; ``{}`` when there is none (e.g. the job failed early)."""
    return flatten(read_json(Path(output_dir) / METRICS_FILE)) if output_dir is not None else {}


def read_wall_time(output_dir: str | Path | None) -> float | None:
    """The wall time :class:`TimedTask` wrote into the job's ``job.json``, or None."""
    if output_dir is None:
        return None
    value = read_json(Path(output_dir) / JOB_FILE).get("wall_time_s")
    return float(value) if isinstance(value, (int, float)) else None


def make_record(job: int, overrides: Sequence[str], status: str, result: Any = None, error: str | None = None,
                output_dir: str | Path | None = None) -> JobRecord:
    """A :class:`JobRecord` completed from the job's folder (metrics and wall time)."""
    return JobRecord(job=job, overrides=list(overrides), status=status, result=result,
                     wall_time_s=read_wall_time(output_dir), metrics=read_metrics(output_dir), error=error,
                     output_dir=None if output_dir is None else str(output_dir))


def split_overrides(overrides: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """Split the jobs' overrides into those all jobs share and, per job, those that vary.

    An override is shared when every job has exactly the same ``key=value``. With a single job nothing
    varies, so everything is reported per job.
    """
    if len(overrides) < 2:
        return [], [list(o) for o in overrides]
    shared = [o for o in overrides[0] if all(o in job for job in overrides[1:])]
    return shared, [[o for o in job if o not in shared] for job in overrides]


def summary_table(records: Sequence[JobRecord],
                  metric: str | None = None) -> tuple[list[str], list[list[Any]], list[str]]:
    """Columns, rows and shared overrides of the summary.

    Columns: ``job``, ``status``, ``overrides`` (the ones that vary across jobs), ``result`` (the number the
    task returned, left out when it is always the value of the metric ``metric`` already shown), every metric
    key in order of first appearance, ``wall_time_s``, ``error``.
    """
    shared, varying = split_overrides([r.overrides for r in records])
    metric_keys: list[str] = []
    for record in records:
        metric_keys += [k for k in record.metrics if k not in metric_keys]
    numbers = [r for r in records if is_number(r.result)]
    with_result = bool(numbers) and (metric is None or not all(r.metrics.get(metric) == r.result
                                                                for r in numbers))
    columns = ["job", "status", "overrides"] + (["result"] if with_result else []) + metric_keys
    columns += ["wall_time_s", "error"]
    rows = []
    for record, own in zip(records, varying, strict=True):
        row = [record.job, record.status, " ".join(own)]
        row += [record.result if is_number(record.result) else None] if with_result else []
        row += [record.metrics.get(k) for k in metric_keys] + [record.wall_time_s, record.error]
        rows.append(row)
    return columns, rows, shared


def format_cell(value: Any, column: str = "") -> str:
    """A cell for humans: floats to 6 significant digits (wall time to 0.01 s), None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        if column == "wall_time_s":
            return f"{value:.2f}"
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _csv_cell(value: Any) -> Any:
    """A CSV cell: empty for a missing or non-finite number (strict data has no NaN or infinity)."""
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def render_markdown(columns: Sequence[str], rows: Iterable[Sequence[Any]], shared: Sequence[str],
                    title: str = "Sweep summary") -> str:
    """The summary as a Markdown document: a title, the shared overrides, one table row per job."""
    lines = [f"# {title}", ""]
    if shared:
        lines += ["Overrides shared by all jobs: " + " ".join(f"`{o}`" for o in shared), ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = [_markdown_cell(format_cell(v, c)) for v, c in zip(row, columns, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(sweep_dir: str | Path, records: Sequence[JobRecord], title: str = "Sweep summary",
                  metric: str | None = None) -> tuple[Path, Path]:
    """Write ``summary.csv`` (full precision) and ``summary.md`` into ``sweep_dir``; return both paths.

    ``metric``: the metric the tasks return (``optimized_metric``), see :func:`summary_table`.
    """
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    columns, rows, shared = summary_table(records, metric)
    csv_path, md_path = sweep_dir / SUMMARY_CSV, sweep_dir / SUMMARY_MD
    with csv_path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows([[_csv_cell(value) for value in row] for row in rows])
    md_path.write_text(render_markdown(columns, rows, shared, title))
    return csv_path, md_path


def print_summary(records: Sequence[JobRecord], title: str = "Sweep summary", metric: str | None = None,
                  console: Any = None) -> None:
    """Print the summary as a rich table, then the errors of failed jobs (to ``console``, default stdout)."""
    from rich.console import Console
    from rich.table import Table

    columns, rows, shared = summary_table(records, metric)
    shown = [i for i, c in enumerate(columns) if c != "error"]  # errors are listed below the table
    table = Table(title=title, caption=("shared: " + " ".join(shared)) if shared else None)
    for i in shown:
        table.add_column(columns[i], overflow="fold")
    for row in rows:
        table.add_row(*(format_cell(row[i], columns[i]) for i in shown),
                      style=None if row[1] == OK else "red")
    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file: one line per job
            console = Console(width=LOG_WIDTH)
    console.print(table)
    for record in records:
        if record.error:
            console.print(f"job {record.job} {record.status}: {record.error}", style="red", markup=False)
