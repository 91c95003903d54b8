"""The README's headline table: a few rows picked from the result files of ``benchmarks/results/``, each
beside its published or classical anchor. Nothing is measured here: every number is read from the files
named in the row's last column (comma-separated), so the headline cannot drift from the full tables
(``docs/results.md``, ``docs/benchmarks.md``), and the test suite checks that ``results/headline.json`` is
what this script derives from the files now.

    python benchmarks/headline.py --record headline
"""
from __future__ import annotations

import argparse

import results

COLUMNS = ["result", "hol", "anchor", "anchor's source", "table"]


def _row(name: str, column: str, **match: str) -> dict:
    """The row of result file ``name`` whose columns equal ``match``, as a mapping of ``column`` names."""
    table = results.load(name)
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    found = [row for row in rows if all(row[key] == value for key, value in match.items())]
    if len(found) != 1 or column not in found[0]:
        raise KeyError(f"{name}.json: no single row {match} with a column {column!r}")
    return found[0]


def _at_or_below_anchor(name: str) -> str:
    """'k of N': the rows of a KAN table whose hol median is at or below the table's anchor (its column
    ``hol / anchor``; a row without hol's runs counts as above)."""
    table = results.load(name)
    ratios = [row[table["columns"].index("hol / anchor")] for row in table["rows"]]
    return f"{sum(ratio is not None and ratio <= 1 for ratio in ratios)} of {len(ratios)}"


def _ahead_of_pykan(names: tuple[str, ...]) -> str:
    """'k of N': of the rows of the KAN tables ``names`` that pykan ran, those where hol (the preset, or the
    preset on pykan's shape) is lower than pykan at equal or fewer coefficients."""
    ahead = ran = 0
    for name in names:
        table = results.load(name)
        for values in table["rows"]:
            row = dict(zip(table["columns"], values, strict=True))
            if row["pykan, same data"] is None:
                continue
            ran += 1
            hol = [row[column] for column in ("hol, ≤ pykan's coefficients",
                                              "hol on pykan's shape, ≤ its coefficients")
                   if row[column] is not None]
            ahead += bool(hol) and min(hol) < row["pykan, same data"]
    return f"{ahead} of {ran}"


def _seeds(row: dict) -> int:
    """How many seeds a row of ``run_pde.py --seeds`` ran (its column "each seed": ``seed: value, ...``)."""
    return len(row["each seed"].split(", "))


def rows() -> list[list]:
    poisson = _row("pde_poisson", "value", case="KAN paper's Poisson problem, hol preset")
    burgers = _row("pde_evolution", "value", case="Burgers ν = 0.01/π, hol preset")
    sod = _row("pde_sod", "value", case="Sod's shock tube, hol preset")
    pykan = _row("convergence_2d", "hol test RMSE (median)", stage=4)
    best_pykan = min(row[-1] for row in results.load("convergence_2d")["rows"])
    mnist = _row("experiments", "test", experiment="`invariant_mnist`")
    speed = _row("layers_reference", "speed-up", kind="continuous")
    return [
        ["pykan's exp(sin(πx) + y²), test RMSE (hol: median of 5 seeds)",
         f"{pykan['hol test RMSE (median)']:.2g} ({pykan['hol coefficients']} coefficients)",
         f"{best_pykan:.3g} (pykan's best grid)", "pykan's README", "convergence_2d"],
        ["KAN paper's special functions, at or below its best KAN", _at_or_below_anchor("kan_special"), "–",
         "Liu et al. 2024, arXiv:2404.19756, Table 1", "kan_special"],
        ["KAN paper's Feynman equations, at or below min(its best KAN, its MLP)",
         _at_or_below_anchor("kan_feynman"), "–", "Liu et al. 2024, Table 2", "kan_feynman"],
        ["untuned smooth formulas of 3 and 4 variables, test RMSE at or below 1e-3",
         _at_or_below_anchor("kan_smooth"), "–", "hol's target for formulas nobody tuned it for",
         "kan_smooth"],
        ["KAN tables, pykan run on the same data: hol lower at equal or fewer coefficients",
         _ahead_of_pykan(("kan_special", "kan_feynman", "kan_smooth")), "–",
         "pykan 0.2.8, the paper's protocol (seed 0)", "kan_special, kan_feynman, kan_smooth"],
        ["Poisson on [-1, 1]², MSE of u", f"{poisson['value']:.3g} ({poisson['coefficients']} coefficients)",
         "≈ 1e-7 (KAN, ~10² parameters)", poisson["source"], "pde_poisson"],
        [f"viscous Burgers, relative L2 of u (median of {_seeds(burgers)} seeds)",
         f"{burgers['value']:.3g} (worst {burgers['worst']:.3g}; {burgers['coefficients']} coefficients)",
         "6.7e-4 (tanh MLP 9 × 20)", burgers["source"], "pde_evolution"],
        [f"Sod's shock tube at t = 0.2, L1 of ρ (median of {_seeds(sod)} seeds)",
         f"{sod['value']:.3g} (worst {sod['worst']:.3g})", "1.94e-2 (HLL, 100 cells)",
         "classical finite volumes", "pde_sod"],
        ["invariant MNIST, test accuracy", mnist["test"].split()[-1], "0.979",
         "high-order-layers-torch 2.6.0", "experiments"],
        ["continuous layer, forward + backward", f"{speed['speed-up']:.0f}× faster", "1×",
         "high-order-layers-torch 2.6.0", "layers_reference"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", metavar="NAME", help="write the table as benchmarks/results/NAME.json")
    args = parser.parse_args()
    table = rows()
    for row in table:
        print(" | ".join(str(cell) for cell in row))
    if args.record:
        results.record(args.record, "Headline results", COLUMNS, table,
                       notes="Nothing measured here: each row is read from the result file in its last "
                             "column, whose machine and date are under that table in docs/; the published "
                             "anchors beside them.")


if __name__ == "__main__":
    main()
