"""hol's cache folder and what depends on it survive a missing home directory: ``HOME`` unset and a user id
without a passwd entry (containers run with ``--user``, jobs started with ``env -i``), where ``Path.home()``
raises. A layer with ``backend="auto"`` then calibrates and computes, keeping nothing between processes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from hol import cache
from hol.ops import loader

NO_PASSWD_ENTRY = """
import pwd


def _missing(uid):
    raise KeyError(f"getpwuid(): uid not found: {uid}")


pwd.getpwuid = _missing
"""
"""A ``sitecustomize`` making this process's user id one without a passwd entry."""


def _environment(tmp_path, home: str) -> dict:
    """No ``HOME`` and no passwd entry (``home="none"``), or a ``HOME`` that cannot be written."""
    dropped = ("HOME", "HOL_CACHE_DIR", "XDG_CACHE_HOME", "HOL_SPARSE_COST", "TORCH_EXTENSIONS_DIR")
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env["TMPDIR"] = str(tmp_path / "tmp")
    if home == "none":
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(NO_PASSWD_ENTRY)
        return {**env, "PYTHONPATH": str(tmp_path / "site")}
    return {**env, "HOME": "/proc/hol-home"}  # /proc takes no new folders, even from root


@pytest.mark.slow  # builds the C++ kernels in a fresh temporary folder (about 30 s)
@pytest.mark.parametrize("home", ["none", "unwritable"])
def test_an_auto_layer_calibrates_and_computes_without_a_usable_home_directory(tmp_path, home):
    (tmp_path / "tmp").mkdir()
    script = textwrap.dedent("""
        from pathlib import Path
        import torch, hol
        from hol import cache
        from hol.ops import cost as cost_model
        try:
            print("home", Path.home().exists())
        except RuntimeError:
            print("no home")
        layer = hol.layers.fc("continuous", 8, 8, segments=16)
        x = torch.rand(64, 8)
        print(tuple(layer(x).shape), layer.compute_backend(x) in ("dense", "sparse"))
        print(cache.cache_dir(), cost_model.cache_path())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env=_environment(tmp_path, home), cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.split("\n")
    assert lines[:2] == (["no home", "(64, 8) True"] if home == "none" else ["home False", "(64, 8) True"])
    if home == "none":
        assert lines[2] == "None None"
    assert not (tmp_path / "~").exists()  # nothing built under a folder named "~" in the working directory
    assert "unavailable" not in done.stderr  # the C++ kernels built (in the temporary folder)
    assert list((tmp_path / "tmp").rglob("*.so"))


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOL_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("HOL_CACHE_DIR")
    assert cache.cache_dir() == tmp_path / "xdg" / "hol"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "hol"


@pytest.mark.parametrize("name", ["torch_extensions/hol_x", "other"])
def test_scratch_folders_are_per_user_in_the_temporary_directory(monkeypatch, tmp_path, name):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    folder = cache.scratch_dir(name)
    assert folder.is_dir() and folder.is_relative_to(tmp_path) and folder.name == name.split("/")[-1]


def test_two_checkouts_build_their_kernels_in_folders_of_their_own(monkeypatch, tmp_path):
    # the build folder is named after the extension: one shared by two checkouts named the other's sources in
    # its build.ninja, and each rebuilt the kernels after the other had
    own = loader.build_name("segment_sparse")
    assert own.startswith(f"hol_segment_sparse_{loader.build_key('segment_sparse')}_")
    monkeypatch.setattr(loader, "SOURCES", tmp_path / "other_checkout" / "csrc")
    other = loader.build_name("segment_sparse")  # the same build key (cached), another place
    assert other != own and other.rsplit("_", 1)[0] == own.rsplit("_", 1)[0]
