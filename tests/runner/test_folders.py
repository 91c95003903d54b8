"""Run folders through the ``hol`` command: a run never reads or reports a file it did not write (a folder
holding another run's or sweep's results is refused, or replaced with ``overwrite=true``), every run gets its
own folder however close together runs start, a folder that cannot be written is one line, and the commands
hol prints for pasting are shell-quoted."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hol.runner import folders
from hol.runner.cli import main
from hol.runner.records import METRICS_FILE
from tests.helpers.runs import REPO, TINY_XOR, read_csv, run_hol

TINY_RUN = [arg for arg in TINY_XOR if arg != "logger=csv"] + ["logger=csv"]


def _last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""


@pytest.mark.slow
def test_a_run_folder_with_another_runs_results_is_refused_untouched_or_replaced_on_request(tmp_path):
    run = tmp_path / "run"
    first = run_hol(tmp_path, "train", *TINY_RUN, f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-2000:]
    before = (run / METRICS_FILE).read_bytes()
    again = run_hol(tmp_path, "train", *TINY_RUN, "seed=7", f"hydra.run.dir={run}")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert _last_line(again) == (f"hol train: error: the folder {run} holds another run's results "
                                 "(metrics.json, checkpoints, csv); choose another with hydra.run.dir=... or "
                                 "replace them with overwrite=true")
    assert (run / METRICS_FILE).read_bytes() == before  # nothing of the first run was touched
    assert "seed: 7" not in (run / ".hydra" / "config.yaml").read_text()
    replaced = run_hol(tmp_path, "train", *TINY_RUN, "seed=7", f"hydra.run.dir={run}", "overwrite=true")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "seed: 7" in (run / ".hydra" / "config.yaml").read_text()
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["epoch_000.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_resuming_from_the_folders_own_checkpoint_continues_that_run_there(tmp_path):
    run = tmp_path / "run"
    assert run_hol(tmp_path, "train", *TINY_RUN, f"hydra.run.dir={run}").returncode == 0
    resumed = run_hol(tmp_path, "train", *[a for a in TINY_RUN if not a.startswith("trainer.max_epochs")],
                      "trainer.max_epochs=2", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                      f"hydra.run.dir={run}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    evaluated = run_hol(tmp_path, "eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                        f"hydra.run.dir={run}")
    assert evaluated.returncode == 1 and "holds another run's results" in _last_line(evaluated)


@pytest.mark.slow
def test_a_sweep_folder_with_an_earlier_sweep_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    first = run_hol(tmp_path, "train", "-m", *TINY_RUN, "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr[-2000:]
    summary = (sweep / "summary.csv").read_bytes()
    again = run_hol(tmp_path, "train", "-m", *TINY_RUN, "seed=3,4", f"hydra.sweep.dir={sweep}")
    assert again.returncode == 1
    assert _last_line(again) == (f"hol train: error: the folder {sweep} holds another run's results "
                                 "(summary.csv, summary.md, multirun.yaml, 0, 1); choose another with "
                                 "hydra.sweep.dir=... or replace them with overwrite=true")
    assert (sweep / "summary.csv").read_bytes() == summary
    replaced = run_hol(tmp_path, "train", "-m", *TINY_RUN, "seed=3", f"hydra.sweep.dir={sweep}",
                       "overwrite=true")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert [row["job"] for row in read_csv(sweep / "summary.csv")] == ["0"]  # the new sweep's one job
    assert not (sweep / "1").exists()


@pytest.mark.slow
def test_runs_started_together_get_their_own_folders(tmp_path):
    """Three runs started at once with the same default folder name (the second of the date pattern):
    ``hol_new_folder`` gives each its own."""
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    base = tmp_path / "same_second"
    command = [str(Path(sys.executable).with_name("hol")), "train", *TINY_RUN,
               f"hydra.run.dir=${{hol_new_folder:{base}}}"]
    processes = [subprocess.Popen([*command, f"seed={seed}"], cwd=tmp_path, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for seed in range(3)]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
    folders_made = sorted(path.name for path in tmp_path.iterdir() if path.name.startswith("same_second"))
    assert folders_made == ["same_second", "same_second_2", "same_second_3"]
    seeds = {(tmp_path / name / ".hydra" / "config.yaml").read_text().split("seed: ")[1].split()[0]
             for name in folders_made}
    assert seeds == {"0", "1", "2"}
    assert all((tmp_path / name / METRICS_FILE).is_file() for name in folders_made)


def test_commands_run_in_one_process_within_a_second_get_their_own_folders(in_tmp):
    for seed in (1, 2):  # the same requested folder name, as two runs in the same second have
        main(["train", *TINY_RUN, f"seed={seed}", f"hydra.run.dir=${{hol_new_folder:{in_tmp / 'run'}}}"])
    assert sorted(path.name for path in in_tmp.iterdir() if path.name.startswith("run")) == ["run", "run_2"]


def test_new_folder_takes_the_next_free_name_and_keeps_its_answer(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "_reserved", {})
    (tmp_path / "run").mkdir()
    (tmp_path / "run_2").mkdir()
    assert folders.new_folder(str(tmp_path / "run")) == str(tmp_path / "run_3")
    assert folders.new_folder(str(tmp_path / "run")) == str(tmp_path / "run_3")  # the same run asking again
    assert (tmp_path / "run_3").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("option", ["paths.log_dir", "hydra.run.dir"])
def test_a_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path, option):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    done = run_hol(tmp_path, "train", *TINY_RUN, f"{option}={blocker / 'runs'}")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    line = _last_line(done)
    assert line.startswith(f"hol train: error: cannot write the run folder {blocker / 'runs'}")
    assert "(Not a directory); choose another with paths.log_dir=..." in line


@pytest.mark.slow
def test_printed_commands_are_shell_quoted_for_paths_with_spaces_and_accents(tmp_path):
    run = tmp_path / "my résults" / "run 1"
    done = run_hol(tmp_path, "train", *[a for a in TINY_RUN if a != "logger=csv"], "logger=tensorboard",
                   f"hydra.run.dir='{run}'")
    assert done.returncode == 0, done.stderr[-2000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("TensorBoard: "))
    assert shlex.split(line.removeprefix("TensorBoard: ")) == ["tensorboard", "--logdir", str(run)]


@pytest.mark.slow
def test_an_unquoted_accent_or_space_names_the_character_and_the_quoting(tmp_path):
    done = run_hol(tmp_path, "train", *TINY_RUN, "hydra.run.dir=résultats")
    assert done.returncode == 2
    assert _last_line(done) == ("hol train: error: cannot read the override 'hydra.run.dir=résultats': 'é' "
                                "is read only inside quotes; write it as 'hydra.run.dir=\"résultats\"'")
