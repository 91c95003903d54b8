"""benchmarks/gpu_check.sh, the device check run where a GPU is lent: its CUDA test steps reach every test
module that holds CUDA tests (they once moved, with the operators, out of the folder the script named)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
CUDA_MARK = re.compile(r"^\s*(@pytest\.mark\.cuda\b|pytestmark\s*=.*\bmark\.cuda\b)", re.MULTILINE)


def test_the_device_check_runs_every_module_with_cuda_tests():
    script = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    named = [path.rstrip("/") for line in re.findall(r"-m cuda ([^\n\\]+)", script) for path in line.split()]
    assert named, "the script runs no CUDA test step"
    modules = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py")
                     if CUDA_MARK.search(path.read_text()))
    assert modules, "no CUDA tests found"
    missed = [module for module in modules if not any(module == path or module.startswith(path + "/")
                                                      for path in named)]
    assert not missed, f"gpu_check.sh runs -m cuda on {named}, which misses {missed}"
