"""Candidates (hol.runner.candidates): variants of a run trained in turn, the lowest validation loss kept."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from hol.runner.candidates import parse_candidates, train_candidates, validation_score
from hol.runner.cli import main
from hol.runner.divergence import Divergence, RunDiverged
from hol.runner.records import METRICS_FILE, write_json
from hol.runner.widths import resolve_widths
from tests.helpers.runs import QUIET, TINY_XOR, compose_config

FORMULA = ["experiment=formula", 'data.expr="x*y + sin(z)"', "data.variables={x:[0,1],y:[-1,1],z:[0,2]}",
           "data.train_size=64", "data.val_size=32", "data.test_size=32", "optimizer.max_iter=5",
           "trainer.num_sanity_val_steps=0", "callbacks.plots=null", "logger=csv",
           "refine=[{epochs: 1, n: 3, segments: 2}, {epochs: 1, n: 4, segments: 2, adapt: true}]"]


def test_widths_written_in_d_are_computed_for_the_number_of_inputs():
    assert resolve_widths(["d", "2d+1", "2 * d - 1", "d+0", 4], 3) == [3, 7, 5, 3, 4]
    assert resolve_widths(None, 3) is None
    with pytest.raises(ValueError, match=r"model.widths\[1\]='e': a width is a positive integer or written"):
        resolve_widths(["d", "e"], 3)
    with pytest.raises(ValueError, match=r"model.widths\[0\]='d-3' is 0 for d=3 inputs"):
        resolve_widths(["d-3"], 3)


def test_candidates_are_checked_against_the_config_and_the_command_line_before_any_trains():
    cfg = OmegaConf.create({"model": {"widths": None, "hidden_width": 20},
                            "layer": {"kind": "continuous", "n": 3}, "data": {"seed": 1},
                            "paths": {"output_dir": "run"}, "ckpt_path": None})
    assert parse_candidates(None, cfg) == [] and parse_candidates([], cfg) == []
    spec = OmegaConf.create([{}, {"model.widths": ["d", "d", 1]}])
    assert parse_candidates(spec, cfg) == [{}, {"model.widths": ["d", "d", 1]}]

    def refused(spec, match, command_line=()):
        with pytest.raises(ValueError, match=match):
            parse_candidates(spec, cfg, command_line)

    refused({"model.widths": [3]}, "candidates must list mappings")
    refused([{}, "x"], r"candidates\[1\] must map config keys to values, got 'x'")
    refused([{}, {"model.width": 3}],
            r"candidates\[1\] \{model.width: 3\}: 'model.width' is not a key of the config; model has: "
            r"widths, hidden_width$")
    refused([{}, {"layer": "discontinuous"}],
            r"candidates\[1\] \{layer: discontinuous\}: layer is a config node; a candidate sets values with "
            r"dotted keys, e.g. \{layer.kind")
    refused([{"paths.output_dir": "elsewhere"}], r"candidates\[0\] .*: paths.output_dir is the run's")
    refused([{"data.seed": 2}], r"data.seed is the run's, not a candidate's .* on its data\)")
    refused([{}, {"model.widths": ["d", "x"]}], r"model.widths\[1\]='x': a width is a positive integer")
    refused([{"layer.n": 4}, {"layer.n": 4}], r"candidates\[1\] \{layer.n: 4\} repeats candidates\[0\]")
    refused([{}, {"model.widths": [3]}], r"^model.widths is set on the command line and by candidates\[1\] "
             r"\{model.widths: \[3\]\} of the config, which would replace it; candidates=null trains",
             ["seed=1", "model.widths=[5]"])
    refused([{}, {"model.widths": [3]}], r"^model.hidden_width has no effect in candidates\[1\] .*, whose "
             r"model.widths sets every hidden width", ["model.hidden_width=10"])
    cfg.ckpt_path = "last.ckpt"
    refused([{}], r"ckpt_path=last\.ckpt resumes one network; set candidates=null")


def test_the_score_is_the_lowest_finite_validation_loss_of_a_finished_run():
    staged = {"run/status": "finished", "stage0/val/loss": 0.3, "stage1/val/loss": None,
              "stage2/val/loss": 0.2, "stage2/test/loss": 0.01, "val/loss_best": 0.1}
    assert validation_score(staged) == 0.2  # the stages' ends, whose tests the ladder reports
    assert validation_score({"run/status": "finished", "val/loss_best": 0.1}) == 0.1
    assert validation_score({"run/status": "finished", "val/loss_best": math.nan}) is None
    assert validation_score({**staged, "run/status": "diverged"}) is None


def fake_runs(scores: list[float | None]):
    """A ``train_one`` whose candidate ``i`` finishes with validation loss ``scores[i]`` (``None``:
    diverges), its test loss ``10 + i``."""
    def train_one(cfg):
        index = int(Path(cfg.paths.output_dir).name.removeprefix("candidate"))
        assert cfg.candidates is None and cfg.seed == 7
        folder = Path(cfg.paths.output_dir)
        if scores[index] is None:
            write_json(folder / METRICS_FILE, {"run/status": "diverged", "stage0/val/loss": 0.0})
            raise RunDiverged(Divergence(1, "val/loss", math.inf))
        metrics = {"stage0/val/loss": scores[index], "test/loss": 10.0 + index,
                   "model": cfg.model.hidden_width}
        write_json(folder / METRICS_FILE, {"run/status": "finished", **metrics})
        return metrics
    return train_one


def test_the_candidate_with_the_lowest_validation_loss_is_kept(tmp_path):
    cfg = OmegaConf.create({"seed": 7, "candidates": [], "model": {"hidden_width": 5},
                            "paths": {"output_dir": str(tmp_path)}})
    candidates = [{}, {"model.hidden_width": 9}, {"model.hidden_width": 3}]
    returned = train_candidates(cfg, candidates, fake_runs([0.5, None, 0.25]))
    assert {key: value for key, value in returned.items() if not key.endswith("/seconds")} == {
        "stage0/val/loss": 0.25, "test/loss": 12.0, "model": 3, "candidate/chosen": 2.0,
        "candidate0/val_score": 0.5, "candidate2/val_score": 0.25}  # for the printed results
    written = json.loads((tmp_path / METRICS_FILE).read_text())
    assert written["run/status"] == "finished" and written["candidate/chosen"] == 2
    assert written["test/loss"] == 12.0  # the chosen one's test, though candidate 0 tested lower
    assert [written[f"candidate{i}/val_score"] for i in range(3)] == [0.5, None, 0.25]
    assert all(written[f"candidate{i}/seconds"] >= 0 for i in range(3))


def test_the_log_says_what_each_candidate_is_and_which_was_kept(tmp_path, caplog):
    cfg = OmegaConf.create({"seed": 7, "model": {"hidden_width": 5}, "paths": {"output_dir": str(tmp_path)}})
    with caplog.at_level(logging.INFO, logger="hol.runner.candidates"):
        train_candidates(cfg, [{}, {"model.hidden_width": 9}, {"model.hidden_width": 3}],
                         fake_runs([0.5, None, 0.25]))
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == f"candidate 0 of 3 {{}}: training in {tmp_path / 'candidate0'}"
    assert lines[2].startswith("candidate 1 {model.hidden_width: 9} diverged, not kept: the run diverged")
    assert lines[-1] == ("kept candidate 2 {model.hidden_width: 3}, the lowest validation loss "
                         "(candidate 0: 0.5, candidate 1: diverged, candidate 2: 0.25)")


def test_a_user_error_in_a_candidate_names_it_and_a_bug_keeps_its_own_error(tmp_path):
    cfg = OmegaConf.create({"seed": 7, "model": {"hidden_width": 5}, "paths": {"output_dir": str(tmp_path)}})

    def fails(error):
        def train_one(sub):
            if sub.model.hidden_width == 9:
                raise error
            return fake_runs([0.5])(sub)
        return train_one

    with pytest.raises(ValueError, match=r"^candidates\[1\] \{model.hidden_width: 9\}: n must be an integer"):
        train_candidates(cfg, [{}, {"model.hidden_width": 9}], fails(ValueError("n must be\n an integer")))
    with pytest.raises(AttributeError, match=r"^a bug$"):
        train_candidates(cfg, [{}, {"model.hidden_width": 9}], fails(AttributeError("a bug")))


def test_a_run_whose_every_candidate_diverges_is_recorded_as_diverged(tmp_path):
    cfg = OmegaConf.create({"seed": 7, "model": {"hidden_width": 5}, "paths": {"output_dir": str(tmp_path)}})
    with pytest.raises(RunDiverged, match="epoch 1"):
        train_candidates(cfg, [{}, {"model.hidden_width": 9}], fake_runs([None, None]))
    assert json.loads((tmp_path / METRICS_FILE).read_text())["run/status"] == "diverged"


def test_each_candidate_computes_what_its_run_alone_computes(in_tmp):
    """The formula preset with two candidates of its own choosing: each candidate's folder holds exactly the
    metrics of the run made alone with its values (bit for bit); the run's metrics are the chosen one's."""
    candidates = "candidates=[{},{model.widths:[d,2,1]}]"
    main(["train", *QUIET, *FORMULA, candidates, "hydra.run.dir=run"])
    main(["train", *QUIET, *FORMULA, "candidates=null", "model.widths=[d,2,1]", "hydra.run.dir=alone"])
    metrics = json.loads((in_tmp / "run" / METRICS_FILE).read_text())
    alone = json.loads((in_tmp / "alone" / METRICS_FILE).read_text())
    second = json.loads((in_tmp / "run" / "candidate1" / METRICS_FILE).read_text())
    assert second == alone and alone["stage1/parameters"] == (3 * 3 + 3 * 2 + 2 + 1) * 7
    first = json.loads((in_tmp / "run" / "candidate0" / METRICS_FILE).read_text())
    assert first["stage1/parameters"] == (3 * 7 + 7) * 7  # the preset's d -> 2d + 1 -> 1
    scores = [validation_score(first), validation_score(second)]
    chosen = scores.index(min(scores))
    assert metrics["candidate/chosen"] == chosen
    assert metrics == {**[first, second][chosen], "candidate/chosen": chosen,
                       **{f"candidate{i}/val_score": scores[i] for i in range(2)},
                       **{f"candidate{i}/seconds": metrics[f"candidate{i}/seconds"] for i in range(2)}}
    net = torch.load(in_tmp / "run" / "candidate1" / "checkpoints" / "last.ckpt", weights_only=False)
    assert net["net_hparams"]["widths"] == [3, 2, 1]
    main(["train", "--config-path", str(in_tmp / "run" / "candidate1" / ".hydra"), "--config-name", "config",
          "hydra.run.dir=again"])  # the candidate's saved config trains it alone
    assert json.loads((in_tmp / "again" / METRICS_FILE).read_text()) == second
    link = in_tmp / "run" / "checkpoints"  # the kept candidate's, for hol eval and hol symbolic
    assert link.is_symlink() and link.resolve() == (in_tmp / "run" / f"candidate{chosen}" / "checkpoints")


def test_a_run_with_candidates_is_replaced_whole_or_not_at_all(in_tmp, capsys):
    xor = [*TINY_XOR, "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0"]
    main(["train", *xor, "candidates=[{},{layer.n:3}]", "hydra.run.dir=run"])
    run = in_tmp / "run"
    assert (run / "checkpoints").is_symlink() and (run / "candidate1" / METRICS_FILE).is_file()
    with pytest.raises(SystemExit):
        main(["train", *xor, "hydra.run.dir=run"])
    assert capsys.readouterr().err.strip().endswith(
        "the folder run holds another run's results (metrics.json, checkpoints, candidate0, candidate1); "
        "choose another with hydra.run.dir=... or replace them with overwrite=true")
    main(["train", *xor, "hydra.run.dir=run", "overwrite=true"])
    assert not (run / "checkpoints").is_symlink() and (run / "checkpoints" / "last.ckpt").is_file()
    assert not list(run.glob("candidate*")) and "candidate/chosen" not in (run / METRICS_FILE).read_text()


def test_a_candidate_may_not_silently_replace_a_command_line_value(in_tmp, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *QUIET, *FORMULA, "model.widths=[4]", "hydra.run.dir=run"])
    captured = capsys.readouterr()
    assert info.value.code == 1 and len(captured.err.strip().splitlines()) == 1
    assert "model.widths is set on the command line and by candidates[1]" in captured.err
    assert not (in_tmp / "run" / "candidate0").exists()
    with pytest.raises(SystemExit) as info:  # the second candidate's widths would replace it
        main(["train", *QUIET, *FORMULA, "model.hidden_width=10", "hydra.run.dir=run2"])
    captured = capsys.readouterr()
    assert info.value.code == 1 and len(captured.err.strip().splitlines()) == 1
    assert "model.hidden_width has no effect in candidates[1] {model.widths: ['d', 'd', 1]}" in captured.err
    with pytest.raises(SystemExit) as info:  # the same without candidates
        main(["train", *QUIET, *FORMULA, "candidates=null", "model.widths=[4]", "model.hidden_layers=2",
              "hydra.run.dir=run3"])
    captured = capsys.readouterr()
    assert info.value.code == 1 and captured.err.strip().endswith(
        "model.hidden_layers has no effect: model.widths=[4] sets every hidden width; drop one")


def test_the_formula_preset_lists_its_two_shapes():
    cfg = compose_config(["experiment=formula"])
    assert OmegaConf.to_container(cfg.candidates) == [{}, {"model.widths": ["d", "d", 1]}]
