"""The benchmark scripts stay runnable as the code moves: each one imports and parses its options."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted(path for path in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")
                 if path.name not in ("__init__.py", "common.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[path.stem for path in SCRIPTS])
def test_script_imports_and_parses_its_options(script):
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                          timeout=120, check=False, cwd=script.parent)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
