"""Every usage line hol shows outside the documentation works: the ``hol train``/``hol eval`` commands in the
comments of ``conf/`` (the experiment presets included) and in the package's docstrings and comments run here
(shortened as documented ones, tests/helpers/commands.py), those with a placeholder (``...``, ``PATH``)
compose, and ``hol --help``, ``hol --version`` and each command's ``--help`` exit 0. (The documentation's
own commands: tests/test_docs.py.) A usage line once told users ``hol train +callbacks=early_stopping``, which
Hydra refuses."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hol.runner.cli import main
from tests.helpers.commands import argv_of, first_values, make_workspace, run_documented
from tests.helpers.runs import compose_config
from tests.test_docs import COMMANDS as DOCUMENTED_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*sorted((ROOT / "conf").rglob("*.yaml")), *sorted((ROOT / "hol").rglob("*.py"))]
PLACEHOLDERS = ("...", "PATH", "NAME")
OVERRIDE = re.compile(r"^(-m|--\S+|[+~]?[\w./@-]+=.*)$")


def _override_words(rest: str) -> list[str] | None:
    """The overrides of a usage line's text after ``hol train``/``hol eval``, up to a comment or prose;
    ``None`` when the text is prose about the command rather than a command."""
    try:
        words = shlex.split(rest, comments=True)
    except ValueError:  # an unbalanced quote: prose
        return None
    overrides = []
    for word in words:
        if not OVERRIDE.match(word):
            break
        overrides.append(word)
    if words and not overrides:
        return None
    return overrides


def usage_lines() -> list[tuple[str, str]]:
    """``(where, command)`` for every ``hol train``/``eval``/``symbolic`` command in config comments and in
    the package's docstrings and comments (continuation lines joined; several on a line each taken)."""
    found = []
    for path in SOURCES:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if "``" in line or (path.suffix == ".yaml" and not line.lstrip().startswith("#")):
                continue  # inline code in prose; YAML values
            for match in re.finditer(r"\bhol (train|eval|symbolic)\b", line):
                rest, following = line[match.end():], number + 1
                while rest.rstrip().endswith("\\") and following < len(lines):
                    rest = rest.rstrip()[:-1] + " " + lines[following].lstrip().lstrip("#")
                    following += 1
                words = _override_words(rest)
                if words is not None:
                    command = " ".join(["hol", match.group(1), *(shlex.quote(word) for word in words)])
                    found.append((f"{path.relative_to(ROOT)}:{number + 1}", command))
    return found


USAGE = usage_lines()
NOT_DOCUMENTED = [(where, command) for where, command in USAGE if command not in DOCUMENTED_COMMANDS]


def test_usage_lines_are_found_in_the_configs_and_the_package():
    sources = {where.split(":")[0] for where, _ in USAGE}
    assert "conf/callbacks/early_stopping.yaml" in sources and "hol/runner/stages.py" in sources
    assert len(USAGE) >= 40


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("usage"))


@pytest.mark.slow
@pytest.mark.parametrize(("where", "command"), NOT_DOCUMENTED, ids=[where for where, _ in NOT_DOCUMENTED])
def test_every_usage_line_runs_or_composes(where, command, workspace, monkeypatch, capsys):
    argv = argv_of(command)
    placeholders = [word for word in argv[2:] if any(mark in word for mark in PLACEHOLDERS)]
    if placeholders or argv[1] in ("eval", "symbolic"):  # the rest of the line must compose
        config = "train" if argv[1] == "train" else argv[1]
        words = [word for word in argv[2:] if word not in placeholders]
        compose_config(first_values(words), config, return_hydra_config=True, quiet=False)
        return
    run_documented(command, workspace, monkeypatch, capsys)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["eval", "--help"],
                                  ["symbolic", "--help"]])
def test_help_and_version_exit_zero(argv, capsys, in_tmp):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code in (0, None)
    assert "Traceback" not in capsys.readouterr().err
