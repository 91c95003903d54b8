"""Shared fixtures: tiny data sets in the real file formats (no network), run folders, the sweep test app."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers.data_files import make_cifar100, make_mnist

# backend="auto" decides from a per-machine timing calibration (hol.ops.cost): fixed costs here keep
# the suite independent of timings and of the machine (tests of the calibration itself unset this)
os.environ.setdefault("HOL_SPARSE_COST", "3.6,0.9,4.0")
os.environ.setdefault("HOL_SPARSE_COST_CUDA", "3.6,0.9,4.0")  # the same on a CUDA GPU
os.environ.setdefault("HOL_FUSED_COST", "0,1e9,1e9")  # the fused path only where a test asks for it

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(items):
    """Tests marked ``cuda`` skip cleanly on machines without a CUDA GPU."""
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if not HAS_CUDA and item.get_closest_marker("cuda"):
            item.add_marker(skip)


SWEEP_APP = Path(__file__).parent / "helpers" / "sweep_app"


@pytest.fixture
def mnist_root(tmp_path) -> Path:
    return make_mnist(tmp_path / "data")


@pytest.fixture
def cifar100_root(tmp_path) -> Path:
    return make_cifar100(tmp_path / "data")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty temporary folder, without ``HYDRA_FULL_ERROR`` (as a user would)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def sweep_app(tmp_path_factory) -> Path:
    """The sweep test app (``tests/helpers/sweep_app``) copied into a temporary folder; its script's path."""
    folder = tmp_path_factory.mktemp("app")
    shutil.copytree(SWEEP_APP, folder, dirs_exist_ok=True)
    return folder / "app.py"
