"""``trainer=ddp``: Lightning's DDP with 2 CPU processes (gloo), started by the real ``hol`` console
script."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from hol.runner.records import METRICS_FILE
from tests.helpers.runs import QUIET, TINY_DATA, run_hol

DDP = ["experiment=xor", "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu", *QUIET, *TINY_DATA]


def check_ddp_run(folder: Path) -> dict:
    """One finished 2-process run in ``folder``; returns its metrics."""
    metrics = json.loads((folder / METRICS_FILE).read_text())
    assert metrics.pop("run/status") == "finished"
    assert {"test/loss", "test/rmse", "val/loss_best"} <= set(metrics)
    assert all(math.isfinite(value) for value in metrics.values())
    # the second process ran the same job in the same folder (its Hydra log), and wrote nothing else
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in (folder / "train_ddp_process_1.log").read_text()
    assert len(list(folder.rglob(METRICS_FILE))) == 1 and not (folder / "FAILED").exists()
    assert len(list((folder / "tensorboard").glob("events.out.tfevents.*"))) >= 1
    return metrics


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_refinement_stages(tmp_path):
    result = run_hol(tmp_path, "train", *DDP, "refine=[{epochs:1,n:2},{epochs:1,n:3}]", "hydra.run.dir=run",
                     "callbacks.model_checkpoint.monitor=null",  # last.ckpt: the last epoch
                     "+callbacks.replicas._target_=tests.helpers.ddp_replicas.SaveReplica",
                     "+callbacks.replicas.dirpath=.")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = check_ddp_run(tmp_path / "run")
    assert metrics["refine/max_change"] < 1e-12  # both replicas refined exactly, DDP wrapped anew
    assert result.stdout.count("Results in") == 1  # one report, from rank 0
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    # the second (0-based: 1) of 2 epochs
    assert last["epoch"] == 1 and last["net_hparams"]["layer"]["n"] == 3
    # the replicas trained in step after the refinement: DDP synchronized the refined parameters
    replicas = [torch.load(tmp_path / f"replica_{rank}.pt") for rank in (0, 1)]
    assert replicas[0].keys() == replicas[1].keys() and replicas[0]["layers.0.weight"].shape[-1] == 5
    for key, value in replicas[0].items():
        torch.testing.assert_close(replicas[1][key], value, rtol=0, atol=1e-6)
    assert sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith("replica_")) == ["run"]


@pytest.mark.slow
def test_ddp_jobs_of_a_multirun_each_start_their_processes(tmp_path):
    result = run_hol(tmp_path, "train", "-m", *DDP, "trainer.max_epochs=1", "logger=tensorboard",
                     "layer=continuous,polynomial", "hydra.sweep.dir=sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    for job, kind in (("0", "continuous"), ("1", "polynomial")):
        check_ddp_run(tmp_path / "sweep" / job)
        checkpoint = torch.load(tmp_path / "sweep" / job / "checkpoints" / "last.ckpt", weights_only=False)
        # DDP checks that both processes hold parameters of the same shapes: the second ran this job
        assert checkpoint["net_hparams"]["layer"]["kind"] == kind
    assert sorted(path.name for path in tmp_path.iterdir()) == ["sweep"]
