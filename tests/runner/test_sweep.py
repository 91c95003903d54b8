"""Sweep summaries: the plain functions of hol.runner.sweep, and grid sweeps (hydra/sweeper=hol_basic) end to end."""
from __future__ import annotations

import json
import math

import pytest
from hydra.errors import InstantiationException
from rich.console import Console
from tests.helpers.sweep_app import TINY_XOR, read_csv, run_app, run_hol, write_app

from hol.runner.sweep import (
    FAILED,
    OK,
    JobRecord,
    describe_error,
    flatten,
    make_record,
    print_summary,
    read_metrics,
    split_overrides,
    summary_table,
    write_summary,
)


def records() -> list[JobRecord]:
    return [
        JobRecord(0, ["exp=a", "n=2"], OK, result=0.5, wall_time_s=1.25, metrics={"val/loss": 0.5, "test/acc": 0.9}),
        JobRecord(1, ["exp=a", "n=3"], OK, result=0.25, wall_time_s=2.0, metrics={"val/loss": 0.25, "extra": 1}),
        JobRecord(2, ["exp=a", "n=0"], FAILED, wall_time_s=0.01, error="ValueError: n | must be >= 2"),
    ]


# ---- plain functions ----------------------------------------------------------------------------------------

def test_split_overrides_shared_and_varying():
    shared, varying = split_overrides([["a=1", "b=1", "c=x"], ["a=1", "b=2", "c=x"], ["a=1", "b=3"]])
    assert shared == ["a=1"]
    assert varying == [["b=1", "c=x"], ["b=2", "c=x"], ["b=3"]]
    # a single job: nothing is "shared", its overrides are its own
    assert split_overrides([["a=1", "b=2"]]) == ([], [["a=1", "b=2"]])


def test_flatten_joins_nested_keys():
    assert flatten({"test/acc": 1, "val": {"loss": 2, "deep": {"x": 3}}}) == {"test/acc": 1, "val/loss": 2,
                                                                                "val/deep/x": 3}


def test_summary_table_columns_and_rows():
    columns, rows, shared = summary_table(records())
    assert shared == ["exp=a"]
    assert columns == ["job", "status", "overrides", "result", "val/loss", "test/acc", "extra", "wall_time_s",
                       "error"]
    assert rows[0] == [0, OK, "n=2", 0.5, 0.5, 0.9, None, 1.25, None]
    assert rows[2] == [2, FAILED, "n=0", None, None, None, None, 0.01, "ValueError: n | must be >= 2"]
    # the returned value is the metric "val/loss" of every job: the result column would only repeat it
    columns, rows, _ = summary_table(records(), metric="val/loss")
    assert "result" not in columns and len(rows[0]) == len(columns)
    # ... but it stays when it is not that metric
    assert "result" in summary_table(records(), metric="test/acc")[0]


def test_write_summary_csv_full_precision_and_markdown(tmp_path):
    recs = records()
    recs[0].result = recs[0].metrics["val/loss"] = 1 / 3
    csv_path, md_path = write_summary(tmp_path / "sweep", recs, title="T")
    rows = read_csv(csv_path)
    assert [r["status"] for r in rows] == [OK, OK, FAILED]
    assert float(rows[0]["val/loss"]) == 1 / 3  # exact round trip
    assert rows[2]["val/loss"] == "" and rows[2]["error"] == "ValueError: n | must be >= 2"
    assert [r["overrides"] for r in rows] == ["n=2", "n=3", "n=0"]
    md = md_path.read_text().splitlines()
    assert md[0] == "# T" and "`exp=a`" in md[2]
    table = [line for line in md if line.startswith("|")]
    assert len(table) == 2 + len(recs)
    assert all(line.count(" | ") == table[0].count(" | ") for line in table[2:])  # '|' in the error is escaped
    assert "0.333333" in table[2] and "\\|" in table[4]


def test_read_metrics_missing_corrupt_and_nested(tmp_path):
    assert read_metrics(tmp_path) == {}
    assert read_metrics(None) == {}
    (tmp_path / "metrics.json").write_text("{not json")
    assert read_metrics(tmp_path) == {}
    (tmp_path / "metrics.json").write_text(json.dumps({"test": {"acc": 0.5}}))
    assert read_metrics(tmp_path) == {"test/acc": 0.5}
    (tmp_path / "job.json").write_text(json.dumps({"status": "ok", "wall_time_s": 1.5, "error": None}))
    record = make_record(7, ["a=1"], OK, result=2.0, output_dir=tmp_path)
    assert (record.job, record.metrics, record.wall_time_s, record.output_dir) == (7, {"test/acc": 0.5}, 1.5,
                                                                                  str(tmp_path))


def test_describe_error_one_line_and_instantiation_cause():
    assert describe_error(ValueError("bad\n  value")) == "ValueError: bad value"
    try:
        try:
            raise ValueError("n must be >= 2")
        except ValueError as cause:
            raise InstantiationException("Error in call to target 'hol.networks.MLP'") from cause
    except InstantiationException as error:
        assert describe_error(error) == "ValueError: n must be >= 2"


def test_print_summary_lists_rows_and_errors():
    console = Console(record=True, width=200)
    print_summary(records(), title="Sweep summary", console=console)
    text = console.export_text()
    assert "Sweep summary" in text and "shared: exp=a" in text
    assert "n=2" in text and "n=3" in text and "1.25" in text
    assert "job 2 failed: ValueError: n | must be >= 2" in text


# ---- grid sweeps end to end ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return write_app(tmp_path_factory.mktemp("app"))


def test_basic_sweep_records_failed_job_and_runs_the_others(app, tmp_path):
    sweep = tmp_path / "sweep"
    done = run_app(app, sweep, "hydra/sweeper=hol_basic", "x=0.1,0.5,2", "y=0,1", "fail_at=2")
    assert done.returncode == 1, done.stderr
    assert "2 of 6 jobs failed" in done.stderr and "summary.md" in done.stderr
    rows = read_csv(sweep / "summary.csv")
    assert [r["job"] for r in rows] == [str(i) for i in range(6)]
    assert [r["overrides"] for r in rows] == ["x=0.1 y=0", "x=0.1 y=1", "x=0.5 y=0", "x=0.5 y=1", "x=2 y=0",
                                              "x=2 y=1"]
    assert [r["status"] for r in rows] == [OK] * 4 + [FAILED] * 2
    for row in rows[:4]:
        x, y = float(row["overrides"].split()[0][2:]), int(row["overrides"][-1])
        assert float(row["test/loss"]) == pytest.approx((x - 0.3) ** 2 + y)
        assert float(row["result"]) == float(row["test/loss"])
        assert float(row["wall_time_s"]) >= 0 and row["error"] == ""
    for row in rows[4:]:
        assert row["test/loss"] == "" and row["error"] == f"ValueError: job {row['job']} fails on purpose"
        assert float(row["wall_time_s"]) >= 0
    assert json.loads((sweep / "4" / "job.json").read_text())["status"] == FAILED
    md = (sweep / "summary.md").read_text()
    assert md.count("| ok |") == 4 and md.count("| failed |") == 2 and "`fail_at=2`" in md
    assert "job 4 failed: ValueError" in done.stdout  # the printed table and its error list


def test_basic_sweep_goes_on_after_exit_and_composition_errors_in_batches(app, tmp_path):
    """sys.exit in a job and a config that does not compose fail only their job, also in later batches."""
    sweep = tmp_path / "sweep"
    done = run_app(app, sweep, "hydra/sweeper=hol_basic", "hydra.sweeper.max_batch_size=2",
                   "shape=circle,triangle,square", "exit_jobs=[0]")
    assert done.returncode == 1, done.stderr
    rows = read_csv(sweep / "summary.csv")
    assert [(r["job"], r["status"]) for r in rows] == [("0", FAILED), ("1", FAILED), ("2", OK)]
    assert rows[0]["error"] == "JobExited: the job exited with status 3"
    assert rows[1]["error"].startswith("invalid configuration:") and "triangle" in rows[1]["error"]
    assert rows[1]["wall_time_s"] == ""  # never launched
    assert float(rows[2]["test/loss"]) == pytest.approx(0.09)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "2"]  # job 2 kept its number


def test_basic_sweep_all_ok_exits_zero(app, tmp_path):
    done = run_app(app, tmp_path / "sweep", "hydra/sweeper=hol_basic", "x=0.3,0.4")
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in read_csv(tmp_path / "sweep" / "summary.csv")] == [OK, OK]


def test_hol_train_multirun_summary_with_failing_job(tmp_path):
    """The real CLI: a grid over layer.n where n=0 is invalid; the other job trains and is summarized."""
    sweep = tmp_path / "sweep"
    done = run_hol(tmp_path, "train", "-m", *TINY_XOR, "layer=continuous", "layer.n=2,0,3",
                   f"hydra.sweep.dir={sweep}")
    assert done.returncode != 0
    assert "1 of 3 jobs failed" in done.stderr
    rows = read_csv(sweep / "summary.csv")
    assert [(r["overrides"], r["status"]) for r in rows] == [("layer.n=2", OK), ("layer.n=0", FAILED),
                                                             ("layer.n=3", OK)]
    assert "n must be" in rows[1]["error"]
    for row, job in ((rows[0], 0), (rows[2], 2)):
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        assert float(row["val/loss_best"]) == metrics["val/loss_best"]
        assert math.isfinite(float(row["test/loss"])) and float(row["wall_time_s"]) > 0
    assert (sweep / "summary.md").is_file() and (sweep / "multirun.yaml").is_file()
