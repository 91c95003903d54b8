"""Grid sweeps with ``hydra/sweeper=hol_basic`` end to end: every job runs, failures are recorded, the sweep
folder gets its summary, and the command fails at the end when a job failed."""
from __future__ import annotations

import json
import math

import pytest

from hol.runner.sweep import FAILED, OK
from tests.helpers.runs import TINY_XOR, read_csv, run_hol, run_sweep_app


@pytest.mark.slow
def test_basic_sweep_records_failed_job_and_runs_the_others(sweep_app, tmp_path):
    sweep = tmp_path / "sweep"
    done = run_sweep_app(sweep_app, sweep, "hydra/sweeper=hol_basic", "x=0.1,0.5,2", "y=0,1", "fail_at=2")
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


@pytest.mark.slow
def test_basic_sweep_goes_on_after_exit_and_composition_errors_in_batches(sweep_app, tmp_path):
    """sys.exit in a job and a config that does not compose fail only their job, also in later batches."""
    sweep = tmp_path / "sweep"
    done = run_sweep_app(sweep_app, sweep, "hydra/sweeper=hol_basic", "hydra.sweeper.max_batch_size=2",
                   "shape=circle,triangle,square", "exit_jobs=[0]")
    assert done.returncode == 1, done.stderr
    rows = read_csv(sweep / "summary.csv")
    assert [(r["job"], r["status"]) for r in rows] == [("0", FAILED), ("1", FAILED), ("2", OK)]
    assert rows[0]["error"] == "JobExited: the job exited with status 3"
    assert rows[1]["error"].startswith("invalid configuration:") and "triangle" in rows[1]["error"]
    assert rows[1]["wall_time_s"] == ""  # never launched
    assert float(rows[2]["test/loss"]) == pytest.approx(0.09)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "2"]  # job 2 kept its number


def test_basic_sweep_all_ok_exits_zero(sweep_app, tmp_path):
    done = run_sweep_app(sweep_app, tmp_path / "sweep", "hydra/sweeper=hol_basic", "x=0.3,0.4")
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in read_csv(tmp_path / "sweep" / "summary.csv")] == [OK, OK]


@pytest.mark.slow
def test_hol_train_multirun_summary_with_failing_job(tmp_path):
    """The real CLI: a grid over layer.n where n=0 is invalid; the other job trains and is summarized."""
    sweep = tmp_path / "sweep"
    done = run_hol(tmp_path, "train", "-m", *TINY_XOR, "layer=continuous", "layer.n=2,0,3",
                   f"hydra.sweep.dir={sweep}")
    assert done.returncode == 1  # a sweep with failed jobs, as a run that failed
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


@pytest.mark.slow
def test_a_diverged_job_is_a_failed_job_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    done = run_hol(tmp_path, "train", "-m", *TINY_XOR, "trainer.max_epochs=2", "optimizer=sgd",
                   "optimizer.lr=50.0,0.1", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 1 and "1 of 2 jobs failed" in done.stderr
    rows = read_csv(sweep / "summary.csv")
    statuses = [(r["overrides"], r["status"]) for r in rows]
    assert statuses == [("optimizer.lr=50.0", FAILED), ("optimizer.lr=0.1", OK)]
    assert rows[0]["error"].startswith("RunDiverged: the run diverged in epoch 0: train/loss is")
    assert rows[0]["run/status"] == "diverged" and rows[1]["run/status"] == "finished"
    assert "nan" not in (sweep / "summary.csv").read_text().lower()  # strict data: empty cells, not NaN
    record = json.loads((sweep / "0" / "metrics.json").read_text(), parse_constant=pytest.fail)
    assert record["run/status"] == "diverged"
