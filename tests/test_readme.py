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
from omegaconf import OmegaConf

from benchmarks import results
from hol.runner.cli import main
from tests.helpers.data_files import make_cifar100, make_images, make_mnist
from tests.helpers.runs import QUIET, compose_config, run_hol

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

NEEDS_MISSING = ("trainer=gpu", "hydra/launcher=parallel", "hydra/launcher=slurm")
"""Overrides that need what this machine lacks (a CUDA GPU, an optional launcher plugin): such commands are
composed (every key and option must exist) instead of run."""

SMALL = ["trainer.max_epochs=1", "data.train_size=64", "data.val_size=32", "data.test_size=32",
         "data.batch_size=16", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
         "+trainer.limit_test_batches=2", "hydra.sweeper.optim.budget=2", "hydra.sweeper.optim.num_workers=2",
         "data.interior=64", "data.boundary=16", "data.initial=16", "optimizer.max_iter=5"]
"""Overrides appended to a command to shorten it (the keys a command does not have are dropped)."""


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


def argv_of(command: str) -> list[str]:
    """The command's words as a shell splits them, without leading ``VAR=value`` assignments."""
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    return words


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """One folder for all README commands (``hol eval`` reads a checkpoint of an earlier ``hol train``), with
    tiny MNIST and CIFAR-100 files and photographs standing in for the real data."""
    folder = tmp_path_factory.mktemp("readme")
    make_mnist(folder / "data")
    make_cifar100(folder / "data")
    make_images(folder / "data" / "images")
    return folder


def first_values(overrides: list[str]) -> list[str]:
    """Single-run overrides: a sweep ``key=a,b,c`` (or ``key=interval(...)`` etc.) becomes its first value, or
    is left out when it has none; lists ``key=[...]`` stay."""
    single = []
    for word in (word for word in overrides if not word.startswith("-")):
        key, _, value = word.partition("=")
        if value.startswith(("[", "{")) or not re.search(r",|\(", value):
            single.append(word)
        elif "(" not in value:
            single.append(f"{key}={value.split(',')[0]}")
    return single


def shortened(argv: list[str], workspace: Path) -> list[str]:
    """``hol train|eval`` arguments made quick: the real data root replaced by the tiny files, ``<run>``
    placeholders by a finished run, then the :data:`SMALL` and quiet overrides the command's config has."""
    args = []
    for word in argv[2:]:
        word = word.replace("=../shared/data", f"={workspace / 'data'}")  # data.root, data.path
        if word.startswith("refine="):  # refinement stages of one epoch each
            word = re.sub(r"epochs: *\d+", "epochs: 1", word)
        if "<run>" in word:
            runs = sorted(workspace.glob(word.split("<run>")[0].split("=", 1)[1] + "*"))
            assert runs, f"{word}: no earlier README command made such a run"
            word = word.replace(word.split("=", 1)[1].split("<run>")[0] + "<run>", str(runs[-1]))
        args.append(word)
    if "experiment=cifar100" in args or "data=cifar100" in args:
        args.append(f"data.root={workspace / 'data'}")
    if argv[1] == "eval" or "--help" in args:
        return [argv[1], *args, *(["+trainer.enable_progress_bar=false"] if argv[1] == "eval" else [])]
    overrides = [word for word in args if not word.startswith("-")]
    cfg = compose_config(first_values(overrides), return_hydra_config=True, quiet=False)
    given = {word.split("=", 1)[0].lstrip("+") for word in overrides}

    def applies(override: str) -> bool:
        key = override.split("=", 1)[0]
        exists = OmegaConf.select(cfg, key.lstrip("+"), default=None) is not None
        return key.lstrip("+") not in given and exists != key.startswith("+")

    small = {override.split("=", 1)[0]: override for override in SMALL}
    args = [small.get(word.split("=", 1)[0], word) for word in args]  # SMALL wins over the command's value
    return [argv[1], *args, *(override for override in SMALL + QUIET if applies(override))]


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
    assert argv[0] == "hol" and argv[1] in ("train", "eval"), f"cannot run: {command}"
    monkeypatch.chdir(workspace)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    if any(need in argv for need in NEEDS_MISSING):
        compose_config(first_values(shortened(argv, workspace)[1:]), return_hydra_config=True, quiet=False)
        return
    if "trainer=ddp" in argv:  # Lightning starts the other processes from the console script
        done = run_hol(workspace, *shortened(argv, workspace), "trainer.accelerator=cpu", "trainer.devices=2")
        assert done.returncode == 0, done.stderr[-3000:]
        return
    try:
        main(shortened(argv, workspace))
    except SystemExit as exit_:
        assert exit_.code in (0, None), capsys.readouterr().err[-3000:]
    assert "Traceback" not in capsys.readouterr().err


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
