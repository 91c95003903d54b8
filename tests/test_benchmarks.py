"""The benchmark scripts stay runnable as the code moves: each one imports and parses its options, and those
that need no data set run end to end at toy sizes, recording their tables (``--record``) into a temporary
folder in the format the README's tables are rendered from."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MODULES = ("__init__.py", "common.py", "pde_cases.py", "kan_rows.py")
"""Modules the scripts import, no scripts themselves."""
SCRIPTS = sorted(path for path in BENCHMARKS.glob("*.py") if path.name not in MODULES)

TOY = {
    "bench_layers": ["--batch", "16", "--features", "4", "--segments", "1,2",
                     "--backends", "auto,dense,sparse", "--skip-reference"],
    "bench_products": ["--batch", "16", "--features", "4", "--segments", "1,2"],
    "bench_sparse": ["--batch", "32", "--features", "4", "--segments", "1,2,4", "--dense-max-segments", "2"],
    "bench_conv": ["--batch", "1"],
    "bench_vae": ["--batch", "2"],
    "profile_step": ["--batch", "8", "--features", "4", "--n", "3"],
    "bench_auto": ["--shapes", "4x4x1,8x4x4", "--n", "3"],
    "bench_pde": ["--points", "16", "--presets", "poisson", "sod"],
}
"""Toy-size arguments of the scripts that run without a data set (every kind, every path they time)."""


def run(script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
                          check=False, cwd=script.parent, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[path.stem for path in SCRIPTS])
def test_script_imports_and_parses_its_options(script):
    done = run(script, "--help")
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TOY))
def test_script_runs_at_toy_sizes_and_records_its_table(name, tmp_path):
    env = {**os.environ, "HOL_RESULTS_DIR": str(tmp_path), "HOL_SPARSE_COST": "3.6,0.9,4.0"}
    done = run(BENCHMARKS / f"{name}.py", *TOY[name], "--rounds", "1", "--threads", "1", "--record", "toy",
               env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "toy.json").read_text())
    assert result["rows"] and all(len(row) == len(result["columns"]) for row in result["rows"])
    assert name in result["command"] and result["machine"]


@pytest.mark.slow
def test_half_precision_runs_at_toy_sizes_and_records_its_table(tmp_path):
    env = {**os.environ, "HOL_RESULTS_DIR": str(tmp_path)}
    done = run(BENCHMARKS / "half_precision.py", "--seeds", "1", "--segments", "4", "--record", "toy",
               env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "toy.json").read_text())
    assert len(result["rows"]) == 5 and all(len(row) == len(result["columns"]) for row in result["rows"])
    ratios = [row[column] for row in result["rows"] for column in (4, 7)]  # bf16 and fp16 ratio to torch's
    assert all(0 < ratio < 3 for ratio in ratios)


@pytest.mark.slow
def test_convergence_1d_runs_at_toy_sizes_and_records_its_table(tmp_path):
    env = {**os.environ, "HOL_RESULTS_DIR": str(tmp_path)}
    done = run(BENCHMARKS / "convergence_1d.py", "--segments", "2", "4", "--orders", "2", "3",
               "--train", "200", "--test", "100", "--record", "toy", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "toy.json").read_text())
    assert len(result["rows"]) == 2 * 2 * 2  # functions x kinds x orders
    assert all(len(row) == len(result["columns"]) for row in result["rows"])


@pytest.mark.slow
def test_run_pde_runs_a_short_case_and_records_its_table(tmp_path):
    env = {**os.environ, "HOL_RESULTS_DIR": str(tmp_path)}
    done = run(BENCHMARKS / "run_pde.py", "--cases", "burgers", "--seeds", "1", "2", "3", "--record", "toy",
               "--figures", str(tmp_path), "--", "optimizer.max_iter=2", "trainer.max_epochs=1",
               "data.interior=32", "data.test_grid=[1001,3]", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "toy.json").read_text())
    assert len(result["rows"]) == 1 and len(result["rows"][0]) == len(result["columns"])
    table_row = dict(zip(result["columns"], result["rows"][0], strict=True))
    each = [float(entry.split(": ")[1]) for entry in table_row["each seed"].split(", ")]
    assert [entry.split(":")[0] for entry in table_row["each seed"].split(", ")] == ["1", "2", "3"]
    assert table_row["value"] == pytest.approx(sorted(each)[1], rel=5e-3)  # "each seed" shows 3 digits
    assert table_row["worst"] == pytest.approx(max(each), rel=5e-3)
    assert table_row["worst"] >= table_row["value"]
    assert table_row["metric"] == "rel_l2" and (tmp_path / "pde_burgers.png").stat().st_size > 0


@pytest.fixture
def kan_tables():
    """The script ``benchmarks/kan_tables.py`` as a module (it imports its sibling ``kan_rows``)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import kan_tables
    finally:
        sys.path.remove(str(BENCHMARKS))
    return kan_tables


@pytest.mark.slow
def test_kan_tables_stores_each_run_and_renders_both_tables(tmp_path):
    env = {**os.environ, "HOL_RESULTS_DIR": str(tmp_path)}
    done = run(BENCHMARKS / "kan_tables.py", "--rows", "jv", "--seeds", "0", "--methods", "hol",
               "hol_shape", "mlp", "--record", "--", "optimizer.max_iter=2", "data.train_size=32",
               "data.val_size=16", "data.test_size=16", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads((tmp_path / "kan_runs.json").read_text())["runs"]
    assert sorted(runs) == ["special/jv/hol/0", "special/jv/hol_deep/0", "special/jv/hol_shape/0",
                            "special/jv/mlp/0"]
    assert len(runs["special/jv/hol/0"]["stages"]) == 5 and len(runs["special/jv/mlp/0"]["stages"]) == 1
    assert len(runs["special/jv/hol/0"]["val"]) == 5 and len(runs["special/jv/mlp/0"]["val"]) == 1
    # the preset's second candidate, stored as hol_deep, [2, 2, 2, 1, 1]: 4 + 4 + 2 + 1 links (on 32 points, 2
    # iterations a stage, it may diverge: then the stages before are kept, saying where)
    deep = runs["special/jv/hol_deep/0"]
    ladder = [coefficients for _, coefficients in deep["stages"]]
    assert ladder == [11 * 7, 11 * 11, 11 * 15, 11 * 29, 11 * 37][:len(ladder)]
    assert len(deep["val"]) == len(ladder) and (len(ladder) == 5 or deep.get("diverged"))
    # hol on pykan's jv shape [2, 3, 1, 1, 1]: 11 links of (n - 1) S + 1 coefficients (cubic on 2 first)
    assert [coefficients for _, coefficients in runs["special/jv/hol_shape/0"]["stages"]] == [
        11 * 7, 11 * 11, 11 * 15, 11 * 29, 11 * 37]
    assert runs["special/jv/mlp/0"]["stages"][0][1] <= 1000  # the tanh MLP within the budget
    for name, rows in (("kan_special", 15), ("kan_feynman", 27), ("kan_smooth", 6)):
        table = json.loads((tmp_path / f"{name}.json").read_text())
        assert len(table["rows"]) == rows and all(len(row) == len(table["columns"]) for row in table["rows"])


def test_hol_meets_pykan_at_equal_or_fewer_coefficients_on_the_same_seed(kan_tables):
    special = next(row for row in kan_tables.ROWS if row.name == "sph_harm m=0 n=1")  # pykan: [2, 1, 1]
    smooth = next(row for row in kan_tables.ROWS if row.table == "smooth")  # pykan's shape is the preset's
    run = {"overrides": [], "seconds": 1.0, "machine": "test"}
    runs = {
        "special/sph_harm m=0 n=1/pykan/0": {**run, "stages": [[7e-6, 18], [2e-8, 69], [1e-9, 1200]]},
        "special/sph_harm m=0 n=1/hol_shape/0": {**run, "stages": [[1e-4, 21], [9e-9, 45], [None, 60],
                                                                          [1e-12, 87]]},  # None: not finite
        "special/sph_harm m=0 n=1/hol_shape/1": {**run, "stages": [[1e-13, 21]]},  # no pykan run on seed 1
        f"smooth/{smooth.name}/pykan/0": {**run, "stages": [[1e-3, 500]]},
        f"smooth/{smooth.name}/hol/0": {**run, "stages": [[2e-3, 400], [1e-4, 600]]},
    }
    # pykan's best within the budget (1000) is 2e-8 at 69: hol's best stage within 69 coefficients is 45's
    assert kan_tables.shape_method(special) == "hol_shape" and kan_tables.shape_method(smooth) == "hol"
    def matched(runs, row, method):
        return kan_tables.at_pykan_coefficients(runs, row, kan_tables.seed_runs(runs, row, method))

    assert matched(runs, special, "hol_shape") == {"median": 9e-9, "coefficients": "45"}
    assert matched(runs, special, "hol") is None  # no run of the preset
    assert matched(runs, smooth, "hol") == {"median": 2e-3, "coefficients": "400"}
    assert matched({}, special, "hol_shape") is None


def test_the_headline_table_is_what_its_script_reads_from_the_result_files_now(tmp_path):
    env = {**os.environ, "HOL_RESULTS_DIR": str(tmp_path)}
    done = run(BENCHMARKS / "headline.py", "--record", "headline", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    derived = json.loads((tmp_path / "headline.json").read_text())
    committed = json.loads((BENCHMARKS / "results" / "headline.json").read_text())
    assert (committed["columns"], committed["rows"]) == (derived["columns"], derived["rows"]), (
        "run `python benchmarks/headline.py --record headline` after recording a table it reads")
    assert all((BENCHMARKS / "results" / f"{name}.json").is_file()
               for row in committed["rows"] for name in row[-1].split(", "))


def test_the_tables_keep_the_candidate_the_preset_keeps_by_validation_never_by_test(kan_tables):
    """The preset's two candidates, stored as hol ([d, 2d+1, 1]) and hol_deep ([d, d, d, 1, 1]): per seed the
    one with the lower validation RMSE at a stage's end, every stage counted and a diverged one never (as
    hol.runner.candidates keeps it), then its best test stage within the budget."""
    row = next(row for row in kan_tables.ROWS if row.name == "I.6.2b")  # budget 2000
    run = {"overrides": [], "seconds": 1.0, "machine": "test"}
    runs = {  # seed 0: the deep one validates lower, though it tests higher
        "feynman/I.6.2b/hol/0": {**run, "stages": [[1e-3, 200]], "val": [2e-3]},
        "feynman/I.6.2b/hol_deep/0": {**run, "stages": [[5e-3, 150], [4e-3, 300]], "val": [6e-3, 1e-3],
                                      "seconds": 3.0},
        "feynman/I.6.2b/hol/1": {**run, "stages": [[2e-4, 200]], "val": [3e-4]},
        "feynman/I.6.2b/hol_deep/1": {**run, "stages": [[1e-5, 150], [None, 300]], "val": [1e-2, None]},
        # seed 2: the first validates lowest at a stage beyond the budget, which counts in the choice
        "feynman/I.6.2b/hol/2": {**run, "stages": [[1e-3, 200], [1e-6, 3000]], "val": [2e-3, 1e-9]},
        "feynman/I.6.2b/hol_deep/2": {**run, "stages": [[1e-7, 150]], "val": [1e-3]},
        "feynman/I.6.2b/hol/3": {**run, "stages": [[5e-4, 200]], "val": [5e-4]},
        "feynman/I.6.2b/hol_deep/3": {**run, "stages": [[1e-9, 150]], "val": [1e-12], "diverged": "epoch 3"},
        "feynman/I.6.2b/hol/4": {**run, "stages": [[1e-9, 200]], "val": [1e-9]},  # no second candidate
        "feynman/I.6.2b/hol/5": {**run, "stages": [[1e-9, 200]]},  # stored before val: no choice
        "feynman/I.6.2b/hol_deep/5": {**run, "stages": [[1e-9, 150]], "val": [1e-9]},
    }
    kept = kan_tables.preset_runs(runs, row)
    assert {seed: name for seed, (name, _, _) in kept.items()} == {"0": "hol_deep", "1": "hol", "2": "hol",
                                                                    "3": "hol"}
    assert kept["0"][2] == 4.0  # the preset's time: both candidates'
    assert kan_tables.preset(runs, row) == {"median": (5e-4 + 1e-3) / 2, "worst": 4e-3, "seeds": 4,
                                            "coefficients": "200/300", "seconds": 2.0,
                                            "chosen": {"hol": 3, "hol_deep": 1}}
    assert kan_tables.preset({}, row) is None
