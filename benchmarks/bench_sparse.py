"""Segment-sparse vs dense compute path of the ``continuous`` layer, over the number of segments.

For each ``S``: fwd+bwd time of ``fc("continuous", I, O, n=n, segments=S)`` with ``backend="dense"`` and
``backend="sparse"`` and of ``nn.Linear(I*n, O)``, measured in one process, interleaved within each ``S``
(``common.interleaved_medians``), medians, float32, ``torch.set_num_threads(2)``; ratios are over the
``nn.Linear`` of the same round group. Inputs require grad (a hidden layer), so every step includes ``dx``. Memory: ``saved MB`` is what autograd keeps for the backward, summed
over the distinct tensors the forward saves (``torch.autograd.graph.saved_tensors_hooks``), parameters
excluded: the activation memory of a training step, which is what differs between the paths (parameters and
their gradients are the same ``O I K`` for both).

Usage: ``python benchmarks/bench_sparse.py [--segments 1,2,4,8,16,32,64,128] [--dense-max-segments 16]
[--impl auto|cpp|torch] [--device cpu] [--rounds 5]``. The dense path at large ``S`` takes seconds per step and
``B I K`` floats of memory, hence ``--dense-max-segments``.
"""
from __future__ import annotations

import argparse

import torch
from common import format_table, forward_backward, interleaved_medians
from torch import nn

import hol.layers
from hol.layers import sparse


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


def sparse_implementation(impl: str, device: str) -> str:
    if impl != "auto":
        return impl
    return "cpp" if torch.device(device).type == "cpu" and sparse.extension_available() else "torch"


class SparseWith(nn.Module):
    """A sparse-backend layer forced to one implementation of the product (``cpp`` or ``torch``)."""

    def __init__(self, layer: nn.Module, impl: str):
        super().__init__()
        self.layer, self.impl = layer, impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        return sparse.segment_sparse_linear(x, layer.weight, layer.basis.transform, segments=layer.segments,
                                            length=layer.length, continuous=True,
                                            extrapolation=layer.extrapolation, bias=layer.bias, impl=self.impl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segments", default="1,2,4,8,16,32,64,128")
    parser.add_argument("--dense-max-segments", type=int, default=16)
    parser.add_argument("--impl", default="auto", choices=sparse.IMPLEMENTATIONS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batch, features, n, device = args.batch, args.features, args.n, args.device
    impl = sparse_implementation(args.impl, device)
    generator = torch.Generator().manual_seed(0)
    # inputs require grad (a hidden layer): the step includes the input gradient, for every case alike
    x = (torch.rand(batch, features, generator=generator) * 2 - 1).to(device).requires_grad_()
    linear = nn.Linear(features * n, features, device=device)
    x_linear = torch.rand(batch, features * n, generator=generator).to(device).requires_grad_()
    linear_mb = saved_bytes(linear, x_linear) / 2**20
    print(f"continuous layer fwd+bwd, B={batch}, I=O={features}, n={n}, float32, {torch.get_num_threads()} "
          f"threads, {device}, sparse product: {impl}; median of {args.rounds} interleaved rounds per S; "
          f"ratio = time / nn.Linear(I*n, O) time; saved MB = activations autograd keeps "
          f"(nn.Linear: {linear_mb:.1f} MB)", flush=True)
    rows, sparse_ms = [], []
    for segments in [int(s) for s in args.segments.split(",")]:
        layer = hol.layers.fc("continuous", features, features, n=n, segments=segments, device=device)
        sparse_layer = SparseWith(layer, impl)
        cases = {"sparse": forward_backward(sparse_layer, x), "linear": forward_backward(linear, x_linear)}
        with_dense = segments <= args.dense_max_segments
        if with_dense:
            dense = hol.layers.fc("continuous", features, features, n=n, segments=segments, backend="dense",
                                  device=device)
            cases["dense"] = forward_backward(dense, x)
        medians = interleaved_medians(cases, rounds=args.rounds, device=device)
        base = medians["linear"]
        auto = sparse.choose_backend(n=n, segments=segments, batch=batch, in_features=features,
                                     out_features=features, device=device, cpp=impl == "cpp")
        sparse_ms.append(1e3 * medians["sparse"])
        rows.append((segments, layer.basis.width, 1e3 * base,
                     1e3 * medians["dense"] if with_dense else "-",
                     1e3 * medians["sparse"],
                     medians["dense"] / base if with_dense else "-",
                     medians["sparse"] / base,
                     f"{saved_bytes(dense, x) / 2**20:.1f}" if with_dense else "-",
                     f"{saved_bytes(sparse_layer, x) / 2**20:.1f}", auto))
        print(format_table(("S", "K", "linear ms", "dense ms", "sparse ms", "dense ratio", "sparse ratio",
                            "dense saved MB", "sparse saved MB", "auto"), rows[-1:]).splitlines()[-1],
              flush=True)
    print()
    print(format_table(("S", "K", "linear ms", "dense ms", "sparse ms", "dense ratio", "sparse ratio",
                        "dense saved MB", "sparse saved MB", "auto"), rows))
    print(f"sparse time max/min over S: {max(sparse_ms) / min(sparse_ms):.2f}")


if __name__ == "__main__":
    main()
