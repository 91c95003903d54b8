"""The ``hol`` command line: bad input gives one line on stderr and a non-zero exit, never a traceback."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from hol.runner.cli import config_dir, main
from hol.runner.records import FAILED_FILE, METRICS_FILE
from hol.runner.stages import optimizer_names, resolve_optimizer
from tests.helpers.runs import QUIET, TINY_DATA, run_hol

FAST = [*QUIET, *TINY_DATA, "trainer.max_epochs=1"]


def run_main(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


@pytest.mark.parametrize("override, fragment", [
    ("layer=foo", "unknown layer 'foo'; allowed: continuous, continuous_prod, discontinuous"),
    ("model=foo", "unknown model 'foo'; allowed: conv, mlp, vae"),
    ("data=foo", "unknown data 'foo'; allowed: cifar100, function, image, mnist, pde, xor"),
    ("optimizer=foo", "unknown optimizer 'foo'; allowed: adam, adamw, bfgs, lbfgs, lion, sgd"),
    ("experiment=foo", "unknown experiment 'foo'; allowed: burgers, cifar100, formula, function"),
    ("foo=1", "unknown config key 'foo'"),
    ("data.expr=sin(x)", "Error parsing override 'data.expr=sin(x)'"),
    ("layer.nn=3",
     "unknown config key 'layer.nn'; allowed keys: alpha, backend, bias, dims, extrapolation, init, kind"),
    ("layer.n=abc", "layer.n=abc"),
])
def test_composition_errors(in_tmp, capsys, override, fragment):
    code, out, err = run_main(["train", override], capsys)
    assert code == 2
    assert error_lines(err) == [line for line in err.splitlines() if line]
    assert len(error_lines(err)) == 1 and err.startswith("hol train: error: ")
    assert fragment in err and "Traceback" not in err + out
    assert not (in_tmp / "outputs").exists()  # nothing was started


@pytest.mark.parametrize("overrides, fragment", [
    (["layer.n=1"], "n must be an integer >= 2 for piecewise kinds, got 1"),
    (["layer.segments=0"], "model: segments must be an integer >= 1, got 0"),
    (["+model.foo=1"], "model: unknown layer option(s) foo; allowed: n, segments"),
    (["+layer.colour=red"], "model: unknown layer option(s) colour; allowed: n, segments"),
    (["layer.extrapolation=wild"],
     "unknown extrapolation 'wild'; allowed: clamp, linear, mirror, polynomial"),
    (["model.normalization=foo"], "unknown normalization 'foo'; allowed: batch_norm"),
    (["optimizer.lr=-1"], "optimizer.lr must be a number >= 0, got -1"),
    (["trainer.max_epochs=-3"], "trainer.max_epochs must be an integer >= 0, got -3"),
    (["data.batch_size=0"], "data.batch_size must be an integer >= 1, got 0"),
    (["data.expr='x > 1'"], "bad expression 'x > 1': Compare"),
    (["data.expr=\"__import__('os').getcwd()\""], "is not allowed; allowed: numbers, the variables, pi, e"),
    (["data.expr='log(x)'"], "data.expr 'log(x)' is not finite at x="),
    (["data.expr=a", "data.variables={a:[0,1],b:[0,1]}"], "data.variables: b not used by data.expr 'a'"),
    (["data.expr=a", "data.variables={a:[1,1]}"], "data.variables.a must be a pair"),
    (["ckpt_path=missing.ckpt"], "ckpt_path 'missing.ckpt' is not a file"),
    (["layer=polynomial", "layer.segments=4"],
     "layer.segments=4 has no effect: no layer of this network takes segments (layer kinds: polynomial)"),
    (["layer=relu", "layer.n=4"],
     "layer.n=4 has no effect: no layer of this network takes n (layer kinds: relu)"),
    (["data=mnist", "data.root=nowhere", "data.download=false"],
     "MNIST files not found (data.download=false): expected the files train-images-idx3-ubyte"),
])
def test_bad_values_fail_early_with_one_line(in_tmp, capsys, overrides, fragment):
    code, out, err = run_main(["train", *overrides, "hydra.run.dir=run"], capsys)
    assert code == 1
    assert len(error_lines(err)) == 1 and err.startswith("hol train: error: ")
    assert fragment in err and "Traceback" not in err + out
    assert (in_tmp / "run" / FAILED_FILE).is_file() and not (in_tmp / "run" / METRICS_FILE).exists()


def test_a_gpu_trainer_without_a_gpu_names_the_cpu_trainer(in_tmp, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    code, out, err = run_main(["train", "experiment=xor", "trainer=gpu", "hydra.run.dir=run"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "Traceback" not in err + out
    assert "trainer.accelerator='gpu' needs a GPU, and torch sees none here" in err
    assert err.rstrip().endswith("run on the CPU with trainer=cpu")
    assert (in_tmp / "run" / FAILED_FILE).is_file() and not (in_tmp / "run" / METRICS_FILE).exists()
    (in_tmp / "model.ckpt").write_bytes(b"")  # checked before the checkpoint is read
    code, out, err = run_main(["eval", "ckpt_path=model.ckpt", "trainer=gpu", "hydra.run.dir=eval"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "needs a GPU, and torch sees none here" in err


def test_a_run_stopped_by_sigterm_exits_with_its_status(in_tmp, capsys, monkeypatch):
    """Lightning stops a run on SIGTERM with a SystemExit that carries no status (0): hol exits 143
    (128 + SIGTERM) with one line, so a scheduler does not count the run as finished."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from hol.runner import train

    def stopped(cfg):
        raise SIGTERMException

    monkeypatch.setattr(train, "train", stopped)
    code, out, err = run_main(["train", "experiment=xor", "hydra.run.dir=run"], capsys)
    assert code == 143 and len(error_lines(err)) == 1 and "Traceback" not in err + out
    assert err.startswith("hol train: error: stopped by SIGTERM; the run folder ")
    assert (in_tmp / "run" / FAILED_FILE).read_text().startswith("SIGTERMException")
    code, out, err = run_main(["train", "experiment=formula", "hydra.run.dir=formula"], capsys)
    assert code == 143 and len(error_lines(err)) == 1  # a run with candidates resumes one of them alone
    assert err.startswith("hol train: error: stopped by SIGTERM; the candidates' folders candidate<i>/ of ")
    assert "(resume one alone with hol train --config-path " in err
    assert "/candidate<i>/.hydra' --config-name config" in err
    assert "/candidate<i>/checkpoints/last.ckpt'" in err


@pytest.mark.parametrize("command", ["train", "eval"])
def test_a_file_that_is_no_checkpoint_is_named_in_one_line(command, in_tmp, capsys):
    files = {"empty.ckpt": b"", "text.ckpt": b"root:x:0:0:root:/root:/bin/bash\n"}
    for name, content in files.items():
        (in_tmp / name).write_bytes(content)
    torch.save({"a": torch.zeros(2)}, in_tmp / "plain.ckpt")
    unreadable = "is no readable checkpoint ("
    no_state = "is no Lightning checkpoint (it holds no state_dict)"
    for name, fragment in (("empty.ckpt", unreadable), ("text.ckpt", unreadable), ("plain.ckpt", no_state)):
        arguments = [command, f"ckpt_path={name}", f"hydra.run.dir=run_{name}"]  # each run its own folder
        code, out, err = run_main([*arguments, "experiment=xor"] if command == "train" else arguments, capsys)
        assert code == 1 and len(error_lines(err)) == 1 and "Traceback" not in err + out, err
        assert f"ckpt_path '{name}' {fragment}" in err


def test_a_sweep_names_an_optimized_metric_its_runs_lack(in_tmp, capsys):
    code, out, err = run_main(["train", "-m", *FAST, "logger=[]", "optimized_metric=foo/bar", "layer.n=2",
                               "hydra.sweep.dir=sweep"], capsys)
    assert code == 1 and "Traceback" not in err + out
    assert "optimized_metric 'foo/bar' is none of this run's metrics; allowed: test/loss, test/rmse" in err


def test_version_and_the_report_names_only_the_logs_written(in_tmp, capsys):
    import hol

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"hol {hol.__version__}\n"
    main(["train", *FAST, "logger=csv", "hydra.run.dir=run"])
    out = capsys.readouterr().out
    assert "Results in" in out and "TensorBoard" not in out  # a CSV logger writes no TensorBoard events


def test_corrupt_data_file(in_tmp, capsys, mnist_root):
    (mnist_root / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00")
    code, _, err = run_main(["train", "data=mnist", f"data.root={mnist_root}", "data.download=false",
                             "hydra.run.dir=run"], capsys)
    assert code == 1 and "cannot read MNIST" in err and len(error_lines(err)) == 1


def test_unknown_command_and_usage(capsys):
    code, _, err = run_main(["fit"], capsys)
    assert code == 2 and "unknown command 'fit'; allowed: train, eval" in err
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and "hol train" in out and "hol eval" in out


@pytest.mark.parametrize(("launcher", "extra"), [("parallel", "joblib"), ("slurm", "slurm")])
def test_a_launcher_plugin_that_is_not_installed_names_the_extra(in_tmp, capsys, launcher, extra):
    code, out, err = run_main(["train", "-m", f"hydra/launcher={launcher}", "layer.n=2,3", *FAST], capsys)
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err + out
    assert err.startswith("hol train: error: the Hydra plugin hydra_plugins.") and "is not installed" in err
    assert err.rstrip().endswith(f"pip install 'hol[{extra}]'")


@pytest.mark.slow
def test_resuming_with_another_network_is_refused(in_tmp, capsys):
    main(["train", *FAST, "hydra.run.dir=run"])
    last = in_tmp / "run" / "checkpoints" / "last.ckpt"
    code, _, err = run_main(["train", *FAST, "layer=discontinuous", "model.hidden_width=7",
                             f"ckpt_path={last}", "hydra.run.dir=resumed"], capsys)
    assert code == 1 and len(err.splitlines()) == 1
    assert "ckpt_path: the run resumes the checkpoint's network" in err
    assert "layer.kind 'discontinuous' (the checkpoint's: 'continuous')" in err
    assert "model.hidden_width 7 (the checkpoint's: 20)" in err
    main(["train", *FAST, "trainer.max_epochs=2", f"ckpt_path={last}", "hydra.run.dir=again"])  # the same
    assert (in_tmp / "again" / METRICS_FILE).is_file()


def test_train_and_eval_commands(in_tmp, capsys):
    main(["train", *FAST, "hydra.run.dir=run"])
    out = capsys.readouterr().out
    metrics = json.loads((in_tmp / "run" / METRICS_FILE).read_text())
    assert "tensorboard --logdir" in out and f"{metrics['test/rmse']:.6g}" in out
    main(["eval", f"ckpt_path={in_tmp / 'run' / 'checkpoints' / 'last.ckpt'}", "hydra.run.dir=eval",
          "+trainer.enable_progress_bar=false"])
    evaluated = json.loads((in_tmp / "eval" / METRICS_FILE).read_text())
    assert evaluated == {"run/status": "finished", "test/loss": evaluated["test/loss"],
                         "test/rmse": evaluated["test/rmse"]}


def test_multirun_runs_every_combination(in_tmp, capsys):
    main(["train", "-m", *FAST, "logger=[]", "layer=continuous,discontinuous", "layer.n=2,3",
          "hydra.sweep.dir=sweep"])
    finished = sorted(path.parent.name for path in (in_tmp / "sweep").glob("*/" + METRICS_FILE))
    assert finished == ["0", "1", "2", "3"]


@pytest.mark.slow
def test_console_process_help_lists_the_config_groups(tmp_path):
    result = run_hol(tmp_path, "train", "--help")
    assert result.returncode == 0
    for group in ("layer:", "model:", "data:", "optimizer:", "trainer:", "logger:", "callbacks:",
                  "experiment:"):
        assert group in result.stdout
    assert "continuous, continuous_prod" in result.stdout and "invariant_mnist" in result.stdout


@pytest.mark.slow
def test_console_process_bad_input_has_no_traceback_unless_asked(tmp_path):
    result = run_hol(tmp_path, "train", "data.batch_size=0")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "hol train: error: data.batch_size must be an integer >= 1, got 0")
    assert "Traceback" not in result.stderr + result.stdout
    full = run_hol(tmp_path, "train", "data.batch_size=0", env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode != 0 and "Traceback" in full.stderr and "data.batch_size must be" in full.stderr


def test_config_dir_of_a_source_tree_that_is_not_installed(monkeypatch):
    """Run from a checkout on PYTHONPATH (no package ``hol.conf``): the checkout's ``conf/`` is the config
    folder, for composing and for the optimizers a refinement stage may name."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "hol.conf" else find_spec(name, *args))
    folder = Path(config_dir())
    assert folder == Path(__file__).resolve().parents[2] / "conf"
    assert (folder / "train.yaml").is_file() and (folder / "experiment" / "vae.yaml").is_file()
    assert "lbfgs" in optimizer_names() and resolve_optimizer("lbfgs", None)["_target_"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "bfgs"])
def test_quasi_newton_with_gradient_accumulation_is_refused_in_one_line(in_tmp, capsys, optimizer):
    """(L-)BFGS re-evaluates one batch's loss many times per step: gradients accumulated from earlier batches
    would join each evaluation (the run went to NaN, reported as a learning rate too large)."""
    code, out, err = run_main(["train", "experiment=xor", *FAST, "logger=[]", f"optimizer={optimizer}",
                               "+trainer.accumulate_grad_batches=3"], capsys)
    assert code == 1 and len(error_lines(err)) == 1 and "Traceback" not in err + out, err
    assert err.strip() == (f"hol train: error: optimizer={optimizer} cannot accumulate gradients over "
                           "batches (trainer.accumulate_grad_batches=3): it evaluates one batch's loss many "
                           "times per step; use one larger batch instead (data.batch_size, null for the full "
                           "data set)")


@pytest.mark.parametrize(("override", "fragment"), [
    ("ckpt_path=outputs/function/runs/<run>/checkpoints/last.ckpt",
     "<run> is a placeholder of the documentation; put the name it stands for there"),
    ("hydra.run.dir=a&b", "'&' is read only inside quotes; write it as 'hydra.run.dir=\"a&b\"'"),
    ("data.expr=x^2", "'^' is read only inside quotes; write it as 'data.expr=\"x^2\"'"),
])
def test_an_override_hydra_cannot_read_says_why_in_one_line(in_tmp, capsys, override, fragment):
    # before: Hydra's lexer error and a hint about parentheses, spaces and commas, none of which was the cause
    code, _, err = run_main(["train", override], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and fragment in err
