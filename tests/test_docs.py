"""The documentation is true and stays true: the README (the front door) and the pages of ``docs/``
(:data:`benchmarks.results.PAGES`).

- Every command a page shows runs here (shortened by overrides added here: tiny data, one epoch, small
  budgets; tests/helpers/commands.py). Commands are the lines of the shell blocks and the inline ``hol train
  ...`` spans with overrides. Each one runs in a temporary folder (``hol train``/``hol eval`` in process
  through ``hol.runner.cli.main``), or, if it needs what this machine lacks (a GPU, a launcher plugin), is
  composed with Hydra to check that it is valid; the few that are not hol commands (``make test``, ``pip
  install``) are listed in :data:`NOT_RUN` with the reason. A new command that this test cannot classify
  fails it. These runs are the slow tier (``-m slow``).
- The Python examples run as doctests (``--doctest-glob``, pyproject.toml).
- The result tables are the renderings of the committed result files.
- Every link to a file or a heading leads somewhere, and the README stays a front door (at most 300 lines).
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from benchmarks import results
from tests.helpers.commands import argv_of, make_workspace, run_documented
from tests.helpers.configs import config_groups

ROOT = Path(__file__).resolve().parents[1]
PAGES = {page.relative_to(ROOT).as_posix(): page.read_text() for page in results.PAGES}
README = PAGES["README.md"]
RUNNER = PAGES["docs/runner.md"]

NOT_RUN = {
    "make test": "the suite itself",
    "make test-slow": "the suite itself",
    "make test-all": "the suite itself",
    "make lint": "CI runs it (.ci/run)",
    "make typecheck": "CI runs it (.ci/run)",
    ".ci/run": "CI itself",
    "pip install .": "installs hol (tests/test_packaging.py installs the wheel)",
    'pip install -e ".[joblib]"': "installs an optional extra",
    'pip install -e ".[slurm]"': "installs an optional extra",
}
"""Documented commands that are no hol commands to run here, with the reason."""


def page_commands(text: str) -> list[str]:
    """The commands of a page, in order: shell-block lines (continuations joined, comments dropped) and inline
    ``hol train``/``hol eval`` spans that carry overrides."""
    commands = []
    for language, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if language == "python":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = " ".join(re.sub(r"\s+#.*$", "", line).split())
            if line and line not in commands:
                commands.append(line)
    for span in re.findall(r"`(hol (?:train|eval|symbolic) [^`]*)`", text):
        if "=" in span and "..." not in span and span not in commands:
            commands.append(span)
    return commands


COMMANDS = list(dict.fromkeys(command for text in PAGES.values() for command in page_commands(text)))
"""Every command of the documentation, once."""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("docs"))


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=[f"{i}" for i in range(len(COMMANDS))])
def test_every_documented_command_runs(command, workspace, monkeypatch, capsys):
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
    """Commands the slow test runs are hol commands, ``make train`` or ``tensorboard``; the others are
    listed."""
    for command in COMMANDS:
        argv = argv_of(command)
        runnable = argv[:1] in (["hol"], ["tensorboard"]) or argv[:2] == ["make", "train"]
        assert command in NOT_RUN or runnable, f"add {command!r} to NOT_RUN (with a reason) or make it run"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_tables_are_the_renderings_of_their_result_files(page):
    text = PAGES[page]
    assert results.rendered(text) == text, "run `python benchmarks/results.py` after measuring"
    for block in results.BLOCK.finditer(text):
        assert (results.RESULTS / f"{block['name']}.json").is_file()


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces as
    ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    outside_code = re.sub(r"```.*?```", "", text, flags=re.S)
    return {slug(heading) for heading in re.findall(r"^#+ (.*)$", outside_code, re.M)}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_link_leads_to_a_file_or_heading(page):
    folder = (ROOT / page).parent
    for target in re.findall(r"\]\(([^)\s]+)\)", PAGES[page]):
        if re.match(r"\w+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (folder / path).resolve() if path else ROOT / page
        assert linked.exists(), f"{page}: link to {target!r}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked.read_text()), f"{page}: link to {target!r}: no such heading"


def test_the_readme_is_a_front_door_to_every_page():
    assert len(README.splitlines()) <= 300
    for page in PAGES:
        assert page == "README.md" or re.search(rf"\]\({re.escape(page)}[#)]", README), f"no link to {page}"


def test_every_config_group_and_option_is_named():
    """docs/runner.md's list of config groups names every group of ``conf/`` and every option of the groups it
    lists options for, and the README names every experiment preset."""
    paragraph = re.search(r"Config groups \(`conf/`\):(.*?)\n\n", RUNNER, re.S)
    assert paragraph, "the 'Config groups (`conf/`):' paragraph of docs/runner.md"
    listed = paragraph.group(1)
    conf = ROOT / "conf"
    for group in (name for name in config_groups(conf) if name not in ("hydra", "experiment")):
        assert f"`{group}`" in listed, f"config group {group} missing from docs/runner.md's list"
        if group in ("layer", "callbacks", "hparams_search", "paths"):  # described, not enumerated
            continue
        for option in sorted((conf / group).glob("*.yaml")):
            assert f"`{option.stem}`" in listed, f"{group}={option.stem} missing from docs/runner.md's list"
    for preset in sorted((conf / "experiment").glob("*.yaml")):
        assert f"`{preset.stem}`" in README, f"the README does not name experiment {preset.stem}"
        assert f"`{preset.stem}`" in RUNNER, f"docs/runner.md does not name experiment {preset.stem}"
