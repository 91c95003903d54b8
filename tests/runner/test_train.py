"""End-to-end runs of train()/evaluate() on tiny data (every data set), resume, checkpoints, TensorBoard
output."""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

import hol
from hol.runner.divergence import Divergence, RunDiverged
from hol.runner.lightning_module import HolModule
from hol.runner.optimizers import Float32MasterWeights
from hol.runner.records import FAILED_FILE, METRICS_FILE
from hol.runner.train import evaluate, run_task, train
from tests.helpers.runs import TINY_DATA, compose_config, tensorboard_events

TINY_FUNCTION = [*TINY_DATA, "data.test_size=64", "trainer.num_sanity_val_steps=1"]


def make_cfg(run_dir: Path, *overrides: str, config_name: str = "train"):
    return compose_config(list(overrides), config_name, run_dir)


def tensorboard_tags(run_dir: Path) -> dict:
    events = tensorboard_events(run_dir)
    return {**events.Tags(), "hparams": list(events.PluginTagToContent("hparams"))}


def test_function_run_learns_and_writes_outputs(tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg(run, "experiment=function", *TINY_FUNCTION, "data.train_size=256", "trainer.max_epochs=6",
                   "callbacks.plots.every_n_epochs=2")
    metrics = train(cfg)

    assert set(metrics) == {"test/loss", "test/rmse", "val/loss_best", "val/rmse_best"}
    record = json.loads((run / METRICS_FILE).read_text())
    assert record.pop("run/status") == "finished" and record == pytest.approx(metrics)
    targets = hol.runner.data.FunctionDataModule(test_size=64, seed=cfg.seed).sample(64, 2).tensors[1]
    zero_rmse = (targets**2).mean().sqrt()
    assert metrics["test/rmse"] < 0.5 * float(zero_rmse)  # learned, not a constant
    assert metrics["test/loss"] == pytest.approx(metrics["test/rmse"] ** 2, rel=1e-5)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(list((run / "checkpoints").glob("epoch_*.ckpt"))) == 1

    tags = tensorboard_tags(run)
    assert {"train/loss", "val/loss", "val/rmse", "val/loss_best", "test/rmse"} <= set(tags["scalars"])
    assert "plots/function" in tags["images"]
    assert {"plots/links/layers.0", "plots/links/layers.1"} <= set(tags["images"])
    assert tags["hparams"]  # the HPARAMS tab


def test_checkpoint_rebuilds_the_model_and_eval_reproduces_test_metrics(tmp_path):
    run = tmp_path / "run"
    metrics = train(make_cfg(run, *TINY_FUNCTION, "trainer.max_epochs=2", "logger=csv"))
    best = next((run / "checkpoints").glob("epoch_*.ckpt"))
    checkpoint = torch.load(best, weights_only=False)
    assert checkpoint["net_hparams"]["name"] == "mlp"
    assert checkpoint["hyper_parameters"]["task"] == "regression"

    evaluated = evaluate(make_cfg(tmp_path / "eval", f"ckpt_path={best}", config_name="eval"))
    assert evaluated == pytest.approx({k: v for k, v in metrics.items() if k.startswith("test/")}, rel=1e-6)
    assert (tmp_path / "eval" / METRICS_FILE).is_file()


def test_checkpoint_after_refinement_rebuilds_the_refined_model(tmp_path):
    run = tmp_path / "run"
    train(make_cfg(run, *TINY_FUNCTION, "trainer.max_epochs=1", "logger=[]", "test=false"))
    module = HolModule.from_checkpoint(str(run / "checkpoints" / "last.ckpt"))
    module.net = hol.refine(module.net, n=5, segments=4)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "refined.ckpt")

    rebuilt = HolModule.from_checkpoint(str(tmp_path / "refined.ckpt"))
    assert rebuilt.net.layers[0].n == 5 and rebuilt.net.layers[0].segments == 4
    x = torch.linspace(-1, 1, 9).unsqueeze(-1)
    torch.testing.assert_close(rebuilt(x), module(x))


@pytest.mark.parametrize("precision", ["32-true", "64-true"])
def test_resume_repeats_the_uninterrupted_run(tmp_path, precision):
    """In float64 too: Lightning loads the weights before converting the module to float64."""
    common = [*TINY_FUNCTION, "model.hidden_layers=1", "model.hidden_width=6", "model.dropout=0.2",
              "logger=[]", "callbacks.plots=null", f"trainer.precision={precision}"]
    straight = train(make_cfg(tmp_path / "straight", *common, "trainer.max_epochs=3"))
    train(make_cfg(tmp_path / "first", *common, "trainer.max_epochs=1"))  # "killed" after epoch 1
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed = train(make_cfg(tmp_path / "resumed", *common, "trainer.max_epochs=3", f"ckpt_path={last}"))
    assert resumed == straight  # exactly
    final = [torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
             for name in ("resumed", "straight")]
    torch.testing.assert_close(*final, rtol=0, atol=0)  # every tensor, bitwise


BEST_EARLY = ["experiment=xor", *TINY_DATA, "optimizer=sgd", "optimizer.lr=0.3", "logger=[]",
              "callbacks.plots=null", "trainer.num_sanity_val_steps=0", "trainer.max_epochs=5"]
"""An XOR run whose validation loss is best in its first epoch (so the best checkpoint is not the last)."""


def test_last_checkpoint_is_the_last_epoch_and_the_best_is_kept(tmp_path):
    train(make_cfg(tmp_path / "run", *BEST_EARLY))
    folder = tmp_path / "run" / "checkpoints"
    assert torch.load(folder / "last.ckpt", weights_only=False)["epoch"] == 4
    assert sorted(path.name for path in folder.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]


@pytest.mark.parametrize("folder", ["same", "new"])
def test_resume_after_a_worse_epoch_tests_the_best_checkpoint_of_the_whole_run(tmp_path, folder):
    straight = train(make_cfg(tmp_path / "straight", *BEST_EARLY))
    train(make_cfg(tmp_path / "first", *BEST_EARLY, "trainer.max_epochs=2", "test=false"))  # killed: epoch 1
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1  # not the best epoch
    run = tmp_path / ("first" if folder == "same" else "resumed")
    resumed = train(make_cfg(run, *BEST_EARLY, f"ckpt_path={last}"))
    assert resumed == straight  # exactly, test metrics included
    assert (run / "checkpoints" / "epoch_000.ckpt").is_file()  # the run folder holds its best checkpoint


def test_diverged_run_stops_says_where_and_is_recorded_as_strict_json(tmp_path):
    run = tmp_path / "run"
    cfg = make_cfg(run, "experiment=xor", *TINY_DATA, "optimizer=sgd", "optimizer.lr=2.0", "logger=[]",
                   "trainer.max_epochs=5", "callbacks.plots=null")
    with pytest.raises(RunDiverged, match=r"the run diverged in epoch \d: train/loss is (nan|inf|-inf); "
                                          r"try a smaller optimizer.lr \(it is 2\)"):
        run_task(cfg)
    record = json.loads((run / METRICS_FILE).read_text(), parse_constant=pytest.fail)  # no NaN, no Infinity
    epoch = record["run/diverged_epoch"]
    assert record["run/status"] == "diverged" and epoch < 4
    assert record["run/diverged_metric"] == "train/loss" and not (run / FAILED_FILE).exists()
    metrics = [value for key, value in record.items() if not key.startswith("run/")]
    assert all(value is None or math.isfinite(value) for value in metrics)
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == epoch  # it stopped there


@pytest.mark.slow
def test_a_float16_run_trains_as_the_float32_run_does(tmp_path):
    # before float32 master weights: Adam's float16 second moments underflowed and this run diverged
    losses = {}
    for precision in ("32-true", "16-true"):
        cfg = make_cfg(tmp_path / precision, "experiment=implicit_image", "data.batch_size=1024", "logger=[]",
                       "trainer.max_epochs=3", f"trainer.precision={precision}", "callbacks.plots=null")
        losses[precision] = train(cfg)["test/loss"]
    assert losses["16-true"] == pytest.approx(losses["32-true"], rel=0.01)


def test_lightning_clips_the_gradients_of_the_float32_copies_of_float16_weights():
    # SGD with lr 1 after clipping the gradient's norm to 1e-6: the copy moves by 1e-6, far below float16's
    # resolution at 1 (the float16 weight stays), and not by the unclipped gradient
    net = torch.nn.Linear(4, 1, bias=False)
    torch.nn.init.ones_(net.weight)
    module = HolModule(net, task="regression", optimizer=functools.partial(torch.optim.SGD, lr=1.0))
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(8, 4), torch.zeros(8, 1)),
                                       batch_size=8)
    trainer = pl.Trainer(precision="16-true", max_steps=1, gradient_clip_val=1e-6, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, data)
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, Float32MasterWeights)
    moved = float(torch.linalg.vector_norm(1 - optimizer.masters[0].detach()))
    assert moved == pytest.approx(1e-6, rel=0.1)  # float32 rounds each entry near 1 to 6e-8
    assert torch.equal(net.weight.detach(), torch.ones(1, 4, dtype=torch.float16))


def test_a_diverged_float16_run_points_to_the_precisions_that_train_float32_or_bfloat16_weights():
    divergence = Divergence(epoch=1, metric="val/loss", value=float("inf"))
    assert str(RunDiverged(divergence, lr=1e-3, precision="16-true")) == (
        "the run diverged in epoch 1: val/loss is inf; trainer.precision=16-true computes in float16, where "
        "values beyond 65504 overflow and gradients below 6e-8 vanish: try trainer.precision=16-mixed "
        "(float32 weights, float16 products) or bf16-true")


def test_a_diverged_line_search_run_does_not_blame_the_learning_rate():
    divergence = Divergence(epoch=2, metric="train/loss", value=float("nan"))
    assert str(RunDiverged(divergence, lr=1.0, line_search=True)) == (
        "the run diverged in epoch 2: train/loss is nan; the optimizer chose its steps by a line search, so "
        "a smaller optimizer.lr would not change them; look at the loss's inputs (data, targets) and try "
        "float64 (trainer.precision=64-true)")
    assert str(RunDiverged(divergence, lr=0.5)).endswith("; try a smaller optimizer.lr (it is 0.5)")


def test_best_values_ignore_non_finite_epochs():
    module = HolModule(torch.nn.Linear(1, 1), task="regression")
    best = module.best["loss"]
    for value in (float("nan"), 0.5, float("nan"), 0.75):
        best.update(torch.tensor(value))
    assert best.compute() == 0.5


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["64-true", "32-true", "bf16-mixed", "bf16-true", "16-mixed"])
def test_every_precision_runs_end_to_end_with_plots(tmp_path, precision):
    run = tmp_path / "run"
    metrics = train(make_cfg(run, "experiment=function", *TINY_DATA, "trainer.max_epochs=1",
                             f"trainer.precision={precision}", "callbacks.plots.every_n_epochs=1"))
    assert all(math.isfinite(value) for value in metrics.values())
    tags = tensorboard_tags(run)
    assert "plots/function" in tags["images"] and any(tag.startswith("plots/links") for tag in tags["images"])
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    dtypes = {"64-true": torch.float64, "bf16-true": torch.bfloat16}
    assert checkpoint["state_dict"]["net.layers.0.weight"].dtype == dtypes.get(precision, torch.float32)


def test_xor_run_plots_two_dimensional_target(tmp_path):
    run = tmp_path / "run"
    metrics = train(make_cfg(run, "experiment=xor", *TINY_FUNCTION, "trainer.max_epochs=1"))
    assert metrics["test/rmse"] > 0
    assert "plots/function" in tensorboard_tags(run)["images"]


@pytest.mark.parametrize("overrides", [
    ["experiment=invariant_mnist", "model.hidden_width=8"],
    ["experiment=mnist", "model.channels=[2,4]"],
], ids=["mlp", "conv"])
def test_mnist_runs_on_idx_files(tmp_path, mnist_root, overrides):
    run = tmp_path / "run"
    metrics = train(make_cfg(run, *overrides, f"data.root={mnist_root}", "data.download=false",
                             "data.batch_size=16", "trainer.max_epochs=1", "logger=csv"))
    assert set(metrics) == {"test/acc", "test/loss", "val/acc_best", "val/loss_best"}
    assert 0 <= metrics["test/acc"] <= 1
    assert (run / METRICS_FILE).is_file()


def test_cifar100_runs_on_pickle_files(tmp_path, cifar100_root):
    run = tmp_path / "run"
    metrics = train(make_cfg(run, "experiment=cifar100", "model.channels=[2,3,4]",
                             f"data.root={cifar100_root}", "data.download=false", "data.batch_size=16",
                             "trainer.max_epochs=1", "logger=csv"))
    assert 0 <= metrics["test/acc"] <= 1 and metrics["test/loss"] > 0


def test_failed_run_is_marked_and_not_finished(tmp_path, mnist_root):
    run = tmp_path / "run"
    (mnist_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    cfg = make_cfg(run, "data=mnist", f"data.root={mnist_root}", "data.download=false")
    with pytest.raises(hol.runner.data.DataError, match="t10k-labels-idx1-ubyte"):
        run_task(cfg)
    assert "DataError: MNIST files not found" in (run / FAILED_FILE).read_text()
    assert not (run / METRICS_FILE).exists()


def test_a_run_keeps_numpys_blas_on_one_thread_and_restores_it(tmp_path):
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    seen = run_task(make_cfg(tmp_path / "run"), task=lambda cfg: {"threads": blas_threads()})["threads"]
    assert seen and all(threads == 1 for threads in seen)  # numpy and scipy load OpenBLAS: pools exist
    assert blas_threads() == before


@pytest.mark.parametrize("overrides", [
    ["optimizer=lbfgs", "data.batch_size=64"], ["optimizer=lion"], ["optimizer=sgd", "scheduler=plateau"],
    ["optimizer=adamw", "scheduler=cosine"],
], ids=["lbfgs", "lion", "sgd-plateau", "adamw-cosine"])
def test_optimizers_and_schedulers_train(tmp_path, overrides):
    cfg = make_cfg(tmp_path / "run", *TINY_FUNCTION, *overrides, "trainer.max_epochs=2", "logger=[]",
                   "callbacks.plots=null")
    metrics = train(cfg)
    assert torch.isfinite(torch.tensor(list(metrics.values()))).all()


def test_run_whose_only_checkpoint_callback_is_no_model_checkpoint_tests_the_last_model(tmp_path):
    # OnExceptionCheckpoint is the Trainer's checkpoint_callback here but has no best checkpoint
    metrics = train(make_cfg(tmp_path / "run", "experiment=xor", *TINY_DATA, "trainer.max_epochs=1",
                             "trainer.num_sanity_val_steps=0", "logger=[]", "callbacks.plots=null",
                             "callbacks.model_checkpoint=null",
                             "+callbacks.on_exception._target_=lightning.pytorch.callbacks.OnExceptionCheckpoint",
                             f"+callbacks.on_exception.dirpath={tmp_path / 'run'}"))
    assert {"test/loss", "test/rmse"} <= set(metrics)
