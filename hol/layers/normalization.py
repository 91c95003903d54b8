"""Normalization between high-order layers, by name: ``norm(name, num_features, spatial_dims=0)``.

High-order links are defined on ``[-L/2, L/2]``; these layers keep activations there.

* ``max_abs``: ``x / (max|x| + eps)`` per sample, into ``[-1, 1]``.
* ``max_center``: ``2 (x - m) / (max - min + eps)`` per sample with midrange ``m = (max + min) / 2``, so the
  sample spans ``[-1, 1]``.
* ``layer_norm``: ``nn.LayerNorm`` over features (``nn.GroupNorm(1, C)`` for feature maps).
* ``batch_norm``: ``nn.BatchNorm1d/2d/3d``.
* ``tanh``: ``tanh(x)`` elementwise into ``(-1, 1)``, smooth and bounded (ChebyKAN maps its inputs so; with
  linear links, ``n = 2``, an MLP of hol layers with ``tanh`` between them is the standard tanh MLP, which
  physics-informed training uses: every derivative of the network exists and stays bounded).
* ``none``: identity.

``spatial_dims = 0`` means inputs ``[..., F]`` (statistics over the last dimension); ``spatial_dims = d > 0``
means feature maps ``[B, C, *spatial]`` (statistics over all but the batch dimension).
"""
from __future__ import annotations

from torch import Tensor, nn

from ..checks import check_choice


class _PerSampleNorm(nn.Module):
    def __init__(self, spatial_dims: int = 0, eps: float = 1e-6):
        super().__init__()
        self.spatial_dims, self.eps = spatial_dims, eps

    def _reduce_dims(self, x: Tensor) -> tuple[int, ...]:
        return (-1,) if self.spatial_dims == 0 else tuple(range(1, x.dim()))

    def extra_repr(self) -> str:
        return f"spatial_dims={self.spatial_dims}, eps={self.eps}"


class MaxAbsNorm(_PerSampleNorm):
    """``x / (max|x| + eps)`` per sample."""

    def forward(self, x: Tensor) -> Tensor:
        return x / (x.abs().amax(dim=self._reduce_dims(x), keepdim=True) + self.eps)


class MaxCenterNorm(_PerSampleNorm):
    """``2 (x - (max + min)/2) / (max - min + eps)`` per sample."""

    def forward(self, x: Tensor) -> Tensor:
        dims = self._reduce_dims(x)
        high, low = x.amax(dim=dims, keepdim=True), x.amin(dim=dims, keepdim=True)
        return (2 * x - (high + low)) / (high - low + self.eps)


class FeatureBatchNorm(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` over the last dimension of ``[..., F]`` inputs (any leading dims)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


NORMS = ("max_abs", "max_center", "layer_norm", "batch_norm", "tanh", "none")


def norm(name: str, num_features: int | None = None, *, spatial_dims: int = 0,
         eps: float = 1e-6) -> nn.Module:
    """Build the normalization ``name`` (one of ``NORMS``) for ``num_features`` features or channels."""
    check_choice("norm", name, NORMS)
    if name == "max_abs":
        return MaxAbsNorm(spatial_dims, eps)
    if name == "max_center":
        return MaxCenterNorm(spatial_dims, eps)
    if name == "none":
        return nn.Identity()
    if name == "tanh":
        return nn.Tanh()
    if num_features is None:
        raise ValueError(f"norm {name!r} needs num_features")
    if name == "layer_norm":
        if spatial_dims == 0:
            return nn.LayerNorm(num_features, eps=eps)
        return nn.GroupNorm(1, num_features, eps=eps)
    if spatial_dims == 0:
        return FeatureBatchNorm(num_features, eps=eps)
    batch_norms = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
    if spatial_dims not in batch_norms:
        raise ValueError(f"spatial_dims must be 0, 1, 2 or 3 for batch_norm, got {spatial_dims}")
    return batch_norms[spatial_dims](num_features, eps=eps)
