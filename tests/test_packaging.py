"""The wheel ships every config (each folder of conf/, experiments included), the C++ sources, the default
image of data=image and the console script, with no hand-kept list to forget a new config group (setup.py
computes the packages)."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_config_and_kernel_source(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("hol-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {"hol/conf/" + (Path(folder) / name).relative_to(ROOT / "conf").as_posix()
               for folder, _, files in os.walk(ROOT / "conf", followlinks=True)  # conf/experiment is a link
               for name in files if name.endswith(".yaml")}
    assert {"hol/conf/experiment/function.yaml", "hol/conf/layer/continuous.yaml"} <= configs
    assert configs <= names, sorted(configs - names)
    sources = {"hol/layers/csrc/" + path.name for path in (ROOT / "hol" / "layers" / "csrc").glob("*.cpp")}
    assert sources and sources <= names
    assert "hol/runner/default_image.png" in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    assert "hol = hol.runner.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
