"""The nevergrad sweeper (hydra/sweeper=nevergrad): parametrization parsing, search runs, failures, presets;
and the launcher configs."""
from __future__ import annotations

import math

import nevergrad as ng
import numpy as np
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from hol.runner.sweep import FAILED, OK
from hydra_plugins.hol_sweepers._batch import SweepConfigError
from hydra_plugins.hol_sweepers._parametrization import build_search_space
from hydra_plugins.hol_sweepers.nevergrad_sweeper import NevergradSweeper, objective
from tests.helpers.runs import TINY_XOR, compose_config, read_csv, run_hol, run_sweep_app

PARSER = OverridesParser.create()


def space(parametrization=None, arguments=()):
    return build_search_space(parametrization or {}, list(arguments), PARSER)


def samples(search_space, key, count=400, seed=0):
    """``count`` random values of one dimension, and the override text of each."""
    parameter = search_space.parametrization(seed)
    values, overrides = [], []
    for _ in range(count):
        child = parameter.sample()
        values.append(search_space.values(child)[key])
        overrides.append(next(o for o in search_space.overrides(child) if o.startswith(f"{key}=")))
    return values, overrides


def parsed_value(override: str):
    """What Hydra makes of an override the sweeper wrote: the round trip must give the sampled value."""
    return PARSER.parse_override(override).value()


# ---- parametrization ---------------------------------------------------------------------------------------

def test_interval_is_a_bounded_float():
    s = space({"opt.lr": "interval(0.1, 2)"})
    assert isinstance(s.dimensions["opt.lr"].parameter, ng.p.Scalar)
    values, overrides = samples(s, "opt.lr")
    assert all(isinstance(v, float) and 0.1 <= v <= 2 for v in values)
    assert max(values) - min(values) > 1.5  # spread over the interval
    assert [parsed_value(o) for o in overrides] == values


def test_int_interval_gives_every_integer_in_bounds():
    s = space(arguments=["layer.n=int(interval(2, 6))"])
    values, overrides = samples(s, "layer.n")
    assert all(type(v) is int for v in values)
    assert set(values) == {2, 3, 4, 5, 6}
    assert overrides[0] == f"layer.n={values[0]}"


def test_log_interval_is_log_uniform():
    s = space({"optimizer.lr": "tag(log, interval(0.001, 0.1))"})
    assert isinstance(s.dimensions["optimizer.lr"].parameter, ng.p.Log)
    values, overrides = samples(s, "optimizer.lr", count=2000)
    values = np.array(values)
    assert values.min() >= 0.001 and values.max() <= 0.1
    # log-uniform on [1e-3, 1e-1]: P(v < 10^-2) = 1/2, P(v < 10^-2.5) = 1/4 (a uniform law would give
    # ~0.09, ~0.02)
    assert abs((values < 1e-2).mean() - 0.5) < 0.05
    assert abs((values < 10**-2.5).mean() - 0.25) < 0.05
    assert all(parsed_value(o) == v for o, v in zip(overrides[:50], values[:50], strict=True))


@pytest.mark.parametrize("spec", [["continuous", "discontinuous", "a b,c"],
                                  "choice(continuous,discontinuous,'a b,c')",
                                  "continuous,discontinuous,'a b,c'"])
def test_choices_from_a_list_or_the_override_grammar(spec):
    s = space({"layer": spec})
    assert isinstance(s.dimensions["layer"].parameter, ng.p.Choice)
    values, overrides = samples(s, "layer", count=200)
    assert set(values) == {"continuous", "discontinuous", "a b,c"}
    assert all(parsed_value(o) == v for o, v in zip(overrides, values, strict=True))  # 'a b,c' is escaped


def test_numeric_choices_keep_their_type_and_range_is_ordered():
    values, _ = samples(space({"layer.n": [2, 3, 4]}), "layer.n", count=100)
    assert set(values) == {2, 3, 4} and all(type(v) is int for v in values)
    s = space(arguments=["layer.segments=range(1,4)"])
    assert isinstance(s.dimensions["layer.segments"].parameter, ng.p.TransitionChoice)
    assert set(samples(s, "layer.segments", count=100)[0]) == {1, 2, 3}


def test_fixed_values_and_command_line_precedence():
    s = space({"x": 0.3, "layer.n": [2, 3], "name": "abc", "lr": "interval(0.1, 1)"},
              ["experiment=xor", "layer.n=4,5", "lr=0.5"])
    assert list(s.dimensions) == ["layer.n"]
    assert s.fixed == {"x": "x=0.3", "name": "name=abc", "experiment": "experiment=xor", "lr": "lr=0.5"}
    assert set(samples(s, "layer.n", count=50)[0]) == {4, 5}  # the command line replaced the config's [2, 3]
    candidate = s.parametrization(0).sample()
    assert s.overrides(candidate)[:4] == ["x=0.3", "name=abc", "experiment=xor", "lr=0.5"]


@pytest.mark.parametrize("parametrization, arguments, message", [
    ({"lr": "interval(1, 1)"}, [], "needs lower < upper"),
    ({"lr": "tag(log, interval(0, 1))"}, [], "log interval needs lower > 0"),
    ({"lr": {"lower": 0, "upper": 1}}, [], "expected a list of choices or an override string"),
    ({"lr": []}, [], "list of choices is empty"),
    ({"lr": 0.1}, ["experiment=xor"], "nothing to tune"),
])
def test_bad_parametrization_is_one_clear_error(parametrization, arguments, message):
    with pytest.raises(SweepConfigError, match=message) as error:
        space(parametrization, arguments).parametrization(0)
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)


@pytest.mark.parametrize("optim, message", [
    ({"optimizer": "NoSuchOpt"}, "'NoSuchOpt' is not a nevergrad optimizer"),
    ({"budget": 0}, "budget must be an integer >= 1, got 0"),
    ({"num_workers": -1}, "num_workers must be an integer >= 1, got -1"),
])
def test_bad_optim_settings(optim, message):
    settings = OmegaConf.create({"optimizer": "NGOpt", "budget": 4, "num_workers": 2, "seed": 0,
                                 "maximize": False, **optim})
    sweeper = NevergradSweeper(optim=settings, parametrization=OmegaConf.create({}))
    with pytest.raises(SweepConfigError, match=message):
        sweeper._optimizer(space({"x": [1, 2]}).parametrization(0))


def test_objective_accepts_only_finite_numbers():
    assert objective(0.5) == 0.5 and objective(3) == 3.0 and objective(np.float32(0.25)) == 0.25
    for bad in (None, True, "0.1", float("nan"), float("inf"), -math.inf, [1.0]):
        assert objective(bad) is None


# ---- sweeps with the tiny app ------------------------------------------------------------------------------

def results_and_rows(sweep):
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    return results, read_csv(sweep / "summary.csv")


def row_params(row) -> dict:
    """The values of the overrides shown in a summary row (those that vary across the sweep)."""
    return {o.split("=")[0]: parsed_value(o) for o in row["overrides"].split()}


def job_params(sweep, job) -> dict:
    """The values of all overrides the job ran with (saved by Hydra in the job's folder)."""
    overrides = OmegaConf.load(sweep / str(job) / ".hydra" / "overrides.yaml")
    return {o.split("=")[0]: parsed_value(o) for o in overrides}


@pytest.mark.slow
def test_nevergrad_sweep_best_is_the_best_trial(sweep_app, tmp_path):
    done = run_sweep_app(sweep_app, tmp_path / "sweep", "shape=square", config_name="nevergrad")
    assert done.returncode == 0, done.stderr
    results, rows = results_and_rows(tmp_path / "sweep")
    assert len(rows) == 6 and all(r["status"] == OK for r in rows)
    assert [r["overrides"].split()[0] for r in rows] != [rows[0]["overrides"].split()[0]] * 6  # it searched
    values = [float(r["result"]) for r in rows]
    best = min(range(6), key=values.__getitem__)
    assert results.best_evaluated_result == values[best] and results.best_job == best
    ran_with = job_params(tmp_path / "sweep", best)
    assert {k: ran_with[k] for k in ("x", "y")} == dict(results.best_evaluated_params)
    x, y = results.best_evaluated_params.x, results.best_evaluated_params.y
    assert -1 <= x <= 1 and y in (0, 1) and results.best_evaluated_result == pytest.approx((x - 0.3) ** 2 + y)
    assert ((results.optimizer, results.budget, results.num_failed, results.maximize)
            == ("OnePlusOne", 6, 0, False))
    assert "shape=square" in results.best_overrides  # fixed overrides reach every job


@pytest.mark.slow
def test_nevergrad_failed_trials_count_as_worst_and_the_search_goes_on(sweep_app, tmp_path):
    """Jobs 0 and 3 raise, job 4 returns NaN: all three are failed trials; the budget is still spent."""
    sweep = tmp_path / "sweep"
    done = run_sweep_app(sweep_app, sweep, "fail_jobs=[0,3]", "nan_jobs=[4]", "exit_jobs=[]",
                         config_name="nevergrad")
    assert done.returncode == 1, done.stderr  # as a grid sweep with a failed job, after the results
    assert (f"3 of 6 jobs failed (first: job #0, ValueError: job 0 fails on purpose); see "
            f"{sweep / 'summary.md'}; the best of the others is in {sweep / 'optimization_results.yaml'}"
            ) in done.stderr
    assert "Warning" not in done.stderr  # the loss told for failures is one nevergrad takes as it is
    results, rows = results_and_rows(sweep)
    assert [r["status"] for r in rows] == [FAILED, OK, OK, FAILED, FAILED, OK]
    assert rows[0]["error"] == "ValueError: job 0 fails on purpose"
    assert rows[4]["error"] == "objective is not a finite number: nan"
    ok = [r for r in rows if r["status"] == OK]
    assert results.num_failed == 3
    assert results.best_evaluated_result == min(float(r["result"]) for r in ok)
    assert str(results.best_job) in [r["job"] for r in ok]


@pytest.mark.slow
def test_nevergrad_maximize_and_seed_reproducibility(sweep_app, tmp_path):
    overrides = ["hydra.sweeper.optim.maximize=true", "hydra.sweeper.optim.budget=4", "x=0.2,0.3,0.9"]
    runs = [run_sweep_app(sweep_app, tmp_path / name, *overrides, config_name="nevergrad")
            for name in ("a", "b")]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    (results, rows), (_, rows_b) = results_and_rows(tmp_path / "a"), results_and_rows(tmp_path / "b")
    assert [r["overrides"] for r in rows] == [r["overrides"] for r in rows_b]  # same seed, same trials
    assert results.best_evaluated_result == max(float(r["result"]) for r in rows)
    assert all(row_params(r)["x"] in (0.2, 0.3, 0.9) for r in rows)  # the command line's choices


@pytest.mark.slow
def test_nevergrad_all_trials_failed_is_an_error(sweep_app, tmp_path):
    done = run_sweep_app(sweep_app, tmp_path / "sweep", "fail_at=0.5", "x=0.5", "y=0,1",
                         "hydra.sweeper.optim.budget=2", config_name="nevergrad")
    assert done.returncode == 1
    assert "no trial succeeded: 2 of 2 jobs failed" in done.stderr
    assert not (tmp_path / "sweep" / "optimization_results.yaml").exists()
    assert [r["status"] for r in read_csv(tmp_path / "sweep" / "summary.csv")] == [FAILED, FAILED]


# ---- presets and launchers of hol train --------------------------------------------------------------------

def compose_train(*overrides):
    return compose_config(list(overrides), return_hydra_config=True)


def test_nevergrad_preset_tunes_keys_of_experiment_xor():
    cfg = compose_train("experiment=xor", "hparams_search=nevergrad")
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hol_sweepers.nevergrad_sweeper.NevergradSweeper"
    assert cfg.optimized_metric == "val/loss_best"
    s = space(sweeper.parametrization)
    assert set(s.dimensions) == {"optimizer.lr", "layer.n", "layer.segments"}
    for key in s.dimensions:
        assert OmegaConf.select(cfg, key) is not None, key  # a real key of the composed config
    assert isinstance(s.dimensions["optimizer.lr"].parameter, ng.p.Log)


def test_vae_preset_tunes_integer_orders_and_a_log_learning_rate_on_the_validation_loss():
    cfg = compose_train("experiment=vae", "hparams_search=vae_nevergrad")
    assert cfg.optimized_metric == "val/loss_best" and not cfg.hydra.sweeper.optim.maximize
    s = space(cfg.hydra.sweeper.parametrization)
    assert set(s.dimensions) == {"optimizer.lr", "layer.n", "layer.segments"}
    assert isinstance(s.dimensions["optimizer.lr"].parameter, ng.p.Log)
    for key, (low, high) in (("layer.n", (2, 5)), ("layer.segments", (1, 4))):
        assert OmegaConf.select(cfg, key) is not None, key
        values, _ = samples(s, key, count=200)
        assert set(values) == set(range(low, high + 1)), key  # integers, every one reached


def test_grid_sweeps_default_to_hol_basic():
    target = compose_train().hydra.sweeper._target_
    assert target == "hydra_plugins.hol_sweepers.basic_sweeper.HolBasicSweeper"


@pytest.mark.parametrize("launcher, target, key, value", [
    ("parallel", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs", 3),
    ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", "partition", "gpu"),
])
def test_launcher_configs_compose(launcher, target, key, value, in_tmp):
    """Composition only: the plugins are optional extras and a SLURM cluster is absent here. (In a temporary
    folder: resolving the submitit folder creates the sweep folder it names.)"""
    cfg = compose_train("experiment=xor", f"hydra/launcher={launcher}", f"hydra.launcher.{key}={value}")
    assert cfg.hydra.launcher._target_ == target
    assert cfg.hydra.launcher[key] == value
    assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher
    if launcher == "slurm":
        assert cfg.hydra.launcher.timeout_min == 60
        assert cfg.hydra.launcher.submitit_folder.endswith("/.submitit/%j")


@pytest.mark.slow
def test_hol_train_nevergrad_on_xor(tmp_path):
    """The real CLI: hparams_search=nevergrad with budget 3 on a tiny XOR run."""
    sweep = tmp_path / "sweep"
    done = run_hol(tmp_path, "train", "-m", *TINY_XOR, "hparams_search=nevergrad",
                   "hydra.sweeper.optim.budget=3", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 0, done.stderr[-2000:]
    results, rows = results_and_rows(sweep)
    assert len(rows) == 3 and all(r["status"] == OK for r in rows)
    assert results.optimized_metric == "val/loss_best"
    assert results.best_evaluated_result == min(float(r["val/loss_best"]) for r in rows)
    assert set(results.best_evaluated_params) == {"optimizer.lr", "layer.n", "layer.segments"}
    assert 0.001 <= results.best_evaluated_params["optimizer.lr"] <= 0.3
    assert results.best_evaluated_params["layer.n"] in (2, 3, 4, 5)
