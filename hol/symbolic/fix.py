"""Links fixed to their symbolic form, trainable further: :class:`SymbolicLinear` and :func:`fix_symbolic`.

pykan's ``fix_symbolic`` / ``auto_symbolic`` (Liu et al. 2024, arXiv:2404.19756, §2.5.2, "symbolification"):
a link fitted as ``a f(b x + c) + d`` (:mod:`hol.symbolic.fit`) becomes that function, with ``a, b, c, d``
trainable parameters, so training the network further (e.g. a few L-BFGS steps on the data) adjusts the
constants where the fits were only close; the other links keep their numeric weights and train as before.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import cast

import torch
from torch import Tensor, nn

from ..layers.fully_connected import HighOrderLinear
from ..networks import MLP
from .fit import MIN_R2, LinkFit
from .links import check_layer, check_mlp


class SymbolicLinear(nn.Module):
    """A :class:`~hol.layers.HighOrderLinear` whose chosen links are ``a f(b x + c) + d`` with trainable
    ``a, b, c, d``, the other links the layer's own (numeric weights). Same inputs, outputs and combination
    (sums, or product units ``prod_i (1 + f_oi) - 1 - (1 - alpha) sum_i f_oi``, plus the bias), so it computes
    what the layer computes where the fits are exact.

    Args:
        layer: the layer (not changed; a copy keeps its numeric links).
        fits: ``{(output, input): LinkFit}``, the links to fix and their starting function.

    Shape:
        ``[..., I] -> [..., O]``.

    Attributes:
        numeric: the copy of ``layer``: the links that are not symbolic (its weights of the symbolic ones are
            not used and get no gradient), its domains and its bias.
        a, b, c, d: parameters ``[O, I]``, those of the symbolic links (zero and unused elsewhere).
        symbolic: boolean buffer ``[O, I]``, the symbolic links.

    A symbolic link is its function everywhere (``log``, ``sqrt``, ``1/x`` give NaN or infinities outside
    their domains, where the numeric link extrapolated). The state dict holds the parameters and the numeric
    layer; the functions are Python callables, so a module is loaded by building it with the same fits
    first.

    Raises:
        ValueError: another layer, or a link out of range (one line).
    """

    numeric: HighOrderLinear
    a: nn.Parameter
    b: nn.Parameter
    c: nn.Parameter
    d: nn.Parameter
    symbolic: Tensor

    def __init__(self, layer: nn.Module, fits: Mapping[tuple[int, int], LinkFit]):
        super().__init__()
        self.numeric = copy.deepcopy(check_layer(layer))
        shape = (self.numeric.out_features, self.numeric.in_features)
        for o, i in fits:
            if not (0 <= o < shape[0] and 0 <= i < shape[1]):
                raise ValueError(f"fits must be keyed by (output, input) links of a {shape[1]} -> {shape[0]} "
                                 f"layer, got {(o, i)!r}")
        self.fits = dict(fits)
        like = self.numeric.weight
        values = torch.zeros(4, *shape, dtype=like.dtype, device=like.device)
        for (o, i), fit in self.fits.items():
            values[:, o, i] = torch.tensor([fit.a, fit.b, fit.c, fit.d], dtype=torch.float64)
        self.a, self.b, self.c, self.d = (nn.Parameter(v.clone()) for v in values)
        mask = torch.zeros(shape, dtype=torch.bool, device=like.device)
        for o, i in self.fits:
            mask[o, i] = True
        self.register_buffer("symbolic", mask)
        self.candidates = {fit.name: fit.candidate for _, fit in sorted(self.fits.items())}
        self.groups = sorted(self.candidates)
        for k, name in enumerate(self.groups):  # the links of each function, as flat indices o * I + i
            index = [o * shape[1] + i for (o, i), fit in sorted(self.fits.items()) if fit.name == name]
            self.register_buffer(f"_links_{k}", torch.tensor(index, device=like.device), persistent=False)

    @property
    def in_features(self) -> int:
        return self.numeric.in_features

    @property
    def out_features(self) -> int:
        return self.numeric.out_features

    def links(self, x: Tensor) -> Tensor:
        """Every link's value ``f_oi(x_i)``. Shape: ``[..., I] -> [..., O, I]``."""
        values = self.numeric.links(x).flatten(-2)  # [..., O*I]
        a, b, c, d = (p.flatten() for p in (self.a, self.b, self.c, self.d))
        inputs = x.unsqueeze(-2).expand(*x.shape[:-1], self.out_features, self.in_features).flatten(-2)
        for k, name in enumerate(self.groups):
            index = cast(Tensor, getattr(self, f"_links_{k}"))
            z = b[index] * inputs.index_select(-1, index) + c[index]
            function = self.candidates[name].torch_function
            values = values.index_copy(-1, index, a[index] * function(z) + d[index])
        return values.unflatten(-1, (self.out_features, self.in_features))

    def forward(self, x: Tensor) -> Tensor:
        links = self.links(x)
        layer = self.numeric
        if layer.product:
            y = torch.prod(1 + links, dim=-1) - 1 - (1 - layer.alpha) * links.sum(-1)
        else:
            y = links.sum(-1)
        return y if layer.bias is None else y + layer.bias

    def link_fits(self) -> dict[tuple[int, int], LinkFit]:
        """The symbolic links with their parameters as they are now (the R² is that of the fit they started
        from): ``{(output, input): LinkFit}``."""
        a, b, c, d = (p.detach() for p in (self.a, self.b, self.c, self.d))
        return {(o, i): dataclasses.replace(fit, a=float(a[o, i]), b=float(b[o, i]), c=float(c[o, i]),
                                            d=float(d[o, i]))
                for (o, i), fit in self.fits.items()}

    def extra_repr(self) -> str:
        names = [fit.name for fit in self.fits.values()]
        counts = ", ".join(f"{name}: {names.count(name)}" for name in self.groups)
        return f"symbolic links {len(names)} of {self.in_features * self.out_features} ({counts})"


def fix_symbolic(net: nn.Module, fits: Mapping[tuple[int, int, int], LinkFit],
                 min_r2: float = MIN_R2) -> MLP:
    """A copy of ``net`` whose links with a fit of R² at least ``min_r2`` are symbolic (each such layer a
    :class:`SymbolicLinear`); the other links stay numeric (and ``net`` itself unchanged).

    Args:
        net: a :class:`hol.networks.MLP`.
        fits: ``{(layer, output, input): LinkFit}``, e.g. from :func:`hol.symbolic.links.fit_network`.
        min_r2: the R² from which a fit is used.

    Raises:
        ValueError: ``net`` is no MLP, a fit for a layer that is no ``HighOrderLinear`` (or is symbolic
            already) or for a link out of range (one line).
    """
    fixed = copy.deepcopy(check_mlp(net))
    chosen: dict[int, dict[tuple[int, int], LinkFit]] = {}
    for (index, o, i), fit in fits.items():
        if not 0 <= index < len(fixed.layers):
            raise ValueError(f"fits must be keyed by (layer, output, input) with a layer of the network's "
                             f"{len(fixed.layers)}, got {(index, o, i)!r}")
        if fit.r2 >= min_r2:
            chosen.setdefault(index, {})[(o, i)] = fit
    for index, layer_fits in chosen.items():
        layer = fixed.layers[index]
        if not isinstance(layer, HighOrderLinear):
            raise ValueError(f"layer {index} must be a HighOrderLinear to fix its links, got "
                             f"{type(layer).__name__}")
        fixed.layers[index] = SymbolicLinear(layer, layer_fits)
    return fixed
