"""The fused piecewise Lagrange operator against ``nn.Linear`` with as many multiply-adds.

For each case ``B x I -> O`` with ``n`` nodes and ``S`` segments: the time of one forward and backward of
``hol.ops.lagrange_linear.lagrange_linear`` (``continuous``, float32, ``y.sum().backward()`` with gradients
for the input and the weight) over that of ``nn.Linear(I*n, O)`` (bias included, input gradient too),
measured in one process, the two interleaved round by round (``common.interleaved_medians``), medians.
``target`` is the ratio the operator is meant to stay under (``-``: reported only).

The header names the CPU model (``/proc/cpuinfo``), the threads (``--threads``, default 1) and whether the
C++ kernels run (``HOL_LAGRANGE_CPP=0`` times the torch formula).

Usage: ``python benchmarks/bench_fused.py [--cases 4096x16x16x5x8,...] [--rounds 15] [--threads 1]
[--record NAME]``, a case written ``BxIxOxnxS`` (I = input features, O = outputs).
"""
from __future__ import annotations

import argparse

import torch
from common import format_table, interleaved_medians
from torch import nn

from hol.ops import lagrange_linear as fused
from hol.ops.lagrange import lagrange_transform
from hol.ops.loader import cpu_model

CASES = {
    (4096, 16, 16, 5, 8): 3.0,
    (256, 32, 32, 5, 1): 2.5,
    (256, 32, 32, 5, 8): 2.5,
    (256, 32, 32, 5, 64): 2.5,
    (1024, 256, 256, 5, 4): None,
    (1024, 256, 256, 5, 64): None,
}
"""``(B, I, O, n, S)`` -> the target ratio over ``nn.Linear`` (``None``: reported only)."""


def parse_case(text: str) -> tuple[int, int, int, int, int]:
    values = tuple(int(value) for value in text.split("x"))
    if len(values) != 5:
        raise argparse.ArgumentTypeError(f"a case is BxIxOxnxS, got {text!r}")
    return values  # type: ignore[return-value]


def steps(batch: int, inputs: int, outputs: int, n: int, segments: int, generator: torch.Generator):
    """The two closures of one case: ``nn.Linear(I*n, O)`` and the fused operator, forward and backward."""
    linear = nn.Linear(inputs * n, outputs)
    x_linear = torch.randn(batch, inputs * n, generator=generator).requires_grad_()
    width = (n - 1) * segments + 1
    x = (torch.rand(batch, inputs, generator=generator) * 2 - 1).requires_grad_()
    weight = (torch.randn(outputs, inputs, width, generator=generator) / (inputs * n) ** 0.5).requires_grad_()
    transform = lagrange_transform(n).float()
    scale = torch.full((inputs,), segments / 2)  # the domain [-1, 1] onto [0, S]
    shift = torch.full((inputs,), segments / 2)

    def linear_step() -> None:
        linear.zero_grad(set_to_none=True)
        x_linear.grad = None
        linear(x_linear).sum().backward()

    def fused_step() -> None:
        x.grad = weight.grad = None
        fused.lagrange_linear(x, scale, shift, weight, transform, segments=segments,
                              continuous=True).sum().backward()

    return linear_step, fused_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=lambda text: [parse_case(case) for case in text.split(",")],
                        default=list(CASES), help="comma-separated BxIxOxnxS")
    parser.add_argument("--rounds", type=int, default=15,
                        help="timed interleaved rounds (median is reported)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--record", metavar="NAME", help="write the table to benchmarks/results/NAME.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    kernels = fused.extension()
    implementation = ("C++ kernels compiled for "
                      f"{' '.join(kernels.lagrange_linear_instruction_sets()) or 'no vector extension'}"
                      if kernels is not None else "torch formula (C++ kernels off or unavailable)")
    print(f"CPU: {cpu_model()}; {torch.get_num_threads()} thread(s); fused operator: {implementation}")
    print(f"fwd+bwd, float32, continuous, input and weight gradients; median of {args.rounds} interleaved "
          "rounds; ratio = fused / nn.Linear(I*n, O)")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch, inputs, outputs, n, segments in args.cases:
        linear_step, fused_step = steps(batch, inputs, outputs, n, segments, generator)
        medians = interleaved_medians({"linear": linear_step, "fused": fused_step}, rounds=args.rounds)
        ratio = medians["fused"] / medians["linear"]
        target = CASES.get((batch, inputs, outputs, n, segments))
        verdict = "-" if target is None else ("ok" if ratio <= target else "over")
        rows.append((batch, inputs, outputs, n, segments, 1e3 * medians["linear"], 1e3 * medians["fused"],
                     ratio, "-" if target is None else f"{target:.1f}", verdict))
    columns = ("B", "I", "O", "n", "S", "linear ms", "fused ms", "ratio", "target", "")
    print(format_table(columns, rows))
    if args.record:
        from results import record

        notes = (f"fwd+bwd of the fused operator over nn.Linear(I*n, O), float32, {torch.get_num_threads()} "
                 f"thread(s), {cpu_model()}, {implementation}; median of {args.rounds} interleaved rounds")
        record(args.record, "Fused piecewise Lagrange operator vs nn.Linear", columns,
               [list(row) for row in rows], notes)


if __name__ == "__main__":
    main()
