"""The README is true and stays true: every command it shows runs here (shortened by overrides this test adds:
tiny data, one epoch, small budgets), its Python examples run as doctests (``--doctest-glob``), and its result
tables are the renderings of the committed result files.

Commands are the lines of the README's shell blocks and the inline ``hol train ...`` spans with overrides.
Each one is run in a temporary folder (``hol train``/``hol eval`` in process through ``hol.runner.cli.main``),
or, if it needs what this machine lacks (a GPU, a launcher plugin), composed with Hydra to check that it is
valid; the few that are not hol commands (``make test``, ``pip install``) are listed in :data:`NOT_RUN` with
the reason.
A new command in the README that this test cannot classify fails it.
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from benchmarks import results
from tests.helpers.commands import argv_of, make_workspace, run_documented

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

NOT_RUN = {
    "make test": "the suite itself",
    "make lint": "CI runs it (.ci/run)",
    "make typecheck": "CI runs it (.ci/run)",
    ".ci/run": "CI itself",
    'pip install -e ".[joblib]"': "installs an optional extra",
    'pip install -e ".[slurm]"': "installs an optional extra",
}
"""README commands that are no hol commands to run here, with the reason."""


def readme_commands() -> list[str]:
    """Every command of the README, in order: shell-block lines (continuations joined, comments dropped) and
    inline ``hol train``/``hol eval`` spans that carry overrides."""
    commands = []
    for language, body in re.findall(r"```(\w*)\n(.*?)```", README, re.S):
        if language == "python":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = " ".join(line.split())
            if line and line not in commands:
                commands.append(line)
    for span in re.findall(r"`(hol (?:train|eval) [^`]*)`", README):
        if "=" in span and "..." not in span and span not in commands:
            commands.append(span)
    return commands


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("readme"))


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{i}" for i in range(len(COMMANDS))])
def test_every_readme_command_runs(command, workspace, monkeypatch, capsys):
    if command in NOT_RUN:
        return
    argv = argv_of(command)
    if argv[:2] == ["make", "train"]:  # the Makefile's train target is this hol command
        assert "$(VENV)/bin/hol train experiment=function" in (ROOT / "Makefile").read_text()
        argv = ["hol", "train", "experiment=function"]
    if argv[:1] == ["tensorboard"]:
        assert (Path(sys.executable).parent / "tensorboard").exists()  # this environment's console script
        assert list((workspace / "outputs").rglob("events.out.tfevents.*")), "no run wrote TensorBoard events"
        return
    run_documented(" ".join(shlex.quote(word) for word in argv), workspace, monkeypatch, capsys)


def test_every_command_is_classified():
    """Commands the test runs are hol commands, ``make train`` or ``tensorboard``; the others are listed."""
    for command in COMMANDS:
        argv = argv_of(command)
        runnable = argv[:1] in (["hol"], ["tensorboard"]) or argv[:2] == ["make", "train"]
        assert command in NOT_RUN or runnable, f"add {command!r} to NOT_RUN (with a reason) or make it run"


def test_tables_are_the_renderings_of_their_result_files():
    blocks = results.BLOCK.findall(README)
    assert results.rendered_readme(README) == README, "run `python benchmarks/results.py` after measuring"
    for block in blocks:
        assert (results.RESULTS / f"{block[1]}.json").is_file()


def test_every_config_group_and_option_is_named():
    """The README's list of config groups names every group of ``conf/`` and every option of the groups it
    lists options for, and every experiment preset appears in a command."""
    paragraph = re.search(r"Config groups \(`conf/`\):(.*?)\n\n", README, re.S)
    assert paragraph, "the README's 'Config groups (`conf/`):' paragraph"
    listed = paragraph.group(1)
    conf = ROOT / "conf"
    for group in sorted(p for p in conf.iterdir() if p.is_dir() and p.name not in ("hydra", "experiment")):
        assert f"`{group.name}`" in listed, f"config group {group.name} missing from the README's list"
        if group.name in ("layer", "callbacks", "hparams_search", "paths"):  # described, not enumerated
            continue
        for option in sorted(group.glob("*.yaml")):
            assert f"`{option.stem}`" in listed, f"{group.name}={option.stem} missing from the README's list"
    for preset in sorted((ROOT / "experiments").glob("*.yaml")):
        assert f"`{preset.stem}`" in README, f"the README does not name experiment {preset.stem}"
