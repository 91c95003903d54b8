"""Fully connected high-order layers.

A layer maps ``[..., I] -> [..., O]`` with a learnable function on every link:

    y[..., o] = sum_i f_oi(x[..., i])  (+ bias[o])         with  f_oi(x) = sum_m weight[o, i, m] phi_m(x)

for a fixed basis ``phi`` (``hol.layers.bases``), evaluated in reference coordinates: each input is first
mapped from its own domain onto the basis' reference domain (:mod:`hol.layers.domain`). It is computed as one
basis expansion per (sample, input), ``E[..., i, m] = phi_m(x[..., i])``, followed by one GEMM of ``E`` viewed
as ``[..., I*K]`` with the weight viewed as ``[O, I*K]``: memory ``O(B I K)``, never ``O(B I O K)``.

Product units (``*_prod`` kinds, ``product``) use the same links in

    y[..., o] = prod_i (1 + f_oi(x_i)) - 1 - (1 - alpha) sum_i f_oi(x_i)

(``alpha = 1`` keeps the linear part of the product's expansion, ``alpha = 0`` removes it).

This class is the builder of every built-in kind with link functions (registered at the end of this module).
"""
from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from ..checks import check_bool, check_choice, check_int, check_number
from ..functional import (
    BACKENDS,
    basis_linear,
    fused_lagrange_linear,
    product_unit_linear,
    segment_sparse_linear,
)
from ..ops.cost import choose_backend, step_of
from ..ops.lagrange import contraction_dtype
from ..ops.registration import autocast_dtype
from .bases import Basis, LagrangeBasis, make_basis
from .domain import fill_missing_domain, has_domain, register_domain, reset_domain, to_reference
from .init import DEFAULT_INIT, INITS, init_link_values
from .inputs import check_input, script_unsupported
from .registry import BUILTIN_KINDS, KINDS, LINK_OPTIONS, check_unused_options, kind_info, register_fc


class HighOrderLinear(nn.Module):
    """A fully connected layer whose every link is a function in a fixed basis.

    Args:
        kind: a high-order kind (``hol.layers.kinds()``): its basis family and whether it is a product unit.
        in_features, out_features: sizes ``I``, ``O``.
        n: nodes per segment, polynomial degree ``n - 1`` (at least 2 for piecewise kinds); harmonics for
            ``fourier``.
        segments: segments ``S`` of the domain (piecewise kinds; 1 for the others).
        length: the reference domain is ``[-length/2, length/2]``; every input's domain starts there
            (buffers ``domain_centre``, ``domain_width``; :func:`hol.adapt_domains` moves them).
        extrapolation: outside the domain, ``polynomial``, ``clamp``, ``linear`` or ``mirror``
            (:mod:`hol.ops.lagrange`).
        init: ``constant``, ``linear`` (default) or ``uniform`` (:mod:`hol.layers.init`).
        alpha: product units: weight of the linear part of the product's expansion.
        dims: ``polynomial_nd``: components of each link's input.
        backend: ``auto``, ``dense``, ``sparse`` (piecewise non-product kinds) or ``fused`` (Lagrange
            non-product kinds); a speed choice only, see :meth:`compute_backend`.
        bias: add a learnable ``bias[o]`` (off by default: the links' constants already act as one).
        device, dtype: of the parameters.

    Options a kind does not take (:attr:`LayerKind.options`) must keep their defaults.

    Shape:
        input ``[..., I]`` (``[..., I, d]`` for tensor-product links), output ``[..., O]``.

    Attributes:
        weight: ``[O, I, K]`` coefficients; for Lagrange kinds the values of each link at its nodes.
        bias: ``[O]`` or ``None``.
        basis: the basis module (``K = basis.width``).
        domain_centre, domain_width: buffers ``[I]`` (``[I, d]`` for tensor-product links), the domain
            ``[c - w/2, c + w/2]`` of each input, mapped onto ``[-length/2, length/2]``
            (:mod:`hol.layers.domain`); absent for linear links (``product``).

    Raises:
        ValueError: naming the bad argument, its value and what is allowed.
    """

    basis: Basis
    weight: nn.Parameter
    bias: nn.Parameter | None
    domain_centre: Tensor
    domain_width: Tensor

    def __init__(self, kind: str, in_features: int, out_features: int, *, n: int = 3, segments: int = 1,
                 length: float = 2.0, extrapolation: str = "polynomial", init: str = DEFAULT_INIT,
                 alpha: float = 1.0, dims: int | None = None, backend: str = "auto", bias: bool = False,
                 device=None, dtype=None):
        super().__init__()
        spec = kind_info(kind)
        if spec.basis is None:
            raise ValueError(f"HighOrderLinear needs a kind with link functions; allowed: "
                             f"{', '.join(_high_order_kinds())}, got {kind!r}")
        check_unused_options(kind, {"n": n, "segments": segments, "length": length,
                                    "extrapolation": extrapolation, "alpha": alpha, "dims": dims},
                             option_defaults())
        self.kind = kind
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self.init = check_choice("init", init, INITS)
        self.alpha = check_number("alpha", alpha)
        check_bool("bias", bias)
        self.basis = make_basis(spec.basis, n=n, segments=segments, length=length,
                                extrapolation=extrapolation, dims=dims, device=device, dtype=dtype)
        self.n, self.segments, self.length = n, segments, float(length)
        self.extrapolation, self.dims = extrapolation, dims
        self.product = spec.product
        self.backend = backend
        # static facts, read at every forward
        self._features = (in_features,) if dims is None else (in_features, dims)
        self._sparse_capable = spec.sparse_capable and isinstance(self.basis, LagrangeBasis)
        self._fusable = spec.fused_capable and isinstance(self.basis, LagrangeBasis)
        self._continuous = isinstance(self.basis, LagrangeBasis) and self.basis.continuous
        factory_kwargs = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, self.basis.width, **factory_kwargs))
        if has_domain(self.basis):
            domain_shape = (in_features,) if dims is None else (in_features, dims)
            register_domain(self, domain_shape, length, **factory_kwargs)
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory_kwargs))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize the weights (``init``), the bias and the domains (the default domain), as after
        construction: also what materializes a layer built on the meta device (``to_empty()``)."""
        init_link_values(self.weight, self.basis, self.init, self.in_features)
        reset_domain(self)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def hparams(self) -> dict:
        """The arguments rebuilding this layer with :func:`hol.layers.fc`: kind, sizes, ``bias`` and the
        options its kind takes (:attr:`~hol.layers.registry.LayerKind.options`)."""
        taken = kind_info(self.kind).options
        options = {name: getattr(self, name) for name in LINK_OPTIONS if name in taken and name != "bias"}
        return {"kind": self.kind, "in_features": self.in_features, "out_features": self.out_features,
                **options, "bias": self.bias is not None}

    def expand(self, x: Tensor) -> Tensor:
        """Basis expansion ``E[..., i, m] = phi_m(z[..., i])`` with ``z`` the inputs in reference coordinates,
        in :func:`~hol.ops.lagrange.contraction_dtype` of ``x``'s dtype (computed in float32 for the half
        types and rounded once to bfloat16; float16 inputs get the float32 values, :mod:`hol.ops.lagrange`).
        Shape: ``[..., I] -> [..., I, K]``."""
        return self.basis(to_reference(self, x)).to(contraction_dtype(x.dtype))

    def links(self, x: Tensor) -> Tensor:
        """Every link's value ``f_oi(x_i)``, in the weight's dtype. Shape: ``[..., I] -> [..., O, I]``
        (``O(B I O)`` memory)."""
        expansion = self.expand(x)
        values = torch.einsum("...ik,oik->...oi", expansion, self.weight.to(expansion.dtype))
        return values.to(self.weight.dtype)

    @property
    def backend(self) -> str:
        """``auto``, ``dense``, ``sparse`` or ``fused`` (:data:`hol.functional.BACKENDS`), checked when set
        (``ValueError`` for another value, ``sparse`` for a kind without segments, ``fused`` for a kind
        without Lagrange links); setting it forgets the decisions ``auto`` made."""
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = _checked_backend(self.kind, value)
        self._decisions: dict[tuple, str] = {}

    def compute_backend(self, x: Tensor) -> str:
        """The path this layer takes for input ``x``: ``dense`` (expansion + GEMM), ``sparse`` (piecewise
        non-product kinds) or ``fused`` (:mod:`hol.functional`); ``backend="auto"`` asks its cost model
        (:func:`hol.ops.cost.choose_backend`), which reads shapes, device, dtype and which gradients the step
        computes, never values, once per batch size class (the batch's power of two, decided at that power),
        dtype, device and step: the decision is cached in the layer. While ``torch.compile`` or
        ``torch.export`` trace, the batch is left out (the large-batch limit decides; a comparison of a
        symbolic batch would become a guard that strict export refuses for a dynamic batch). Exporting to ONNX
        takes the dense path (ONNX has no hol operators)."""
        if self._backend == "dense" or torch.onnx.is_in_onnx_export():
            return "dense"
        if self._backend in ("sparse", "fused"):
            return self._backend
        if not (self._sparse_capable or self._fusable):
            return "dense"
        step = step_of(x, self.weight)
        if torch.compiler.is_compiling():
            return self._decide(None, x.device, step)
        batch = x.numel() // self.in_features
        batch_class = 1 << (batch.bit_length() - 1) if batch > 0 else 0
        key = (batch_class, self.weight.dtype, x.device, step, autocast_dtype(x.device.type))
        decision = self._decisions.get(key)
        if decision is None:
            decision = self._decisions[key] = self._decide(batch_class, x.device, step)
        return decision

    def _decide(self, batch: int | None, device: torch.device, step: str) -> str:
        return choose_backend(n=self.n, segments=self.segments, batch=batch, in_features=self.in_features,
                              out_features=self.out_features, device=device, dtype=self.weight.dtype,
                              continuous=self._continuous, step=step, fusable=self._fusable)

    def forward(self, x: Tensor) -> Tensor:
        features = self._features

        def shape_ok(x: Tensor) -> bool:
            return x.dim() >= len(features) and tuple(x.shape[-len(features):]) == features

        check_input(self, x, shape_ok, f"[..., {', '.join(map(str, features))}]", self.weight)
        backend = self.compute_backend(x)
        if backend == "fused" and isinstance(self.basis, LagrangeBasis):  # from the raw inputs and domains
            return fused_lagrange_linear(x, self.weight, self.basis.transform, segments=self.segments,
                                         length=self.length, continuous=self.basis.continuous,
                                         extrapolation=self.extrapolation, centre=self.domain_centre,
                                         width=self.domain_width, bias=self.bias)
        z = to_reference(self, x)  # the other compute paths work in reference coordinates
        if self.product:
            return product_unit_linear(z, self.weight, self.basis, alpha=self.alpha, bias=self.bias)
        if backend == "sparse" and isinstance(self.basis, LagrangeBasis):
            return segment_sparse_linear(z, self.weight, self.basis.transform, segments=self.segments,
                                         length=self.length, continuous=self.basis.continuous,
                                         extrapolation=self.extrapolation, bias=self.bias)
        return basis_linear(self.basis(z), self.weight, self.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # high-order-layers-torch names the same [O, I, K] tensor ``w``: accept its checkpoints unchanged.
        if prefix + "w" in state_dict and prefix + "weight" not in state_dict:
            state_dict[prefix + "weight"] = state_dict.pop(prefix + "w")
        fill_missing_domain(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.basis.follow(self.weight)  # assign=True replaces the weight, wherever the basis' constants are

    def __prepare_scriptable__(self):
        raise script_unsupported(self)

    def extra_repr(self) -> str:
        defaults = option_defaults()
        hparams = self.hparams()
        parts = [f"kind={self.kind!r}", f"in_features={self.in_features}",
                 f"out_features={self.out_features}"]
        parts += [f"{name}={value!r}" for name, value in hparams.items()
                  if name in defaults and value != defaults[name]]
        return ", ".join(parts)


def option_defaults() -> dict:
    """The defaults of :class:`HighOrderLinear`'s options (written once, in its signature): also those of the
    link options other fc kinds ignore (:func:`hol.layers.registry.check_unused_options`)."""
    parameters = inspect.signature(HighOrderLinear).parameters
    return {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}


def _checked_backend(kind: str, backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS` that ``kind`` can take (``sparse``: the piecewise
    non-product kinds); ``ValueError`` otherwise."""
    check_choice("backend", backend, BACKENDS)
    if backend == "sparse" and not kind_info(kind).sparse_capable:
        raise ValueError(f"backend 'sparse' needs kind continuous or discontinuous, got kind {kind!r}")
    if backend == "fused" and not kind_info(kind).fused_capable:
        raise ValueError(f"backend 'fused' needs kind continuous, discontinuous or polynomial, got kind "
                         f"{kind!r}")
    return backend


def _high_order_kinds() -> list[str]:
    return sorted(name for name, kind in KINDS.items() if kind.basis is not None)


for _kind in BUILTIN_KINDS:
    if _kind.basis is not None:
        register_fc(_kind.name)(HighOrderLinear)
