"""Refinement stages (hol.runner.stages): stage specs, exact refinement inside training, resume, sweeps,
command line."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from hol.runner.cli import main
from hol.runner.lightning_module import HolModule
from hol.runner.records import METRICS_FILE
from hol.runner.stages import RefinementStages, Stage, parse_stages
from hol.runner.train import evaluate, train
from tests.helpers.runs import QUIET as RUN_QUIET
from tests.helpers.runs import TINY_DATA, compose_config, tensorboard_scalars

STAGE_RUN = ["trainer.num_sanity_val_steps=0", "callbacks.plots=null"]
QUIET = [*RUN_QUIET, *STAGE_RUN]
STAGES = "refine=[{epochs: 1, n: 2}, {epochs: 2, n: 3}, {epochs: 1, n: 5, segments: 4}]"


def make_cfg(run_dir: Path, *overrides: str, config_name: str = "train"):
    return compose_config([*(STAGE_RUN if config_name == "train" else []), *overrides], config_name, run_dir)


# --- stage specs ----------------------------------------------------------------------------------------

def test_stages_may_keep_the_order_to_adapt_or_change_the_optimizer():
    stages = parse_stages([{"epochs": 1, "n": 2}, {"epochs": 1, "adapt": True},
                           {"epochs": 2, "optimizer": {"lr": 0.1}}, {"epochs": 1, "optimizer": "lbfgs"}])
    assert [(stage.n, stage.adapt, stage.optimizer) for stage in stages] == [
        (2, False, None), (None, True, None), (None, False, {"lr": 0.1}), (None, False, "lbfgs")]


def test_parse_stages_defaults_and_order():
    stages = parse_stages([{"epochs": 2, "n": 2}, {"epochs": 1, "segments": 4}, {"epochs": 3, "n": 5}], n=3,
                          segments=2)
    assert stages == [Stage(2, 2, None), Stage(1, None, 4), Stage(3, 5, None)]
    assert parse_stages([]) == [] and parse_stages(None) == []


@pytest.mark.parametrize("spec, fragment", [
    ({"epochs": 1}, "refine must be a list of stages"),
    ([3], "refine[0] must be a mapping"),
    ([{"epochs": 1, "order": 2}], "refine[0] has unknown key(s) order; allowed: epochs, n, segments"),
    ([{"n": 2}], "refine[0] needs epochs"),
    ([{"epochs": 0, "n": 2}], "refine[0].epochs must be an integer >= 1, got 0"),
    ([{"epochs": 1.5}], "refine[0].epochs must be an integer >= 1, got 1.5"),
    ([{"epochs": 1, "n": 0}], "refine[0].n must be an integer >= 1, got 0"),
    ([{"epochs": 1, "n": 3}, {"epochs": 1, "n": 2}], "refine[1].n must be >= the previous stage's n 3"),
    ([{"epochs": 1, "segments": 2}, {"epochs": 1, "segments": 3}],
     "refine[1].segments must be a multiple of the previous stage's segments 2, got 3"),
    ([{"epochs": 1, "n": 2}, {"epochs": 1}], "refine[1] must set n and/or segments"),
    ([{"epochs": 1, "n": 3}, {"epochs": 1, "n": 3, "segments": 2}],
     "refine[1] changes neither n nor segments"),
    ([{"epochs": 1, "n": 2}, {"epochs": 1, "adapt": "yes"}],
     "refine[1].adapt must be True or False, got 'yes'"),
    ([{"epochs": 1, "optimizer": "sgdd"}], "unknown refine[0].optimizer 'sgdd'; allowed: adam"),
    ([{"epochs": 1, "optimizer": {"name": "sgdd"}}], "unknown refine[0].optimizer.name 'sgdd'"),
    ([{"epochs": 1, "optimizer": 3}], "refine[0].optimizer must be an optimizer config name"),
])
def test_bad_stage_specs_name_the_stage(spec, fragment):
    with pytest.raises(ValueError, match="^" + re.escape(fragment)):
        parse_stages(spec, n=3, segments=2)


def test_strategies_other_than_single_device_and_ddp_are_refused():
    from lightning.pytorch.strategies import FSDPStrategy

    callback = RefinementStages([Stage(1, 2), Stage(1, 3)])
    with pytest.raises(ValueError,
                       match=r"^refinement stages support single-device and DDP training, not the FSDP"):
        callback.setup(SimpleNamespace(strategy=FSDPStrategy()), None, "fit")
    with pytest.raises(ValueError, match="needs at least one stage"):
        RefinementStages([])


# --- training with stages -------------------------------------------------------------------------------

def test_staged_run_refines_exactly_and_logs_each_boundary(tmp_path):
    run = tmp_path / "run"
    metrics = train(make_cfg(run, "experiment=xor", *TINY_DATA, STAGES, "trainer.max_epochs=99"))

    assert 0 <= metrics["refine/max_change"] < 1e-12  # exact refinements: rounding only
    assert metrics["refine/val_loss_change"] < 1e-6
    record = json.loads((run / METRICS_FILE).read_text())
    assert record.pop("run/status") == "finished" and record == pytest.approx(metrics)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 3  # 1 + 2 + 1 epochs, not trainer.max_epochs
    assert (last["net_hparams"]["layer"]["n"], last["net_hparams"]["layer"]["segments"]) == (5, 4)

    logged = tensorboard_scalars(run)
    steps_per_epoch = 64 // 16
    assert logged["refine/stage"] == [(0, 0.0), (steps_per_epoch, 1.0), (3 * steps_per_epoch, 2.0)]
    assert [value for _, value in logged["refine/n"]] == [2.0, 3.0, 5.0]
    assert [value for _, value in logged["refine/segments"]] == [2.0, 2.0, 4.0]
    before, after = logged["refine/val_loss_before"], logged["refine/val_loss_after"]
    assert [step for step, _ in before] == [steps_per_epoch, 3 * steps_per_epoch]
    for (_, old), (_, new) in zip(before, after, strict=True):
        assert new == pytest.approx(old, rel=1e-6)
    assert before[0][1] != pytest.approx(before[1][1], rel=1e-3)  # training went on between the refinements
    # the validation loss before a refinement is that of the model the last epoch ended with
    val_loss = dict(logged["val/loss"])
    assert before[0][1] == pytest.approx(val_loss[steps_per_epoch - 1], rel=1e-6)


def test_refined_network_is_trained_by_a_new_optimizer(tmp_path):
    """After a refinement every new parameter receives updates (the optimizer holds the new parameters)."""
    run = tmp_path / "run"
    train(make_cfg(run, "experiment=xor", *TINY_DATA, "refine=[{epochs: 1, n: 2}, {epochs: 1, n: 3}]",
                   "test=false", "callbacks.model_checkpoint.save_top_k=-1",
                   "callbacks.model_checkpoint.monitor=null"))
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    parameters = [key for key in last["state_dict"] if key.endswith((".weight", ".bias"))]
    assert len(last["optimizer_states"][0]["state"]) == len(parameters)
    exp_avg = [state["exp_avg"] for state in last["optimizer_states"][0]["state"].values()]
    assert all(moment.shape[-1] == 5 for moment in exp_avg)  # n=3 with 2 segments: 5 coefficients per link
    assert all(moment.abs().sum() > 0 for moment in exp_avg)


def test_best_checkpoint_of_an_earlier_stage_is_tested_with_its_own_shape(tmp_path):
    run = tmp_path / "run"
    # mode=max: the "best" checkpoint is the worst validation loss, that of the first (low order) stage
    metrics = train(make_cfg(run, "experiment=xor", *TINY_DATA,
                             "refine=[{epochs: 1, n: 2}, {epochs: 2, n: 4}]",
                             "callbacks.model_checkpoint.mode=max", "optimizer.lr=0.05"))
    best = next((run / "checkpoints").glob("epoch_*.ckpt"))
    assert torch.load(best, weights_only=False)["net_hparams"]["layer"]["n"] == 2
    evaluated = evaluate(make_cfg(tmp_path / "eval", f"ckpt_path={best}",
                                  "+trainer.enable_progress_bar=false", config_name="eval"))
    assert metrics["test/loss"] == pytest.approx(evaluated["test/loss"], rel=1e-6)


def test_resume_after_and_before_a_refinement_repeats_the_uninterrupted_run(tmp_path):
    common = [*TINY_DATA, "experiment=xor", "model.hidden_layers=1", "model.hidden_width=4",
              "model.dropout=0.2", "model.normalization=max_abs", "scheduler=cosine", "scheduler.T_max=4",
              "logger=[]"]
    full = "refine=[{epochs: 1, n: 2}, {epochs: 2, n: 3}, {epochs: 1, n: 4}]"
    straight = train(make_cfg(tmp_path / "straight", *common, full))

    def resumed(name: str, first_stages: str) -> dict:
        """Train ``first_stages`` ("killed" then), resume the full stages from its last checkpoint in a new
        run folder."""
        train(make_cfg(tmp_path / name, *common, first_stages, "test=false"))
        last = tmp_path / name / "checkpoints" / "last.ckpt"
        resumed_run = make_cfg(tmp_path / f"{name}_resumed", *common, full, f"ckpt_path={last}")
        return torch.load(last, weights_only=False), train(resumed_run)

    # killed after epoch 1 (inside stage 2, after its refinement): resumes at n=3 and does not refine again
    checkpoint, after = resumed("after", "refine=[{epochs: 1, n: 2}, {epochs: 1, n: 3}]")
    assert checkpoint["net_hparams"]["layer"]["n"] == 3
    # killed after epoch 0 (end of stage 1): resumes at n=2 and refines at the boundary
    checkpoint, before = resumed("before", "refine=[{epochs: 1, n: 2}]")
    assert checkpoint["net_hparams"]["layer"]["n"] == 2

    assert after == straight  # exactly, refinement records included
    assert before == straight
    final = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=False)
    for name in ("after", "before"):
        again = torch.load(tmp_path / f"{name}_resumed" / "checkpoints" / "last.ckpt", weights_only=False)
        assert again["net_hparams"] == final["net_hparams"] and again["net_hparams"]["layer"]["n"] == 4
        torch.testing.assert_close(again["state_dict"], final["state_dict"], rtol=0, atol=0)  # bitwise
    # the cosine schedule spans the run: the refinements carried it on, they did not restart it
    epoch = final["lr_schedulers"][0]["last_epoch"]
    assert epoch >= 3
    assert final["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(
        0.01 * (1 + math.cos(math.pi * epoch / 4)) / 2, abs=1e-9)


# --- command line ---------------------------------------------------------------------------------------

def test_command_line_stages_in_a_run_and_a_sweep(in_tmp, capsys):
    main(["train", "experiment=xor", *TINY_DATA, *QUIET, "refine=[{epochs:1,n:2},{epochs:1,n:3}]",
          "hydra.run.dir=run"])
    assert "refine/max_change" in capsys.readouterr().out
    assert json.loads((in_tmp / "run" / METRICS_FILE).read_text())["refine/max_change"] < 1e-12

    main(["train", "-m", "experiment=xor", *TINY_DATA, *QUIET, "logger=[]", "layer=continuous,discontinuous",
          "refine=[{epochs:1,n:2},{epochs:1,segments:4}]", "hydra.sweep.dir=sweep"])
    for job in ("0", "1"):
        metrics = json.loads((in_tmp / "sweep" / job / METRICS_FILE).read_text())
        assert metrics["refine/max_change"] < 1e-12
        last = in_tmp / "sweep" / job / "checkpoints" / "last.ckpt"
        hparams = torch.load(last, weights_only=False)["net_hparams"]
        assert (hparams["layer"]["n"], hparams["layer"]["segments"]) == (2, 4)
    assert "refine/max_change" in (in_tmp / "sweep" / "summary.csv").read_text()


@pytest.mark.parametrize("override, fragment", [
    ("refine=[{epochs:1,n:2},{epochs:0,n:3}]", "refine[1].epochs must be an integer >= 1, got 0"),
    ("refine=[{epochs:1,order:2}]", "refine[0] has unknown key(s) order; allowed: epochs, n, segments"),
    ("refine=[{epochs:1,n:3},{epochs:1,n:2}]", "refine[1].n must be >= the previous stage's n 3"),
    ("refine=[{epochs:1,n:1}]", "n must be an integer >= 2 for piecewise kinds, got 1"),
    ("refine=5", "refine must be a list of stages"),
])
def test_command_line_bad_stages_fail_with_one_line(in_tmp, capsys, override, fragment):
    with pytest.raises(SystemExit) as info:
        main(["train", "experiment=xor", *TINY_DATA, override, "hydra.run.dir=run"])
    captured = capsys.readouterr()
    assert info.value.code == 1
    assert captured.err.startswith("hol train: error: ") and fragment in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err + captured.out
    assert not (in_tmp / "run" / METRICS_FILE).exists()


def test_prefine_preset_trains_from_n2_to_n5(tmp_path, mnist_root):
    cfg = make_cfg(tmp_path / "run", "experiment=invariant_mnist_prefine", f"data.root={mnist_root}",
                   "data.download=false", "model.hidden_width=8", "logger=[]")
    stages = parse_stages(cfg.refine)
    assert [stage.n for stage in stages] == [2, 3, 4, 5] and cfg.layer.kind == "continuous"
    metrics = train(cfg)
    assert metrics["refine/max_change"] < 1e-12 and 0 <= metrics["test/acc"] <= 1
    module = HolModule.from_checkpoint(str(tmp_path / "run" / "checkpoints" / "last.ckpt"))
    assert module.net.hparams()["layer"]["n"] == 5


def test_a_ladder_through_the_command_line_adapts_refines_and_tests_every_stage(in_tmp):
    """experiment=function_2d's kind of ladder on tiny data: each stage's test metrics in metrics.json, the
    adapted domains in the checkpoint (hol eval reproduces the last stage's test RMSE), a stage's own
    optimizer, float64 throughout."""
    ladder = ("refine=[{epochs: 1, n: 3, segments: 2}, {epochs: 1, n: 4, segments: 4, adapt: true}, "
              "{epochs: 1, adapt: true, optimizer: {name: adam, lr: 0.003}}]")
    main(["train", "experiment=function_2d", *TINY_DATA, *QUIET, "data.batch_size=64", "optimizer.max_iter=5",
          ladder, "callbacks.model_checkpoint.monitor=null", "hydra.run.dir=run"])
    metrics = json.loads((in_tmp / "run" / METRICS_FILE).read_text())
    assert [metrics[f"stage{k}/parameters"] for k in range(3)] == [15, 39, 39]  # 3 links x ((n-1) S + 1)
    assert all(0 < metrics[f"stage{k}/test/rmse"] < 10 for k in range(3))
    stage_val = [metrics[f"stage{k}/val/loss"] for k in range(3)]  # one epoch per stage: every epoch's end
    assert min(stage_val) == pytest.approx(metrics["val/loss_best"], rel=1e-9) and len(set(stage_val)) == 3
    assert metrics["refine/max_change"] < 1e-12 and math.isfinite(metrics["refine/adapt_max_change"])
    last = torch.load(in_tmp / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    group = last["optimizer_states"][0]["param_groups"][0]
    assert group["lr"] == 0.003 and "betas" in group  # the last stage's own optimizer
    state = last["state_dict"]
    assert state["net.layers.0.weight"].dtype == torch.float64  # trainer.precision=64-true
    width = state["net.layers.0.domain_width"]
    assert torch.all((width > 1.5) & (width < 2.0))  # the input range of 64 uniform points in [-1, 1]
    checkpoint = in_tmp / "run" / "checkpoints" / "last.ckpt"
    evaluated = evaluate(make_cfg(in_tmp / "eval", f"ckpt_path={checkpoint}",  # in float64: the checkpoint's
                                  "+trainer.enable_progress_bar=false", config_name="eval"))
    assert evaluated["test/rmse"] == pytest.approx(metrics["stage2/test/rmse"], rel=1e-6)


def test_the_formula_preset_fits_three_named_variables_through_every_stage(in_tmp):
    """experiment=formula on a formula of three named variables: its first candidate the network [3, 7, 1]
    (2d + 1 hidden units), its second [3, 3, 3, 1, 1], each variable mapped from its interval, every stage of
    the ladder tested."""
    main(["train", "experiment=formula", 'data.expr="r*sin(theta) + exp(-nu)"',
          "data.variables={r:[0.5,2],theta:[0,3],nu:[-1,1]}", "data.train_size=64", "data.val_size=32",
          "data.test_size=32", *QUIET, "optimizer.max_iter=3", "hydra.run.dir=run"])
    metrics = json.loads((in_tmp / "run" / "candidate0" / METRICS_FILE).read_text())
    links = 3 * 7 + 7
    assert [metrics[f"stage{k}/parameters"] for k in range(5)] == [links * ((n - 1) * s + 1) for n, s in
                                                                    ((4, 2), (6, 2), (8, 2), (8, 4), (10, 4))]
    assert all(0 < metrics[f"stage{k}/test/rmse"] < math.inf for k in range(5))  # tiny data: may overfit
    net = torch.load(in_tmp / "run" / "candidate0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert net["net_hparams"]["hidden_width"] == 7
    assert net["net_hparams"]["input_domains"] == [[0.5, 2.0], [0.0, 3.0], [-1.0, 1.0]]
    deep = torch.load(in_tmp / "run" / "candidate1" / "checkpoints" / "last.ckpt", weights_only=False)
    assert deep["net_hparams"]["widths"] == [3, 3, 1]  # model.widths=[d, d, 1]
    assert json.loads((in_tmp / "run" / METRICS_FILE).read_text())["candidate/chosen"] in (0, 1)


def test_a_stage_too_large_for_bfgs_is_refused_before_the_first_epoch(in_tmp, capsys):
    """The formula preset's ladder with optimizer.max_parameters between the third stage's 3 x 7 + 7 links x
    15 coefficients (420) and the fourth's x 29 (812): refused when training starts, not at the fourth
    stage, in one line naming the stage and both numbers."""
    with pytest.raises(SystemExit) as info:
        main(["train", "experiment=formula", 'data.expr="r*sin(theta) + exp(-nu)"',
              "data.variables={r:[0.5,2],theta:[0,3],nu:[-1,1]}", "data.train_size=64", "data.val_size=32",
              "data.test_size=32", *QUIET, "optimizer.max_parameters=500", "hydra.run.dir=run"])
    captured = capsys.readouterr()
    assert info.value.code == 1 and len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("hol train: error: candidates[0] {}: refine[3]: ")  # the preset's first
    assert "the network has 812 parameters, more than optimizer.max_parameters=500" in captured.err
    assert not (in_tmp / "run" / "candidate0" / "checkpoints").exists()  # no epoch trained


def test_a_checkpoint_of_another_stage_loads_in_the_running_dtype():
    """Resuming (or testing) a float64 run from a checkpoint of another refinement stage rebuilds the network
    in float64: a float32 network would round the checkpoint's float64 weights."""
    from hol.networks import MLP

    running = MLP("continuous", 2, 1, hidden_layers=0, hidden_width=3, n=3, segments=2).double()
    stage = MLP("continuous", 2, 1, hidden_layers=0, hidden_width=3, n=5, segments=4).double()
    for layer in stage.layers:
        torch.nn.init.uniform_(layer.weight, -1, 1)  # values float32 cannot hold
    module = HolModule(running, task="regression")
    state = {f"net.{key}": value for key, value in stage.state_dict().items()}
    checkpoint = {"net_hparams": stage.hparams(), "state_dict": state}
    module.on_load_checkpoint(checkpoint)
    assert module.net.hparams() == stage.hparams()
    assert all(parameter.dtype == torch.float64 for parameter in module.net.parameters())
    module.load_state_dict(checkpoint["state_dict"], strict=False)  # the task's metric states are not here
    x = torch.rand(7, 2, dtype=torch.float64) * 2 - 1
    assert torch.equal(module.net(x), stage(x))  # the float64 weights, unrounded
