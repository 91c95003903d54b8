"""Segment-sparse vs dense compute path of the ``continuous`` layer, over the number of segments.

For each ``S``: fwd+bwd time of ``fc("continuous", I, O, n=n, segments=S)`` with ``backend="dense"`` and
``backend="sparse"`` and of ``nn.Linear(I*n, O)``, measured in one process, all cases of all ``S`` interleaved
in the same rounds (``common.interleaved_medians``), medians, float32, ``torch.set_num_threads(2)``; ratios
are over the ``nn.Linear`` median. Inputs require grad (a hidden layer), so every step includes ``dx``.
Memory: ``saved MB`` is what autograd keeps for the backward, summed over the distinct tensors the forward
saves (``torch.autograd.graph.saved_tensors_hooks``), parameters excluded: the activation memory of a training
step, which is what differs between the paths (parameters and their gradients are the same ``O I K`` for
both).

The header names the CPU model, the instruction sets the C++ kernels were compiled for and the implementation
of the sparse product (``HOL_SPARSE_CPP=0`` times the torch one); the ``auto`` column is what
``backend="auto"`` picks on this machine (its calibrated cost model) and ``auto/best`` its measured time over
the faster path's.

Usage: ``python benchmarks/bench_sparse.py [--segments 1,2,4,8,16,32,64,128] [--dense-max-segments 16]
[--device cpu|cuda] [--rounds 9] [--record NAME]``. The dense path at large ``S`` takes seconds per step on a
CPU and ``B I K`` floats of memory, hence ``--dense-max-segments``. On CUDA every step is synchronized and the
sparse product is the Triton kernels'. ``--record NAME`` writes the table as ``benchmarks/results/NAME.json``
(:mod:`results`).
"""
from __future__ import annotations

import torch
from common import format_table, forward_backward, interleaved_medians, layer_arguments
from results import record
from torch import nn

import hol.layers
from hol.ops import cost as cost_model
from hol.ops import loader, segment_sparse
from hol.ops.lagrange import piecewise_width


def saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct non-parameter tensors autograd saves during one forward of ``module``."""
    parameters = {p.data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor):
        if tensor.data_ptr() not in parameters:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(x).sum()
    return sum(storages.values())


def machine(device: str) -> str:
    """CPU model and instruction sets of the C++ kernels, or the GPU, and the implementation of the sparse
    product."""
    if torch.device(device).type == "cuda":
        triton = segment_sparse.triton_kernels() is not segment_sparse.HOST_KERNELS
        return (f"{torch.cuda.get_device_name(torch.device(device))}, sparse product: "
                f"{'Triton kernels' if triton else 'torch ops (Triton unavailable)'}")
    if torch.device(device).type != "cpu":
        return f"{device}, sparse product: torch ops"
    if not segment_sparse.extension_available():
        return f"{loader.cpu_model()}, sparse product: torch ops (C++ kernels off or unavailable)"
    return (f"{loader.cpu_model()}, sparse product: C++ kernels compiled for "
            f"{' '.join(segment_sparse.extension().instruction_sets()) or 'no vector extension'}")


def main() -> None:
    parser = layer_arguments(__doc__.split("\n")[0], segments=[1, 2, 4, 8, 16, 32, 64, 128], rounds=9)
    parser.add_argument("--dense-max-segments", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch, features, n, device = args.batch, args.features, args.n, args.device
    generator = torch.Generator().manual_seed(0)
    # inputs require grad (a hidden layer): the step includes the input gradient, for every case alike
    x = (torch.rand(batch, features, generator=generator) * 2 - 1).to(device).requires_grad_()
    linear = nn.Linear(features * n, features, device=device)
    x_linear = torch.rand(batch, features * n, generator=generator).to(device).requires_grad_()
    linear_mb = saved_bytes(linear, x_linear) / 2**20
    print(machine(device))
    print(f"continuous layer fwd+bwd, B={batch}, I=O={features}, n={n}, float32, {torch.get_num_threads()} "
          f"threads, {device}; median of {args.rounds} rounds, all cases interleaved; "
          f"ratio = time / nn.Linear(I*n, O) time; saved MB = activations autograd keeps "
          f"(nn.Linear: {linear_mb:.1f} MB)", flush=True)
    # every S in one interleaved set of rounds: the curve over S compares cases measured side by side, so a
    # slow spell of the machine (memory-bound large S suffer most) cannot bend it
    cases = {"linear": forward_backward(linear, x_linear)}
    layers = {}
    for segments in args.segments:
        layers[segments, "sparse"] = hol.layers.fc("continuous", features, features, n=n, segments=segments,
                                                   backend="sparse", device=device)
        if segments <= args.dense_max_segments:
            layers[segments, "dense"] = hol.layers.fc("continuous", features, features, n=n,
                                                      segments=segments, backend="dense", device=device)
    for (segments, path), module in layers.items():
        cases[f"{path} {segments}"] = forward_backward(module, x)
    medians = interleaved_medians(cases, rounds=args.rounds, device=device)
    base = medians["linear"]
    print(f"nn.Linear(I*n, O): {1e3 * base:.3f} ms")
    rows = []
    for segments in args.segments:
        dense_s = medians.get(f"dense {segments}")
        with_dense = dense_s is not None
        sparse_s = medians[f"sparse {segments}"]
        auto = cost_model.choose_backend(n=n, segments=segments, batch=batch, in_features=features,
                                     out_features=features, device=device)
        auto_over_best = ((dense_s if auto == "dense" else sparse_s) / min(dense_s, sparse_s) if with_dense
                          else "-")
        rows.append((segments, piecewise_width(n, segments, True),
                     1e3 * dense_s if with_dense else "-", 1e3 * sparse_s,
                     dense_s / base if with_dense else "-", sparse_s / base,
                     f"{saved_bytes(layers[segments, 'dense'], x) / 2**20:.1f}" if with_dense else "-",
                     f"{saved_bytes(layers[segments, 'sparse'], x) / 2**20:.1f}", auto, auto_over_best))
    columns = ("S", "K", "dense ms", "sparse ms", "dense ratio", "sparse ratio", "dense saved MB",
               "sparse saved MB", "auto", "auto/best")
    print(format_table(columns, rows))
    sparse_ms = [medians[f"sparse {segments}"] for segments in args.segments]
    flatness = f"sparse time max/min over S: {max(sparse_ms) / min(sparse_ms):.2f}"
    print(flatness)
    if args.record:
        notes = (f"Continuous layer fwd+bwd, B={batch}, I=O={features}, n={n}, float32, inputs with "
                 f"gradient; ratio over nn.Linear(I*n, O) ({1e3 * base:.3f} ms); {machine(device)}; "
                 f"median of {args.rounds} interleaved rounds; {flatness}.")
        record(args.record, "Dense vs segment-sparse path over S", columns,
               [[None if cell == "-" else cell for cell in row] for row in rows], notes, device=device)


if __name__ == "__main__":
    main()
