"""A network as a solution candidate: coordinates of the equation's domain in, fields out."""
from __future__ import annotations

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .equations import Equation


class Solution(nn.Module):
    """``net(equation.to_unit(points))``: the network sees the domain as ``[-1, 1]^d``, the layers' default
    domain, and derivatives are taken in the equation's own coordinates (the map is part of the graph).

    Args:
        net: a network ``[N, d] -> [N, F]`` (``d``, ``F``: the equation's coordinates and fields).
        equation: the :class:`~hol.pde.equations.Equation` whose domain the points lie in.

    Shape: ``[..., d] -> [..., F]``.

    Raises:
        ValueError: ``net`` holds batch normalization, which makes each point's fields depend on the other
            points of the batch, so autograd's derivatives in a point's coordinates would not be the field's.
    """

    def __init__(self, net: nn.Module, equation: Equation):
        super().__init__()
        coupled = [name for name, module in net.named_modules() if isinstance(module, _BatchNorm)]
        if coupled:
            raise ValueError(f"a PDE solution needs each point's fields to depend on that point only; "
                             f"{coupled[0]} is batch normalization (model.normalization=batch_norm): use "
                             "none, "
                             "max_abs, max_center or layer_norm")
        self.net, self.equation = net, equation

    def forward(self, points: Tensor) -> Tensor:
        return self.net(self.equation.to_unit(points))
