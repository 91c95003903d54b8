"""``hol symbolic``: a trained network read as a formula, through the command (hol.runner.symbolic)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import sympy
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from hol.runner.cli import main
from hol.runner.records import METRICS_FILE
from hol.runner.symbolic import RESULT_FILE
from hol.symbolic import evaluate, parse_formula
from tests.helpers.runs import QUIET

LADDER = "refine=[{epochs: 1, n: 4, segments: 2}, {epochs: 1, n: 5, segments: 4, adapt: true}]"
SHORT_FUNCTION_2D = ["experiment=function_2d", *QUIET, "logger=[]", "data.train_size=300", "data.val_size=50",
                     "data.test_size=300", LADDER, "optimizer.max_iter=100"]
"""pykan's exp(sin(pi x) + y**2) on a [2, 1, 1] network, two short stages of L-BFGS."""


def _strict(text: str) -> dict:
    def refuse(constant):
        raise ValueError(f"non-finite number {constant} in strict JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The checkpoint of a short function_2d run."""
    run = tmp_path_factory.mktemp("function_2d") / "run"
    main(["train", *SHORT_FUNCTION_2D, f"hydra.run.dir={run}"])
    return run / "checkpoints" / "last.ckpt"


def test_the_formula_of_a_trained_network_is_written_beside_its_checkpoint(trained, tmp_path, capsys):
    main(["symbolic", f"ckpt_path={trained}", f"hydra.run.dir={tmp_path / 'symbolic'}"])
    printed = capsys.readouterr().out
    result = _strict((trained.parent.parent / RESULT_FILE).read_text())
    assert result["variables"] == ["x", "y"] and f"formula: {result['formula']}" in printed
    expression = parse_formula(result["formula"], ["x", "y"])
    assert {str(symbol) for symbol in expression.free_symbols} <= {"x", "y"}
    # the recorded RMSE is the parsed formula's own on the test data (data rebuilt from its seed)
    x, y = torch.rand(2, 2000, dtype=torch.float64) * 2 - 1
    target = torch.exp(torch.sin(math.pi * x) + y**2)
    formula_values = evaluate(expression, ["x", "y"], torch.stack([x, y], -1))
    assert (formula_values - target).abs().max() < 1e-2  # the target's shape, from a short training
    assert result["rmse"] <= 1e-2 and result["network_rmse"] <= 1e-2
    assert [(link["layer"], link["output"], link["input"]) for link in result["links"]] == [
        (0, 0, 0), (0, 0, 1), (1, 0, 0)]
    assert all(0 <= link["r2"] <= 1 for link in result["links"])
    metrics = _strict((tmp_path / "symbolic" / METRICS_FILE).read_text())
    assert metrics["symbolic/rmse"] == result["rmse"]
    events = EventAccumulator(str(trained.parent.parent / "tensorboard" / "symbolic"))
    events.Reload()
    images = events.Tags()["images"]
    assert set(images) == {"symbolic/layer0", "symbolic/layer1"}


def test_links_no_candidate_fits_are_named_with_their_r2_and_no_formula_is_written(trained, tmp_path, capsys):
    main(["symbolic", f"ckpt_path={trained}", f"hydra.run.dir={tmp_path / 'symbolic'}", "library=[x]"])
    result = _strict((trained.parent.parent / RESULT_FILE).read_text())
    assert result["formula"] is None and result["rmse"] is None
    numeric = {(link["layer"], link["input"]) for link in result["numeric_links"]}
    assert numeric == {(0, 0), (0, 1), (1, 0)}  # sin(pi x), y**2 and exp are no lines
    assert all(link["r2"] < 0.999 for link in result["numeric_links"])
    assert "no formula: 3 link(s) fit no candidate well enough" in capsys.readouterr().out


@pytest.mark.parametrize(("override", "message"), [
    ("prune.threshold=-1", "prune.threshold must be"),
    ("library=[nope]", "'nope'"),
    ("ckpt_path=missing.ckpt", "ckpt_path must name a checkpoint file"),
])
def test_bad_input_is_one_line(trained, tmp_path, capsys, override, message):
    with pytest.raises(SystemExit) as stopped:
        main(["symbolic", f"ckpt_path={trained}", f"hydra.run.dir={tmp_path / 'symbolic'}", override])
    assert stopped.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("hol symbolic: error: ") and message in error and error.count("\n") == 1


@pytest.mark.slow
def test_pykans_example_is_recovered_exactly_by_the_preset(tmp_path):
    """The issue's target: the formula of the function_2d preset's network is exp(sin(pi x) + y**2) up to
    constants within 1e-6, and its test RMSE at most the network's."""
    run = tmp_path / "run"
    main(["train", "experiment=function_2d", *QUIET, "logger=[]", f"hydra.run.dir={run}"])
    main(["symbolic", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"hydra.run.dir={tmp_path / 's'}"])
    result = _strict((run / RESULT_FILE).read_text())
    expression = parse_formula(result["formula"], ["x", "y"])
    x, y = torch.meshgrid(torch.linspace(-1, 1, 101, dtype=torch.float64), torch.linspace(-1, 1, 101,
                          dtype=torch.float64), indexing="ij")
    values = evaluate(expression, ["x", "y"], torch.stack([x.flatten(), y.flatten()], -1))
    assert (values - torch.exp(torch.sin(math.pi * x.flatten()) + y.flatten() ** 2)).abs().max() < 1e-6
    assert result["rmse"] <= result["network_rmse"]
    assert sympy.count_ops(expression) <= 12  # a few constants around exp, sin and a square
