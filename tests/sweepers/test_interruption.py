"""A stop signal ends a sweep: Ctrl-C (SIGINT) or a cluster's cancel (SIGTERM) during ``hol train -m`` stops
the running job as Ctrl-C stops a run, starts no further job, writes the summary of what ran (the interrupted
job marked so) and exits 130 or 143 with one line; grid and nevergrad sweeps alike. Before, the signal ended
only the running job and the sweep went on with the next."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hol.runner.sweep import INTERRUPTED
from tests.helpers.runs import REPO, read_csv

LONG_XOR = ["experiment=xor", "data.train_size=64", "data.val_size=32", "data.test_size=32",
            "data.batch_size=16", "trainer.max_epochs=100000", "callbacks.plots=null", "logger=csv",
            "callbacks.rich_progress_bar=null", "+trainer.enable_progress_bar=false"]
"""One job of a sweep that runs until it is stopped."""
SWEEPS = {"grid": ["seed=1,2,3"],
          "nevergrad": ["hydra/sweeper=nevergrad", "hydra.sweeper.optim.budget=3",
                        "optimized_metric=test/loss", "optimizer.lr=interval(0.001,0.1)"]}


def _start(sweep: Path, *overrides: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [str(Path(sys.executable).with_name("hol")), "train", "-m", f"hydra.sweep.dir={sweep}",
               *LONG_XOR, *overrides]
    output = sweep.parent / "output.txt"  # a file, not a pipe nobody reads while the job runs
    return subprocess.Popen(command, cwd=sweep.parent, env=env, stdout=output.open("w"),
                            stderr=(sweep.parent / "errors.txt").open("w"), text=True)


def _wait_for_training(sweep: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the first job has saved its ``last.ckpt`` (so its fit is running). Not any checkpoint: an epoch
    writes its top-k checkpoint first and ``last.ckpt`` after it, and a signal between the two left a run
    without the ``last.ckpt`` the test expects (seen once in CI)."""
    deadline = time.monotonic() + timeout
    while not (sweep / "0" / "checkpoints" / "last.ckpt").is_file():
        assert process.poll() is None, (sweep.parent / "errors.txt").read_text()[-3000:]
        assert time.monotonic() < deadline, "the first job did not start training"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("sweeper", SWEEPS)
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_the_sweep_after_its_summary(tmp_path, sweeper, stop):
    sweep = tmp_path / "sweep"
    process = _start(sweep, *SWEEPS[sweeper])
    try:
        _wait_for_training(sweep, process)
        process.send_signal(stop)
        process.wait(timeout=120)
    finally:
        process.kill()
    stderr = (tmp_path / "errors.txt").read_text()
    assert process.returncode == 128 + stop, stderr[-3000:]
    name = signal.Signals(stop).name
    assert stderr.strip().splitlines()[-1] == (f"hol train: error: the sweep was stopped by {name} after 1 "
                                               f"jobs; see {sweep / 'summary.md'}")
    rows = read_csv(sweep / "summary.csv")
    assert [(row["job"], row["status"], row["error"]) for row in rows] == [("0", INTERRUPTED,
                                                                             f"stopped by {name}")]
    assert sorted(path.name for path in sweep.iterdir() if path.is_dir()) == ["0"]  # no job started after it
    assert (sweep / "0" / "checkpoints" / "last.ckpt").is_file()  # the stopped run keeps its checkpoints

