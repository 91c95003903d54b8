"""The distributions ship what hol needs at run time, with no hand-kept list to forget a new file (setup.py
computes the packages): every config (each folder of conf/, the experiment presets included), the C++
kernels' sources and every file they include (hol compiles them on the user's machine at first use; without a
header it falls back, with a warning, to torch's slower sparse ops), the default image of data=image and the
console script. The wheel is built from the sdist, as pip builds one to install an sdist, so both are
checked."""
from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "hol", "conf", "hydra_plugins"]
"""What building the distributions reads, copied out of the checkout for the build: setuptools reuses the
checkout's ``build/lib`` (an earlier build's files go into the next wheel) and ``hol.egg-info/SOURCES.txt``
(into the next sdist), which would hide a file the packaging config forgets."""
KERNEL_SUFFIXES = (".c", ".cc", ".cpp", ".cu", ".cuh", ".h", ".hpp")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


@pytest.fixture(scope="module")
def distributions(tmp_path_factory) -> dict[str, Path]:
    """The sdist of a copy of :data:`BUILD_INPUTS` and the wheel built from it, offline (no build isolation:
    the build requirements are the test environment's)."""
    tree, out = tmp_path_factory.mktemp("tree"), tmp_path_factory.mktemp("dist")
    for name in BUILD_INPUTS:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tree / name)
    build_sdist = f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})"
    subprocess.run([sys.executable, "-c", build_sdist], cwd=tree, check=True, capture_output=True,
                   timeout=300)
    (sdist,) = out.glob("hol-*.tar.gz")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(sdist)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("hol-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def shipped(distribution: Path) -> set[str]:
    """The files of a distribution: a wheel's names, an sdist's without its top folder ``hol-<version>/``."""
    if distribution.suffix == ".whl":
        return set(zipfile.ZipFile(distribution).namelist())
    with tarfile.open(distribution) as sdist:
        return {name.partition("/")[2] for name in sdist.getnames()}


def kernel_files() -> set[str]:
    """The C++/CUDA files of the checkout's package and every file their ``#include "..."`` lines name
    (paths relative to the checkout)."""
    sources = [path for path in (ROOT / "hol").rglob("*") if path.suffix in KERNEL_SUFFIXES]
    included = [(path.parent / name).resolve()
                for path in sources for name in INCLUDE.findall(path.read_text())]
    return {path.relative_to(ROOT).as_posix() for path in [*sources, *included]}


def test_the_wheel_ships_every_config_and_kernel_source(distributions):
    names = shipped(distributions["wheel"])
    configs = {"hol/" + path.relative_to(ROOT).as_posix() for path in (ROOT / "conf").rglob("*.yaml")}
    assert {"hol/conf/experiment/function.yaml", "hol/conf/layer/continuous.yaml"} <= configs
    assert configs <= names, sorted(configs - names)
    assert {"hol/ops/csrc/segment_sparse.cpp", "hol/ops/csrc/panels.h"} <= kernel_files() <= names
    assert "hol/runner/default_image.png" in names
    assert not [name for name in names if "__pycache__" in name]
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "hol = hol.runner.cli:main" in zipfile.ZipFile(distributions["wheel"]).read(entry_points).decode()


@pytest.mark.parametrize("kind", ["sdist", "wheel"])
def test_every_file_the_kernels_include_ships(distributions, kind):
    missing = kernel_files() - shipped(distributions[kind])
    assert not missing, f"the {kind} lacks {sorted(missing)}"


def test_no_bytecode_folder_is_taken_for_a_package(tmp_path, monkeypatch):
    """``conf/__pycache__`` (importing ``hol.conf`` from a checkout writes it) is no config group to ship, nor
    is a ``__pycache__`` of hol's code a package."""
    for name in ("hol", "conf"):
        shutil.copytree(ROOT / name, tmp_path / name)
    for folder in ("conf", "conf/hydra", "hol", "hol/layers"):
        (tmp_path / folder / "__pycache__").mkdir(exist_ok=True)
    arguments: dict = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: arguments.update(kwargs))
    monkeypatch.chdir(tmp_path)  # setup.py finds the packages from the working directory, as pip runs it
    runpy.run_path(str(ROOT / "setup.py"))
    assert {"hol.layers", "hol.conf.experiment", "hol.conf.hydra.launcher"} <= set(arguments["packages"])
    assert not [package for package in arguments["packages"] if "__pycache__" in package]


INSTALLED_RUN = """
import sys
import warnings
from pathlib import Path

import torch

import hol
from hol.layers import fc
from hol.ops import loader, product_units, segment_sparse

site = Path(sys.argv[1])
assert Path(hol.__file__).is_relative_to(site) and loader.SOURCES.is_relative_to(site), hol.__file__
x = torch.rand(16, 3, requires_grad=True)
layers = [fc("continuous", 3, 4, segments=4, backend="sparse"), fc("continuous_prod", 3, 4, segments=4)]
with warnings.catch_warnings(record=True) as caught:  # a kernel that does not build warns and falls back
    warnings.simplefilter("always")
    for layer in layers:
        layer(x).square().sum().backward()
assert not caught, [str(warning.message) for warning in caught]
assert segment_sparse.extension_available() and product_units.extension() is not None
"""
"""A sparse layer and a product unit, forward and backward, with the installed hol's C++ kernels."""


@pytest.mark.slow
def test_an_installed_wheel_builds_its_kernels(distributions, tmp_path):
    """The unpacked wheel alone on the path (not the checkout: the working directory is elsewhere) compiles
    both C++ extensions from scratch, in empty cache folders, and its layers run on them."""
    site, extensions = tmp_path / "site", tmp_path / "torch_extensions"
    zipfile.ZipFile(distributions["wheel"]).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site), "HOL_CACHE_DIR": str(tmp_path / "cache"),
           "TORCH_EXTENSIONS_DIR": str(extensions)}
    for switch in ("HOL_SPARSE_CPP", "HOL_PRODUCT_UNITS_CPP"):  # =0 turns a kernel off
        env.pop(switch, None)
    done = subprocess.run([sys.executable, "-c", INSTALLED_RUN, str(site)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    built = sorted(path.parent.name.rsplit("_", 2)[0] for path in extensions.glob("*/*.so"))
    assert built == ["hol_product_units", "hol_segment_sparse"]
