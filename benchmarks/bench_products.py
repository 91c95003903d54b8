"""Product units (``product``, ``*_prod``): forward + backward time over ``nn.Linear(I*n, O)`` and the
activations kept for the backward, for the operator ``hol::product_units`` and, with ``--einsum``, for the
einsum formula it replaced (every link value ``[B, O, I]`` materialized, then ``torch.prod``).

Two backward flavours: ``input`` (the layer's input needs no gradient, as for a first layer: weights only) and
``hidden`` (the input's gradient too); the baseline is timed the same way. All cases run in one process,
interleaved, and report medians (``common.interleaved_medians``), with ``torch.set_num_threads(2)``.

Saved activations: bytes of the tensors autograd keeps for the backward (parameters excluded), counted with
``torch.autograd.graph.saved_tensors_hooks`` on one forward; ``bound`` is ``B O + B I n`` values of the dtype.

Usage: ``python benchmarks/bench_products.py [--rounds 5] [--segments 1,2,16,64] [--einsum]
[--device cpu|cuda] [--record NAME]``. On CUDA the operator runs its Triton kernels and every step is
synchronized. ``--record NAME`` writes the table as ``benchmarks/results/NAME.json`` (:mod:`results`).
"""
from __future__ import annotations

import torch
from common import interleaved_medians, layer_arguments, report
from torch import nn

import hol.layers

KINDS = ("product", "polynomial_prod", "continuous_prod", "discontinuous_prod")
PIECEWISE = ("continuous_prod", "discontinuous_prod")
BASELINE = "nn.Linear(I*n, O)"


class EinsumProduct(nn.Module):
    """The formula the operator replaced: ``f = layer.links(x)`` ``[..., O, I]``, then
    ``prod(1 + f) - 1 - ...``."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        f = self.layer.links(x)
        return torch.prod(1 + f, dim=-1) - 1 - (1 - self.layer.alpha) * f.sum(-1)


def step(module: nn.Module, x: torch.Tensor, hidden: bool):
    """One forward + backward of ``module`` (weights' gradients; the input's too when ``hidden``)."""
    x = x.detach().requires_grad_(hidden)

    def run():
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()

    return run


def saved_bytes(module: nn.Module, x: torch.Tensor, hidden: bool) -> int:
    """Bytes of the distinct storages autograd saves in one forward of ``module``, parameters excluded."""
    parameters = {p.untyped_storage().data_ptr() for p in module.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        pointer = t.untyped_storage().data_ptr()
        if pointer not in parameters:
            saved[pointer] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x.detach().requires_grad_(hidden)).sum()
    return sum(saved.values())


def cases(args) -> tuple[dict, dict]:
    """``label -> step`` for every timed case and ``label -> (kind, S, path, flavour, saved MB)``."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch, args.features, generator=generator) * 2 - 1).to(args.device)
    steps, rows = {}, {}
    for kind in KINDS:
        for segments in args.segments if kind in PIECEWISE else (None,):
            options = {} if kind == "product" else {"n": args.n}
            if segments is not None:
                options["segments"] = segments
            layer = hol.layers.fc(kind, args.features, args.features, device=args.device, **options)
            paths = {"operator": layer} | ({"einsum": EinsumProduct(layer)} if args.einsum else {})
            for path, module in paths.items():
                for flavour in ("input", "hidden"):
                    label = f"{kind} S={segments} {path} {flavour}"
                    steps[label] = step(module, x, flavour == "hidden")
                    rows[label] = (kind, "-" if segments is None else segments, path, flavour,
                                   saved_bytes(module, x, flavour == "hidden") / 2**20)
    baseline = nn.Linear(args.features * args.n, args.features, device=args.device)
    wide = (torch.rand(args.batch, args.features * args.n, generator=generator) * 2 - 1).to(args.device)
    for flavour in ("input", "hidden"):
        label = f"{BASELINE} {flavour}"
        steps[label] = step(baseline, wide, flavour == "hidden")
        rows[label] = (BASELINE, "-", "-", flavour, saved_bytes(baseline, wide, flavour == "hidden") / 2**20)
    return steps, rows


def main() -> None:
    parser = layer_arguments(__doc__.split("\n")[0], segments=[1, 2, 16, 64], rounds=5)
    parser.add_argument("--einsum", action="store_true",
                        help="also time the einsum formula (slow: ~0.5-1.5 s a step)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, rows = cases(args)
    medians = interleaved_medians(steps, rounds=args.rounds, device=args.device)
    bound = (args.batch * args.features + args.batch * args.features * args.n) * 4 / 2**20
    table = [(*rows[label][:4], 1e3 * medians[label],
              medians[label] / medians[f"{BASELINE} {rows[label][3]}"], rows[label][4]) for label in steps]
    description = (f"fwd+bwd, B={args.batch}, I=O={args.features}, n={args.n}, float32, {args.device}, "
                   f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds; ratio = "
                   f"time / time of {BASELINE} with the same backward; saved = activations kept for the "
                   f"backward (bound B O + B I n = {bound:.2f} MB)")
    report(args.record, "Product units over nn.Linear(I*n, O)",
           ("kind", "S", "path", "backward", "ms", "ratio", "saved MB"), table, description,
           device=args.device)


if __name__ == "__main__":
    main()
