"""A run's saved config (``.hydra/config.yaml``) is the config that ran: the values the run resolved after
Hydra saved the composed config (refinement stages: ``trainer.max_epochs``, the first stage's layer and
optimizer; ``hol eval`` of a float64 checkpoint: its precision), so running it repeats the run."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from hol.runner.cli import main
from hol.runner.records import METRICS_FILE
from hol.runner.stages import configure, parse_stages
from hol.runner.train import train
from tests.helpers.presets import TINY
from tests.helpers.runs import QUIET, TINY_XOR, compose_config, tensorboard_hparams

FUNCTION_2D = ["experiment=function_2d", *TINY["function_2d"], *QUIET, "optimizer.max_iter=5",
               "trainer.num_sanity_val_steps=0", "callbacks.plots=null"]
"""experiment=function_2d's five stages (9 epochs) on tiny data, about a second."""


def test_the_stages_applied_to_the_config_they_resolved_change_nothing():
    cfg = compose_config(["experiment=xor", "refine=[{epochs: 1, n: 2, optimizer: {name: lbfgs, lr: 0.5}}, "
                                            "{epochs: 2, n: 3}, {epochs: 1, n: 4, optimizer: {lr: 0.1}}]"])
    stages = configure(cfg)
    assert (cfg.trainer.max_epochs, cfg.layer.n) == (4, 2)
    assert cfg.optimizer == stages[0].optimizer and cfg.optimizer.lr == 0.5  # the first stage's L-BFGS
    assert [stage.optimizer["_target_"] for stage in stages[1:]] == ["torch.optim.Adam"] * 2  # the run's
    assert stages[2].optimizer["lr"] == 0.1

    saved = OmegaConf.create(OmegaConf.to_yaml(cfg))  # as the run saves it
    assert configure(saved) == stages
    assert OmegaConf.to_yaml(saved) == OmegaConf.to_yaml(cfg)


def test_a_staged_run_saves_the_config_it_ran_and_repeats_from_it(in_tmp):
    main(["train", *FUNCTION_2D, "hydra.run.dir=run"])
    run = in_tmp / "run"
    text = (run / ".hydra" / "config.yaml").read_text()
    saved = OmegaConf.create(text)
    composed = compose_config(FUNCTION_2D, quiet=False)
    stages = parse_stages(composed.refine)
    trained = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    epochs = trained["epoch"] + 1  # the last epoch's, counted from 0
    assert saved.trainer.max_epochs == epochs == sum(stage.epochs for stage in stages) == 9
    assert composed.trainer.max_epochs != 9  # what Hydra composed, and saved, before the stages set it
    first = {"n": stages[0].n, "segments": stages[0].segments}
    assert OmegaConf.to_container(saved.layer) == {**OmegaConf.to_container(composed.layer), **first}
    assert first == {"n": 4, "segments": 2} and composed.layer.n != 4
    assert yaml.safe_load(text) == OmegaConf.to_container(saved)  # plain YAML
    assert OmegaConf.load(run / ".hydra" / "overrides.yaml") == FUNCTION_2D  # the command line as typed
    hparams = tensorboard_hparams(run)
    assert (hparams["trainer.max_epochs"], hparams["layer.n"], hparams["layer.segments"]) == (9, 4, 2)

    main(["train", "--config-path", str(run / ".hydra"), "--config-name", "config", "hydra.run.dir=again"])
    again = in_tmp / "again"
    assert (again / ".hydra" / "config.yaml").read_text() == text
    assert json.loads((again / METRICS_FILE).read_text()) == json.loads((run / METRICS_FILE).read_text())
    repeated = torch.load(again / "checkpoints" / "last.ckpt", weights_only=False)
    assert repeated["epoch"] == trained["epoch"] and repeated["net_hparams"] == trained["net_hparams"]


def test_hol_eval_saves_the_precision_it_tests_a_float64_checkpoint_in(in_tmp):
    train(compose_config([*TINY_XOR, "trainer.precision=64-true", "test=false"], run_dir=in_tmp / "run",
                         quiet=False))
    checkpoint = in_tmp / "run" / "checkpoints" / "last.ckpt"
    main(["eval", f"ckpt_path={checkpoint}", "+trainer.enable_progress_bar=false", "hydra.run.dir=eval"])
    saved = OmegaConf.load(in_tmp / "eval" / ".hydra" / "config.yaml")
    assert saved.trainer.precision == "64-true" and saved.ckpt_path == str(checkpoint)


def test_every_job_of_a_sweep_saves_the_config_it_ran(in_tmp):
    main(["train", "-m", *TINY_XOR, "logger=[]", "layer=continuous,discontinuous",
          "refine=[{epochs: 1, n: 2}, {epochs: 1, n: 3}]", "hydra.sweep.dir=sweep"])
    for job, kind in enumerate(("continuous", "discontinuous")):
        saved = OmegaConf.load(in_tmp / "sweep" / str(job) / ".hydra" / "config.yaml")
        assert (saved.layer.kind, saved.layer.n, saved.trainer.max_epochs) == (kind, 2, 2)


def test_a_run_after_hydra_in_the_same_process_saves_only_its_own_config(in_tmp, capsys):
    """Hydra keeps its config after ``--help`` (without a runtime folder: ``train`` raised on it); a run
    composed afterwards in the same process writes only into its own folder."""
    main(["train", *TINY_XOR, "hydra.run.dir=first"])
    saved = (in_tmp / "first" / ".hydra" / "config.yaml").read_text()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "experiment" in capsys.readouterr().out
    metrics = train(compose_config([*TINY_XOR, "seed=7"], run_dir=in_tmp / "second", quiet=False))
    assert metrics and (in_tmp / "first" / ".hydra" / "config.yaml").read_text() == saved


def test_a_run_inside_another_hydra_apps_job_leaves_that_jobs_folder(tmp_path):
    """train() called with a composed config from inside another Hydra app's job saves nothing into that
    job's folder (its own folder has no ``.hydra``: it is not a Hydra job)."""
    app = compose_config(TINY_XOR, return_hydra_config=True, quiet=False)
    with open_dict(app):
        app.hydra.runtime.output_dir = str(tmp_path / "app")
    HydraConfig.instance().set_config(app)
    try:
        train(compose_config([*TINY_XOR, "seed=7"], run_dir=tmp_path / "run", quiet=False))
    finally:
        HydraConfig.instance().cfg = None
    assert not (tmp_path / "app").exists() and (tmp_path / "run" / METRICS_FILE).is_file()
