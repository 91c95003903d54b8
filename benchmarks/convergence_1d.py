"""Convergence of one hol link under h-refinement: test RMSE against the number of segments ``S`` for
``n = 2..6`` nodes per segment, ``continuous`` and ``discontinuous``, with the observed order next to the
theoretical ``S^-n`` (piecewise polynomials of degree ``n - 1``: error ``O(h^n)``).

Each entry is the best the link can do: a ``[1, 1]`` layer's coefficients fitted by linear least squares
(the layer is linear in them: ``layer.expand``) on ``--train`` points uniform in ``[-1, 1]``, float64, and
the RMSE measured through the layer's forward pass on ``--test`` other points. The observed order is
``-log2(RMSE(S) / RMSE(S / 2))`` at the largest ``S`` whose RMSE is still above ``--floor`` (rounding).
Ten thousand training points by default: with a thousand, the largest grids (``S = 64``, ``n = 6``: 384
coefficients) have about 15 points per segment and the fit's sampling error, not the approximation error,
sets the last orders (measured: 3.4 to 5.0 instead of 4 to 6 for ``discontinuous`` on the smooth function).

Usage::

    python benchmarks/convergence_1d.py [--segments 2 4 8 16 32 64] [--train 10000] [--record convergence_1d]

With ``--record NAME`` the table is written to ``benchmarks/results/NAME.json`` (see ``results.py``).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results  # a sibling script, run as a file

from hol.expr import parse
from hol.layers import fc
from hol.runner.data import DEFAULT_EXPR

SMOOTH_EXPR = "sin(4*pi*x)*exp(-x**2)"
KINDS = ("continuous", "discontinuous")


def points(count: int, seed: int) -> torch.Tensor:
    """``[count, 1]`` points uniform in ``[-1, 1]``, float64."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 1, generator=generator, dtype=torch.float64) * 2 - 1


def target(expr: str, x: torch.Tensor) -> torch.Tensor:
    """``expr`` at the points ``x`` (``[N, 1]``), ``[N]``."""
    return parse(expr)(x[:, 0]).reshape(-1)


@torch.no_grad()
def best_fit_rmse(kind: str, n: int, segments: int, expr: str, train: torch.Tensor,
                  test: torch.Tensor) -> float:
    """Test RMSE of the least-squares fit of one link of ``kind`` (``n``, ``segments``) to ``expr``."""
    layer = fc(kind, 1, 1, n=n, segments=segments, dtype=torch.float64)
    basis = layer.expand(train)[:, 0, :]  # [N, K]: the link is basis @ coefficients
    solution = torch.linalg.lstsq(basis, target(expr, train)[:, None], driver="gelsd").solution  # [K, 1]
    layer.weight.copy_(solution.T.reshape(layer.weight.shape))
    error = layer(test).reshape(-1) - target(expr, test)
    return math.sqrt(float(error.pow(2).mean()))


def observed_order(segments: list[int], errors: list[float], floor: float) -> float | None:
    """``-log(e_j / e_{j-1}) / log(S_j / S_{j-1})`` at the largest ``j`` with ``e_j`` above ``floor``."""
    for j in range(len(errors) - 1, 0, -1):
        if errors[j] > floor:
            return -math.log(errors[j] / errors[j - 1]) / math.log(segments[j] / segments[j - 1])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", nargs="+", type=int, default=[2, 4, 8, 16, 32, 64])
    parser.add_argument("--orders", nargs="+", type=int, default=[2, 3, 4, 5, 6])
    parser.add_argument("--train", type=int, default=10000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--floor", type=float, default=1e-11, help="RMSE below this counts as rounding")
    parser.add_argument("--record", metavar="NAME", help="write benchmarks/results/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = points(args.train, 0), points(args.test, 1)
    rows = []
    for expr in (DEFAULT_EXPR, SMOOTH_EXPR):
        for kind in KINDS:
            for n in args.orders:
                errors = [best_fit_rmse(kind, n, s, expr, train, test) for s in args.segments]
                order = observed_order(args.segments, errors, args.floor)
                rows.append([f"`{expr}`", kind, n, *errors, order, n])
                print(" | ".join(map(str, rows[-1])), flush=True)
    columns = ["function", "kind", "n", *(f"S={s}" for s in args.segments), "observed order", "theory"]
    if args.record:
        notes = (f"Test RMSE of one link fitted by least squares ({args.train} training and {args.test} test "
                 "points uniform in [-1, 1], float64); observed order from the last two S above "
                 f"{args.floor:g}; theory: S^-n.")
        results.record(args.record, "Convergence of one link under h-refinement", columns, rows, notes)


if __name__ == "__main__":
    main()
