"""The library (hol.layers, hol.networks, hol.refine, hol.adapt) imports none of the runner's dependencies."""
from __future__ import annotations

import subprocess
import sys

RUNNER_ONLY = ("lightning", "pytorch_lightning", "hydra", "omegaconf", "torchmetrics", "matplotlib",
               "nevergrad", "tensorboard", "hol.runner")


def test_the_library_loads_no_runner_dependency():
    code = ("import sys, torch; import hol.layers, hol.networks, hol.refine, hol.adapt; "
            "hol.refine(hol.networks.MLP('continuous', 2, 1, 0, 3), n=4); "
            "hol.adapt_domains(hol.networks.MLP('continuous', 2, 1, 0, 3), torch.rand(4, 2)); "
            "print(' '.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    offending = [name for name in loaded
                 if name.split(".")[0] in RUNNER_ONLY or name.startswith("hol.runner")]
    assert "hol.layers.registry" in loaded and offending == []


def test_hol_refine_is_the_module_and_calls_refine():
    import hol
    import hol.refine

    assert hol.refine is sys.modules["hol.refine"] and callable(hol.refine)
    assert hol.refine.refine_with_report is not None
