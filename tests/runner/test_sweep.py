"""Sweep bookkeeping: the plain functions of hol.runner.sweep (records, summaries)."""
from __future__ import annotations

import json

from hydra.errors import InstantiationException
from rich.console import Console

from hol.runner.records import describe_error, flatten
from hol.runner.sweep import (
    FAILED,
    OK,
    JobRecord,
    make_record,
    print_summary,
    read_metrics,
    split_overrides,
    summary_table,
    write_summary,
)
from tests.helpers.runs import read_csv


def records() -> list[JobRecord]:
    return [
        JobRecord(0, ["exp=a", "n=2"], OK, result=0.5, wall_time_s=1.25,
                  metrics={"val/loss": 0.5, "test/acc": 0.9}),
        JobRecord(1, ["exp=a", "n=3"], OK, result=0.25, wall_time_s=2.0,
                  metrics={"val/loss": 0.25, "extra": 1}),
        JobRecord(2, ["exp=a", "n=0"], FAILED, wall_time_s=0.01, error="ValueError: n | must be >= 2"),
    ]


# ---- plain functions ---------------------------------------------------------------------------------------

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
    # '|' in the error is escaped
    assert all(line.count(" | ") == table[0].count(" | ") for line in table[2:])
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
