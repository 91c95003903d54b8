"""Running the commands the documentation shows (the README and docs/, config comments, docstrings), shortened
by overrides added here: tiny data, one epoch, small budgets. Used by tests/test_docs.py and
tests/test_usage_lines.py."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from omegaconf import OmegaConf

from hol.runner.cli import main
from tests.helpers.data_files import make_cifar100, make_images, make_mnist
from tests.helpers.runs import QUIET, compose_config, run_hol

NEEDS_MISSING = ("trainer=gpu", "hydra/launcher=parallel", "hydra/launcher=slurm")
"""Overrides that need what this machine lacks (a CUDA GPU, an optional launcher plugin): such commands are
composed (every key and option must exist) instead of run."""

SMALL = ["trainer.max_epochs=1", "data.train_size=64", "data.val_size=32", "data.test_size=32",
         "data.batch_size=16", "+trainer.limit_train_batches=3", "+trainer.limit_val_batches=2",
         "+trainer.limit_test_batches=2", "hydra.sweeper.optim.budget=2", "hydra.sweeper.optim.num_workers=2",
         "data.interior=64", "data.boundary=16", "data.initial=16", "optimizer.max_iter=5"]
"""Overrides appended to a command to shorten it (the keys a command does not have are dropped)."""


def argv_of(command: str) -> list[str]:
    """The command's words as a shell splits them, without leading ``VAR=value`` assignments."""
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    return words


def make_workspace(folder: Path) -> Path:
    """A folder for documented commands (``hol eval`` reads a checkpoint of an earlier ``hol train``), with
    tiny MNIST and CIFAR-100 files and photographs standing in for the real data."""
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
    """``hol train|eval|symbolic`` arguments made quick: the real data root replaced by the tiny files,
    ``<run>`` placeholders by a finished run, then the :data:`SMALL` and quiet overrides the command's config
    has."""
    args = []
    for word in argv[2:]:
        word = word.replace("=../shared/data", f"={workspace / 'data'}")  # data.root, data.path
        if word.startswith("refine="):  # refinement stages of one epoch each
            word = re.sub(r"epochs: *\d+", "epochs: 1", word)
        if "<run>" in word:
            runs = sorted(workspace.glob(word.split("<run>")[0].split("=", 1)[1] + "*"))
            assert runs, f"{word}: no earlier documented command made such a run"
            word = word.replace(word.split("=", 1)[1].split("<run>")[0] + "<run>", str(runs[-1]))
        args.append(word)
    if "experiment=cifar100" in args or "data=cifar100" in args:
        args.append(f"data.root={workspace / 'data'}")
    if argv[1] in ("eval", "symbolic") or "--help" in args:
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


def run_documented(command: str, workspace: Path, monkeypatch, capsys) -> None:
    """Run a documented ``hol`` command in ``workspace``, shortened (:func:`shortened`); composed only when it
    needs what this machine lacks (:data:`NEEDS_MISSING`); DDP through the console script. Fails the test if
    the command fails."""
    argv = argv_of(command)
    assert argv[0] == "hol" and argv[1] in ("train", "eval", "symbolic"), f"cannot run: {command}"
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
