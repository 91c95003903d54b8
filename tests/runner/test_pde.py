"""Physics-informed runs (data=pde, pde=..., experiment=poisson|burgers|sod): tiny end-to-end runs through the
command line write a valid solution.npz and the metrics the issue names; bad input is one line."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hol.runner.cli import main
from hol.runner.lightning_module import HolModule
from hol.runner.pde_data import PDEDataModule
from hol.runner.records import FAILED_FILE, METRICS_FILE
from hol.runner.train import evaluate, train
from tests.helpers.runs import QUIET, compose_config, tensorboard_events

TINY = ["data.interior=64", "data.boundary=16", "data.initial=16", "optimizer.max_iter=3",
        "trainer.max_epochs=1", "data.val_grid=[5,4]", "callbacks.plots=null"]
"""A tiny PDE run: few collocation points, three L-BFGS iterations, one epoch."""
PRESETS = {"poisson": ("u",), "burgers": ("u",), "sod": ("rho", "u", "p")}


def run_main(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_each_equation_runs_through_the_command_line_and_writes_its_solution(in_tmp, capsys, preset):
    grid = "[11,11]" if preset == "poisson" else "[1001,3]"
    main(["train", f"experiment={preset}", *QUIET, *TINY, f"data.test_grid={grid}", "hydra.run.dir=run"])
    run = in_tmp / "run"
    metrics = json.loads((run / METRICS_FILE).read_text())
    fields = PRESETS[preset]
    expected = {"test/loss", "test/residual", "test/boundary", "test/breaks", "test/mse", "test/rel_l2",
                "val/loss_best", "val/rel_l2_best"}
    if preset != "poisson":
        expected |= {"test/initial"} | {f"test/l1/{field}" for field in fields}
    if len(fields) > 1:
        expected |= {f"test/{name}/{field}" for name in ("mse", "rel_l2") for field in fields}
    assert metrics.pop("run/status") == "finished"
    assert {key for key in metrics if not key.startswith(("stage", "refine/"))} == expected  # sod: stages
    assert all(np.isfinite(value) for value in metrics.values())

    solution = np.load(run / "solution.npz")
    assert set(solution.files) == {"points", "fields", "names", "exact"}
    assert tuple(solution["names"]) == fields
    points, values, exact = solution["points"], solution["fields"], solution["exact"]
    assert points.shape == (121 if preset == "poisson" else 3003, 2)
    assert values.shape == exact.shape == (len(points), len(fields)) and values.dtype == np.float64
    if preset != "poisson":  # time last; at least 1000 points in x at the final time
        final = points[:, 1] == points[:, 1].max()
        assert final.sum() == 1001 and np.allclose(np.diff(points[final, 0]), np.diff(points[final, 0])[0])
    mse = ((values - exact) ** 2).mean()
    assert mse == pytest.approx(metrics["test/mse"], rel=1e-6)  # the file holds what was measured
    if preset == "sod":  # the L1 error of rho at the final time, from the file
        assert np.abs(values[final, 0] - exact[final, 0]).mean() == pytest.approx(metrics["test/l1/rho"],
                                                                                 rel=1e-6)
    tags = tensorboard_events(run).Tags()
    assert {f"pde/{field}" for field in fields} <= set(tags["images"])
    assert {"train/residual", "train/boundary", "val/rel_l2"} <= set(tags["scalars"])
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
def test_another_riemann_problem_in_float32_through_the_preset_options(tmp_path):
    """Lax's problem by the sod preset's options alone, trained in float32: its reference is the exact
    Riemann solution of those states."""
    run = tmp_path / "run"
    cfg = compose_config(["experiment=sod", *TINY, "data.test_grid=[1001,3]", "trainer.precision=32-true",
                          "pde.left=[0.445,0.698,3.528]", "pde.right=[0.5,0,0.571]",
                          "pde.t_end=0.14"], run_dir=run)
    metrics = train(cfg)
    assert all(np.isfinite(value) for value in metrics.values())
    solution = np.load(run / "solution.npz")
    final = solution["points"][:, 1] == solution["points"][:, 1].max()
    assert solution["points"][final, 1][0] == pytest.approx(0.14)
    rho = solution["exact"][final, 0]
    assert rho.max() == pytest.approx(1.304, abs=2e-3)  # Lax: the shocked state behind the right shock
    assert rho[0] == pytest.approx(0.445) and rho[-1] == pytest.approx(0.5)
    checkpoint = torch.load(next((run / "checkpoints").glob("epoch_*.ckpt")), weights_only=False)
    assert next(iter(checkpoint["state_dict"].values())).dtype == torch.float32


@pytest.mark.slow
def test_physics_informed_training_learns_poisson_and_eval_reproduces_the_test_metrics(tmp_path):
    run = tmp_path / "run"
    cfg = compose_config(["experiment=poisson", *TINY, "data.interior=400", "data.boundary=100",
                          "optimizer.max_iter=200", "layer.n=12", "data.test_grid=[21,21]",
                          "pde.forcing=\"-2*pi**2*sin(pi*x)*sin(pi*y)\"",
                          "pde.exact=\"sin(pi*x)*sin(pi*y)\""],
                         run_dir=run)
    metrics = train(cfg)
    assert metrics["test/rel_l2"] < 1e-4  # from a relative error of ~1 at the start
    checkpoint = next((run / "checkpoints").glob("epoch_*.ckpt"))
    module = HolModule.from_checkpoint(str(checkpoint))
    assert module.hparams["task"] == "pde"
    again = evaluate(compose_config([f"ckpt_path={checkpoint}"], "eval", tmp_path / "eval"))
    assert again["test/rel_l2"] == pytest.approx(metrics["test/rel_l2"], rel=1e-9)
    assert (tmp_path / "eval" / "solution.npz").is_file()
    other = evaluate(compose_config([f"ckpt_path={checkpoint}", "data=pde", "pde=poisson",
                                     "data.test_grid=[7,7]", "pde.forcing=\"-2*pi**2*sin(pi*x)*sin(pi*y)\"",
                                     "pde.exact=\"sin(pi*x)*sin(pi*y)\""], "eval", tmp_path / "other"))
    assert 0 < other["test/rel_l2"] < 1e-4 and other["test/rel_l2"] != again["test/rel_l2"]  # another grid
    assert np.load(tmp_path / "other" / "solution.npz")["points"].shape == (49, 2)


def test_refinement_stages_refine_a_pde_network_exactly(tmp_path):
    cfg = compose_config(["experiment=burgers", *TINY, "data.test_grid=[11,3]", "layer.n=3",
                          "refine=[{epochs: 1, n: 3, segments: 1},"
                          " {epochs: 1, n: 4, segments: 2, adapt: true}]"],
                         run_dir=tmp_path / "run")
    metrics = train(cfg)
    assert metrics["refine/val_loss_change"] < 1e-9 * (1 + metrics["stage0/test/loss"])
    assert {"stage0/test/rel_l2", "stage1/test/rel_l2", "stage1/parameters"} <= set(metrics)


@pytest.mark.slow
def test_new_collocation_points_every_epoch_only_when_asked():
    from hol.pde import Burgers

    def first_points(resample: bool, epoch: int) -> torch.Tensor:
        data = PDEDataModule(Burgers(), interior=8, boundary=4, initial=4, resample=resample, seed=1)
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))["interior"]

    assert torch.equal(first_points(False, 0), first_points(False, 3))
    assert not torch.equal(first_points(True, 0), first_points(True, 3))
    assert torch.equal(first_points(True, 3), first_points(True, 3))  # a resumed epoch sees the same points
    # Lightning creates the first epoch's iterator, then sets the epoch (a run resumed at epoch 3)
    data = PDEDataModule(Burgers(), interior=8, boundary=4, initial=4, resample=True, seed=1)
    loader = data.train_dataloader()
    early = iter(loader)
    loader.sampler.set_epoch(3)
    assert torch.equal(next(early)["interior"], first_points(True, 3))


def test_residual_sampling_draws_later_epochs_where_the_network_fits_worst():
    from hol.pde import Poisson

    # u = 0 against a forcing peaked at (0.5, 0): the residual is the peak
    equation = Poisson(forcing="exp(-50*((x-0.5)**2+y**2))")
    data = PDEDataModule(equation, interior=400, boundary=4, sampling="residual", candidates=100_000,
                         density_constant=0.0, seed=1, dtype="float64")
    uniform = PDEDataModule(equation, interior=400, boundary=4, seed=1, dtype="float64")

    def points(module: PDEDataModule, epoch: int) -> torch.Tensor:
        loader = module.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))["interior"]

    assert torch.equal(points(data, 0), points(uniform, 0))  # the first epoch knows no network yet
    with pytest.raises(ValueError, match=r"data\.sampling=residual needs the network"):
        points(data, 1)
    data.model = lambda p: 0 * p[:, :1].square()
    later = points(data, 1)
    centre = torch.tensor([0.5, 0.0], dtype=torch.float64)
    assert (later - centre).norm(dim=-1).median() < 0.15  # a Gaussian of standard deviation 0.1 per axis
    assert (points(uniform, 1) - centre).norm(dim=-1).median() > 0.5
    assert torch.equal(later, points(data, 1))  # seeded: a resumed epoch draws the same points


def test_a_run_with_residual_sampling_hands_the_network_to_the_draws(tmp_path):
    cfg = compose_config(["experiment=burgers", *TINY, "data.test_grid=[11,3]", "trainer.max_epochs=2",
                          "data.sampling=residual", "data.candidates=256"], run_dir=tmp_path / "run")
    metrics = train(cfg)
    assert np.isfinite(metrics["test/rel_l2"])  # the second epoch drew by the residual (else ValueError)


@pytest.mark.parametrize("overrides, fragment, status", [
    (["experiment=poisson", "pde=heat"], "unknown pde 'heat'; allowed: burgers, euler, poisson", 2),
    (["experiment=poisson", "pde.forcing=\"sin(z)\""],
     "pde.forcing: bad expression 'sin(z)': the name 'z'", 1),
    (["experiment=sod", "pde.left=[0,0,1]"], "pde.left must have rho > 0 and p > 0, got [0, 0, 1]", 1),
    (["experiment=sod", "pde.right=[0.125,0,-1]"], "pde.right must have rho > 0 and p > 0", 1),
    (["experiment=sod", "pde.t_end=0"], "pde.t_end must be a number > 0, got 0", 1),
    (["experiment=burgers", "pde.t_end=-1"], "pde.t_end must be a number > 0, got -1", 1),
    (["experiment=sod", "pde.left=[1,-10,1]", "pde.right=[1,10,1]"], "vacuum is generated", 1),
    (["experiment=burgers", "data.sampling=rad"], "unknown data.sampling 'rad'; allowed: residual, uniform",
     1),
    (["experiment=burgers", "data.candidates=100"], "data.candidates must be an integer >= 8000", 1),
    (["experiment=burgers", "data.density_exponent=-1"], "data.density_exponent must be a number >= 0", 1),
    (["data=pde"], "data=pde needs an equation: choose pde=poisson, pde=burgers or pde=euler", 1),
    (["pde=poisson"], "pde=poisson is trained on its collocation points: add data=pde", 1),
    (["experiment=poisson", "model.normalization=batch_norm"], "is batch normalization", 1),
])
def test_bad_input_ends_with_one_line(in_tmp, capsys, overrides, fragment, status):
    code, out, err = run_main(["train", *overrides, *QUIET, "hydra.run.dir=run"], capsys)
    lines = [line for line in err.splitlines() if line]
    assert code == status and len(lines) == 1 and lines[0].startswith("hol train: error: ")
    assert fragment in err and "Traceback" not in err + out
    assert not (in_tmp / "run" / METRICS_FILE).exists()
    assert status == 2 or (in_tmp / "run" / FAILED_FILE).is_file()


@pytest.mark.slow
def test_a_bfgs_run_resumed_from_its_checkpoint_repeats_the_uninterrupted_run(tmp_path):
    """optimizer=bfgs keeps its inverse Hessian in the checkpoint (a tensor: Lightning loads strict data)."""
    # the preset's residual-drawn points (RAD) from the second epoch on, in float64
    common = ["experiment=burgers", *TINY, "optimizer=bfgs", "optimizer.max_iter=4", "data.test_grid=[11,3]",
              "logger=[]"]
    straight = train(compose_config([*common, "trainer.max_epochs=3"], run_dir=tmp_path / "straight"))
    train(compose_config([*common, "trainer.max_epochs=1"], run_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    matrix = torch.load(last, weights_only=True)["optimizer_states"][0]["state"][0]["inverse_hessian"]
    weights = sum(p.numel() for p in HolModule.from_checkpoint(str(last)).net.parameters())
    assert matrix.shape == (weights, weights) and matrix.dtype == torch.float64
    resumed = train(compose_config([*common, "trainer.max_epochs=3", f"ckpt_path={last}"],
                                   run_dir=tmp_path / "resumed"))
    # exactly: resumed in float32 weights, the run differed by 3e-5; with epoch 0's points in its first epoch
    # (uniform, not residual-drawn), by 3e-3
    assert resumed == straight and straight["test/rel_l2"] < 1
