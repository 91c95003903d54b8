"""Importance and pruning: score links and hidden units of a hol network on samples, drop the small ones.

Link scores (:func:`link_scores`), on the values ``f_oi(x_bi)`` that link ``f_oi`` of a fully connected hol
layer (:class:`~hol.layers.HighOrderLinear`, product units included) takes on the samples, ``x`` the input
the layer receives when the module runs on them (recorded by forward pre-hooks: after input scaling and
normalization), ``m_oi = mean_b f_oi(x_bi)`` their mean:

* ``variation`` (the default): ``s_oi = mean_b |f_oi(x_bi) - m_oi|``. A link that is constant on the
  samples scores 0, whatever its constant: the constant says nothing about the input, and the bias or
  another link of the same output can hold it exactly (below).
* ``std``: ``s_oi = sqrt(mean_b (f_oi(x_bi) - m_oi)^2)``, how pykan's later code (``MultKAN``, KAN 2.0)
  scores each activation (``edge_actscale``, which its ``attribute`` then weights by the units downstream).
* ``mean_abs``: ``s_oi = mean_b |f_oi(x_bi)|``, the KAN paper's score (Liu et al. 2024, "KAN:
  Kolmogorov-Arnold Networks", arXiv:2404.19756, §2.5.1 "Pruning"). It counts a link's constant as
  importance, so it needs the paper's L1 penalty in training: without it, measured, an MLP [3, 5, 1] fitting
  ``exp(sin(pi x) + y^2)`` keeps constants of 0.1-0.3 on the links from ``z``, and none of them is pruned.
  ``variation`` sees through the constants, but not through links that cancel each other (input scores,
  below).

For a sum unit, each score is what pruning the link (below) changes the layer's output ``o`` by on the
samples: its mean absolute change (root mean square for ``std``); pruning several links of ``o`` changes it by
at most the sum of their scores.

Hidden unit ``j`` of an :class:`~hol.networks.MLP`: incoming score ``max_i s_ji`` (its links in the layer
before it), outgoing score ``max_o s_oj`` (its links in the layer after it). A unit is kept when neither is
below the threshold.

Input scores (:func:`input_scores`), hol's addition to pykan's per-link scores: input ``i`` of the first fully
connected hol layer (an MLP's input, after input scaling) scores what pruning all its links at once (below)
changes the network's outputs by, ``mean_b |net(x_b) - net_i(x_b)|`` over the samples and outputs (root mean
square for ``std``), computed by running that copy. A link score sees one link at its own layer's output: the
links of an unused input can cancel each other across units, and a later layer can amplify a small link.
Measured on the slow test of ``tests/test_prune.py`` (3 -> 7 -> 1 fitting ``exp(sin(pi x) + y^2)``, no
sparsity penalty, seeds 0-9): the links from ``z`` vary by up to 2.2e-2 each, and pruning link by link at
1e-2 keeps some of them on 3 seeds; as an input ``z`` scores 7.5e-4 to 2.9e-3, ``x`` 1.05 to 1.12, ``y``
0.48 to 0.52.

Pruning (:func:`prune`), exact where pykan's approximates. A link scoring below the threshold is set to
zero: every coefficient, so ``f_oi`` is 0 everywhere (in a product unit its factor ``1 + f_oi`` becomes 1 and
its linear term 0). Under ``variation`` and ``std`` its mean ``m_oi`` is folded into output ``o`` (below),
so only its variation goes: a link that is constant on the samples is removed without changing the outputs
there (to rounding). Under ``mean_abs`` the link goes whole, as in pykan: folding its mean too would lower
the root mean square change but not always the largest one, and the score would no longer be the cost.

Inputs (``inputs=True``, the default for an MLP whose first layer is a fully connected hol layer) come first:
those scoring below the threshold lose all their links at once, folded as links are (below; an output's
constants go to a link from a kept input), and the links left are scored on that network. Every input may go
(the network is then a constant). The first layer's links from a kept input are not pruned on
their link scores, which measure the change at the first hidden value, before the next layer amplifies it:
those scoring below the threshold are pruned together where that changes the outputs by less than the
threshold (run as for the input scores), else all kept. Measured (seeds above): pruning them on their link
scores made the test RMSE 4.3, 6.6 and 6.9 times the network's on 3 seeds, this test 0.94, 2.2 and 0.97 (2.2:
an output link varying by 5e-3, below the threshold 1e-2 but above the network's RMSE 3.5e-3, is pruned). They
still go with a removed hidden unit.

Folding a constant ``k_o`` (the sum of such means) into output ``o``: into its bias, or into its kept link
with the largest score, every coefficient of which gains ``k_o`` (Lagrange and tensor-product links: their
basis functions sum to 1, so this adds ``k_o`` everywhere, extrapolation included; Fourier links: the
constant coefficient only); where every link of ``o`` is pruned, the one with the largest score (from a kept
unit) holds it, a constant link then, not zero. A product unit folds the factor ``F_o = prod (1 + k)``
instead, as the link ``F_o (1 + f) - 1``: exact for ``alpha = 1``.

In an MLP, a hidden unit scoring below the threshold is removed from the network: the result is a new
:class:`~hol.networks.MLP` with smaller ``widths`` (its ``hparams()`` rebuild it with
:func:`hol.networks.build`; it trains, refines and loads its state dict as any network), the kept links'
coefficients and domains copied. What the removed unit ``j`` gave the next layer is kept: its outgoing links
are pruned (outgoing score below the threshold), or its incoming links are, and then (with an elementwise
normalization, ``none`` or ``tanh``, or ``batch_norm`` in eval mode) the unit outputs a constant ``c_j`` and
each of its outgoing links the constant ``f_oj(c_j)``, folded into output ``o`` (measured: the mean of
``f_oj`` over the samples, in the network whose links are already pruned). The pruned network then differs
from the original by the pruned links' variation only (``mean_abs``: by the pruned links) and the removed
inputs' links. Where folding
cannot be exact (normalizations over all units, ``max_abs``, ``max_center``, ``layer_norm`` and
``batch_norm`` in training mode, where a removed unit changes the others' values; product units with ``alpha
!= 1``; ``product``'s linear links, which hold no constant), the report's ``max_change`` says how much the
network changed: it is always measured, ``max |pruned(x) - module(x)|`` over the samples.

A hidden value keeps at least one unit (the one with the largest ``min(incoming, outgoing)``), and only
hidden values between two fully connected hol layers lose units (next to a ``linear`` input or output layer,
all stay). Layers the samples do not reach are left as they are. Any other module tree than an MLP has its
links pruned only (``inputs=True``: its first fully connected hol layer's inputs first): no unit is removed
(also not from an MLP inside it).

This module is itself callable: ``hol.prune(net, samples)`` is :func:`prune` (as ``hol.refine``).
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .checks import check_bool, check_choice, check_number
from .layers.bases import FourierBasis
from .layers.domain import CENTRE, WIDTH
from .layers.fully_connected import HighOrderLinear
from .networks import MLP, build
from .samples import eval_mode, sample_batches

SCORES = ("mean_abs", "std", "variation")
"""The link scores (module docstring)."""

_CHUNK_ELEMENTS = 1 << 22  # bound on the [rows, O, I] link values evaluated at once


@dataclasses.dataclass(frozen=True)
class PruneReport:
    """What :func:`prune` removed and how much the network changed.

    Attributes:
        links_removed: per fully connected hol layer the samples reached (qualified name, ``""`` for the
            module itself), how many of its links are pruned (score below the threshold), from a removed
            input or gone with a removed unit.
        units_removed: per hidden value ``l`` of an MLP whose units were scored (:func:`unit_scores`), the
            indices (in the original network) of its removed units; empty for other modules and for
            ``units=False``.
        inputs_removed: the inputs (of the first fully connected hol layer) whose links were all pruned
            jointly (:func:`input_scores` below the threshold), in order; empty for ``inputs=False``.
        max_change: ``max |pruned(x) - module(x)|`` over the samples and every output (computed).
    """

    links_removed: dict[str, int]
    units_removed: dict[int, list[int]]
    inputs_removed: list[int]
    max_change: float


def link_scores(module: nn.Module, samples: Tensor | Iterable[Tensor],
                score: str = "variation") -> dict[str, Tensor]:
    """The score ``s_oi`` of every link of every fully connected hol layer of ``module`` (module docstring),
    on the inputs each layer receives when ``module`` runs on ``samples`` in eval mode without gradients (each
    submodule's mode is restored afterwards).

    Args:
        module: any ``nn.Module``; :class:`~hol.layers.HighOrderLinear` layers anywhere in its tree (the
            module itself may be one) are scored.
        samples: inputs of ``module``, a tensor or an iterable of batches, each a tensor of inputs or a tuple
            (or list) whose first entry is (as :func:`hol.adapt_domains` takes them).
        score: ``variation`` (``mean |f_oi - mean f_oi|``, blind to a link's constant), ``std`` or
            ``mean_abs`` (pykan's paper score ``mean |f_oi|``), one of :data:`SCORES`.

    Returns:
        ``{name: scores}``, ``name`` the layer's qualified name (``""`` for ``module`` itself), ``scores`` a
        float64 ``[O, I]`` tensor; layers the samples do not reach are not listed.

    Raises:
        ValueError: ``score`` unknown; ``samples`` empty or not tensors, or not of an MLP's input shape
            ``[..., in_features]``.
    """
    check_choice("score", score, SCORES)
    return _scores(module, _batches(module, samples), score)[0]


@torch.no_grad()
def input_scores(module: nn.Module, samples: Tensor | Iterable[Tensor], score: str = "variation") -> Tensor:
    """The score of every input of ``module``'s first fully connected hol layer: how much ``module``'s
    outputs change on ``samples`` when all the links from that input are pruned at once (module docstring),
    computed by running such a copy of ``module`` (one per input) in eval mode without gradients. Unlike a
    link score, it sees links that cancel each other across units and a later layer's amplification.

    Args:
        module: an :class:`~hol.networks.MLP` whose first layer is a fully connected hol layer (its inputs,
            after input scaling, are the network's), or any ``nn.Module``: the inputs of the first
            :class:`~hol.layers.HighOrderLinear` in its tree that the samples reach are scored.
        samples: inputs of ``module``, as :func:`link_scores` takes them.
        score: the link score (:data:`SCORES`) that decides how a pruned link's mean is kept, as in
            :func:`prune`; ``variation`` and ``mean_abs`` give the mean absolute change of the outputs,
            ``std`` its root mean square.

    Returns:
        a float64 ``[I]`` tensor, ``I`` the layer's ``in_features``.

    Raises:
        ValueError: ``score`` unknown, ``samples`` as :func:`link_scores` refuses them, an MLP whose first
            layer is no fully connected hol layer, no such layer reached, or one with a parametrized weight.
    """
    check_choice("score", score, SCORES)
    batches = _batches(module, samples)
    scores, means = _scores(module, batches, score)
    name = _input_layer(module, scores)
    return _link_changes(module, batches, name, _columns(scores[name]), scores[name], means[name], score)


def unit_scores(net: MLP, scores: Mapping[str, Tensor]) -> dict[int, tuple[Tensor, Tensor]]:
    """pykan's node scores of the hidden units of ``net``, from its link scores (``link_scores(net, ...)``,
    any score).

    Returns:
        ``{l: (incoming, outgoing)}`` for every hidden value ``l`` (the output of ``net.layers[l]``, input of
        ``net.layers[l + 1]``) between two scored layers, each ``[widths[l]]``: ``incoming[j] = max_i
        s_ji`` over ``layers[l]``'s links into unit ``j``, ``outgoing[j] = max_o s_oj`` over ``layers[l +
        1]``'s links from it.
    """
    units = {}
    for l in range(len(net.widths)):
        before, after = scores.get(f"layers.{l}"), scores.get(f"layers.{l + 1}")
        if before is not None and after is not None:
            units[l] = (before.amax(1), after.amax(0))
    return units


@torch.no_grad()
def prune(module: nn.Module, samples: Tensor | Iterable[Tensor], threshold: float = 1e-2,
          units: bool = True, score: str = "variation",
          inputs: bool | None = None) -> tuple[nn.Module, PruneReport]:
    """A copy of ``module`` without its inputs (their links), links, and (MLP) hidden units, scoring below
    ``threshold`` on ``samples`` (module docstring), and the report of what it removed.

    The input is left untouched. ``threshold = 0`` removes nothing (the copy computes bit for bit the same).

    Args:
        module: any ``nn.Module``; the links of every fully connected hol layer in its tree that the samples
            reach are pruned; an :class:`~hol.networks.MLP` also loses hidden units (``units``).
        samples: inputs of ``module``, as :func:`link_scores` takes them (iterated once and kept for the
            passes over them); scores, means and ``max_change`` are computed on them, in eval mode.
        threshold: links and units with a score below it are removed (pykan's default ``1e-2``).
        units: remove the hidden units of an MLP as well (``False``: prune links only).
        score: the link score, as :func:`link_scores` takes it; under ``variation`` and ``std`` a pruned
            link's mean is kept (folded into its output), under ``mean_abs`` it goes with the link.
        inputs: first prune all the links from each input scoring below ``threshold`` (:func:`input_scores`)
            jointly, and the first layer's other links by the network's outputs, not by their link scores
            (module docstring); a copy of ``module`` runs over the samples once per input and once per kept
            input with links scoring below ``threshold``. ``None`` (the default): for an MLP whose first
            layer is a fully connected hol layer.

    Returns:
        ``(pruned, report)``: the pruned copy (an MLP with smaller ``widths`` where units were removed) and
        a :class:`PruneReport`.

    Raises:
        ValueError: ``threshold`` negative or not a number, ``units`` or ``inputs`` not a bool (``inputs``:
            or ``None``), ``score`` unknown, ``samples`` as :func:`link_scores` refuses them, ``inputs=True``
            where :func:`input_scores` refuses ``module``, or a hol layer with a parametrized weight.

    Examples::

        >>> import torch, hol
        >>> _ = torch.manual_seed(0)
        >>> net = hol.networks.MLP("continuous", 3, 1, widths=[4], normalization="none").double()
        >>> with torch.no_grad():
        ...     net.layers[0].weight[:, 2] = 0.5  # input 2 unused: its links are constant
        >>> x = torch.rand(100, 3, dtype=torch.float64) * 2 - 1
        >>> pruned, report = hol.prune(net, x, threshold=1e-6)
        >>> report.inputs_removed, report.links_removed["layers.0"], report.max_change < 1e-12
        ([2], 4, True)
    """
    threshold = check_number("threshold", threshold, 0)
    check_bool("units", units)
    check_choice("score", score, SCORES)
    if inputs is not None:
        check_bool("inputs", inputs)
    batches = _batches(module, samples)
    scores, means = _scores(module, batches, score)
    if inputs is None:
        inputs = isinstance(module, MLP) and isinstance(module.layers[0], HighOrderLinear)
    start, first, dropped = module, "", torch.zeros(0, dtype=torch.bool)
    if inputs:
        first = _input_layer(module, scores)
        start, dropped = _drop_inputs(module, batches, first, scores[first], means[first], score, threshold)
        if dropped.any():  # the links left are scored on the network without these inputs
            scores, means = _scores(start, batches, score)
    kept: dict[int, Tensor] = {}
    if units and isinstance(module, MLP):
        for l, (incoming, outgoing) in unit_scores(module, scores).items():
            keep = ~((incoming < threshold) | (outgoing < threshold))
            if not keep.any():
                keep[torch.minimum(incoming, outgoing).argmax()] = True  # a hidden value keeps one unit
            kept[l] = keep
    removed = {name: value < threshold for name, value in scores.items()}
    if inputs:
        removed[first] = _first_links(start, batches, first, scores[first], means[first], score, threshold,
                                      dropped)
    gone = {f"layers.{l + 1}": ~keep[None, :] for l, keep in kept.items()}
    targets = {name: _targets(value, removed[name], gone.get(name)) for name, value in scores.items()}

    pruned = copy.deepcopy(start)
    for name, layer in pruned.named_modules():
        if name in scores and isinstance(layer, HighOrderLinear):
            _check_unparametrized(name, layer)
            _prune_links(layer, removed[name], means[name], targets[name], score)
    for l, keep in kept.items():
        removed[f"layers.{l}"] |= ~keep[:, None]
        removed[f"layers.{l + 1}"] |= ~keep[None, :]
    if not all(keep.all() for keep in kept.values()):
        assert isinstance(pruned, MLP)
        means = _scores(pruned, batches, "mean_abs")[1]  # one pass: the means only
        pruned = _remove_units(pruned, kept, targets, means)
    report = PruneReport(links_removed={name: int(mask.sum()) for name, mask in removed.items()},
                         units_removed={l: (~keep).nonzero().flatten().tolist() for l, keep in kept.items()},
                         inputs_removed=dropped.nonzero().flatten().tolist(),
                         max_change=_max_change(module, pruned, batches))
    return pruned, report


def _input_layer(module: nn.Module, scores: Mapping[str, Tensor]) -> str:
    """The name of the first fully connected hol layer the samples reached (``scores`` lists them in that
    order): an MLP's first layer, whose inputs are the network's."""
    if isinstance(module, MLP) and not isinstance(module.layers[0], HighOrderLinear):
        raise ValueError("inputs can be scored only where the MLP's first layer is a fully connected hol "
                         f"layer, got a {type(module.layers[0]).__name__}")
    if not scores:
        raise ValueError("inputs can be scored only where the samples reach a fully connected hol layer, "
                         "got none")
    return next(iter(scores))


def _columns(scores: Tensor) -> Tensor:
    """``[I, O, I]``: entry ``i`` marks every link from input ``i`` of a layer with link ``scores [O, I]``."""
    inputs = torch.arange(scores.shape[1], device=scores.device)
    return (inputs[:, None, None] == inputs[None, None, :]).expand(-1, scores.shape[0], -1)


def _drop_inputs(module: nn.Module, batches: list[Tensor], name: str, scores: Tensor, means: Tensor,
                 score: str, threshold: float) -> tuple[nn.Module, Tensor]:
    """``(network, dropped)``: the inputs of layer ``name`` (``module``'s first) scoring below ``threshold``
    (``dropped``, ``[I]`` bool) and ``module``, or where there are such inputs, a copy without their links."""
    dropped = _link_changes(module, batches, name, _columns(scores), scores, means, score) < threshold
    if not dropped.any():
        return module, dropped
    links = dropped.expand_as(scores)  # every link from a dropped input
    module = copy.deepcopy(module)
    _prune_links(module.get_submodule(name), links, means, _targets(scores, links), score)
    return module, dropped


def _first_links(module: nn.Module, batches: list[Tensor], name: str, scores: Tensor, means: Tensor,
                 score: str, threshold: float, dropped: Tensor) -> Tensor:
    """``[O, I]``: the links of layer ``name`` (``module``'s first) to prune: those from the ``dropped``
    inputs (already zero in ``module``), and, per kept input, its links scoring below ``threshold`` where
    pruning them together changes ``module``'s outputs by less than ``threshold`` (module docstring)."""
    small = (scores < threshold) & ~dropped
    groups = _columns(scores)[small.any(0)] & small  # [K, O, I]: per kept input with small links, those
    changes = _link_changes(module, batches, name, groups, scores, means, score)
    return dropped.expand_as(scores) | groups[changes < threshold].any(0)


@torch.no_grad()
def _link_changes(module: nn.Module, batches: list[Tensor], name: str, groups: Tensor, scores: Tensor,
                  means: Tensor, score: str) -> Tensor:
    """Per group ``groups[k]`` (``[K, O, I]``, bool) of links of layer ``name`` (link ``scores`` and ``means``
    ``[O, I]``): how much pruning them together (:func:`_prune_links`) changes ``module``'s outputs on the
    batches (:func:`input_scores`). One copy of ``module`` runs, its layer restored between the groups."""
    copied = copy.deepcopy(module)
    layer = copied.get_submodule(name)
    assert isinstance(layer, HighOrderLinear)
    _check_unparametrized(name, layer)
    written = [tensor for tensor in (layer.weight, layer.bias) if tensor is not None]  # what _fold changes
    saved = [tensor.clone() for tensor in written]
    reference = _outputs(module, batches)
    changes = torch.empty(len(groups), dtype=torch.float64, device=scores.device)
    for k, links in enumerate(groups):
        for tensor, value in zip(written, saved, strict=True):
            tensor.copy_(value)
        _prune_links(layer, links, means, _targets(scores, links), score)
        change = _outputs(copied, batches) - reference
        changes[k] = change.square().mean().sqrt() if score == "std" else change.abs().mean()
    return changes


def _targets(scores: Tensor, removed: Tensor, gone: Tensor | None = None) -> Tensor:
    """``[O]``: the link of each output that holds the folded constants (module docstring): its kept link with
    the largest score; where every link is ``removed`` (``[O, I]``), the one with the largest score not from a
    removed unit (``gone``, ``[1, I]``)."""
    allowed = scores if gone is None else scores.masked_fill(gone, -torch.inf)
    excluded = removed if gone is None else removed | gone
    return torch.where(excluded.all(1), allowed.argmax(1), scores.masked_fill(excluded, -torch.inf).argmax(1))


def _prune_links(layer: nn.Module, links: Tensor, means: Tensor, targets: Tensor, score: str) -> None:
    """Set the ``links`` (``[O, I]``, bool) of ``layer`` to zero in place, their ``means`` folded into the
    links ``targets`` (not under ``mean_abs``)."""
    assert isinstance(layer, HighOrderLinear)
    layer.weight[links] = 0
    if score != "mean_abs" and links.any():
        _fold(layer, means.masked_fill(~links, 0), targets)


def _check_unparametrized(name: str, layer: nn.Module) -> None:
    """Refuse a layer whose weight is parametrized: pruning writes its weight."""
    if parametrize.is_parametrized(layer, "weight"):
        raise ValueError(f"cannot prune layer {name or type(layer).__name__!r}: its weight is parametrized")


def _remove_units(net: MLP, kept: Mapping[int, Tensor], targets: Mapping[str, Tensor],
                  means: Mapping[str, Tensor]) -> MLP:
    """``net`` (whose pruned links are zero) rebuilt with the units ``kept[l]`` of each hidden value ``l``
    only, each removed unit's mean contribution to the next layer (``means``, in that network) folded into
    the link ``targets[name][o]`` of each output (module docstring)."""
    for l, keep in kept.items():
        if not keep.all():
            name = f"layers.{l + 1}"
            _fold(net.layers[l + 1], means[name][:, ~keep], targets[name])
    state = {}
    for key, value in net.state_dict().items():
        group, _, rest = key.partition(".")
        index, _, tensor = rest.partition(".")
        l = int(index) if group in ("layers", "norms") else -1
        if group == "layers" and l in kept and tensor in ("weight", "bias"):
            value = value[kept[l].to(value.device)]  # the layer's outputs
        if group == "layers" and l - 1 in kept and tensor == "weight":
            value = value[:, kept[l - 1].to(value.device)]  # its inputs
        if group == "layers" and l - 1 in kept and tensor in (CENTRE, WIDTH):
            value = value[kept[l - 1].to(value.device)]
        if group == "norms" and l in kept and value.dim():
            value = value[kept[l].to(value.device)]  # per-feature parameters and statistics
        state[key] = value.clone()
    widths = [int(kept[l].sum()) if l in kept else width for l, width in enumerate(net.widths)]
    with torch.random.fork_rng(devices=[]):  # the new network's initial values are overwritten
        smaller = build({**net.hparams(), "widths": widths})
    smaller.load_state_dict(state, assign=True)  # the dtypes and devices of net's tensors
    frozen = {name for name, parameter in net.named_parameters() if not parameter.requires_grad}
    for name, parameter in smaller.named_parameters():
        parameter.requires_grad_(name not in frozen)
    modes = {name: sub.training for name, sub in net.named_modules()}
    for name, sub in smaller.named_modules():
        sub.training = modes.get(name, sub.training)
    assert isinstance(smaller, MLP)
    return smaller


def _fold(layer: nn.Module, contributions: Tensor, targets: Tensor) -> None:
    """Fold the constants ``contributions[o, j]`` that pruned links or removed inputs gave output ``o`` into
    ``layer``: a sum's total into its bias, or into link ``(o, targets[o])``; a product unit's factor
    ``prod_j (1 + c)`` into that link (module docstring). Linear links (no constant) are left as they are.
    Shapes: ``contributions [O, R]``, ``targets [O]``."""
    assert isinstance(layer, HighOrderLinear)
    weight = layer.weight
    contributions = contributions.to(weight.dtype)
    if not layer.product and layer.bias is not None:
        layer.bias.add_(contributions.sum(1))
        return
    if not (layer.basis.nodal or isinstance(layer.basis, FourierBasis)):
        return
    outputs = torch.arange(weight.shape[0], device=weight.device)
    targets = targets.to(weight.device)
    if layer.product:
        factor = (1 + contributions).prod(1)
        weight[outputs, targets] *= factor[:, None]
        constant = factor - 1
    else:
        constant = contributions.sum(1)
    if layer.basis.nodal:
        weight[outputs, targets] += constant[:, None]
    else:
        weight[outputs, targets, 0] += constant  # the Fourier series' constant term


def _scores(module: nn.Module, batches: list[Tensor],
            score: str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``({name: s_oi}, {name: m_oi})`` of the ``score`` (module docstring) and the mean of every link of
    every fully connected hol layer the batches reach, float64 ``[O, I]``: one pass over the batches, a
    second for the scores about the mean."""
    moments = _link_moments(module, batches)
    means = {name: mean for name, (_, mean, _) in moments.items()}
    if score == "mean_abs":
        return {name: mean_abs for name, (mean_abs, _, _) in moments.items()}, means
    moments = _link_moments(module, batches, means)
    if score == "std":
        return {name: square.sqrt() for name, (_, _, square) in moments.items()}, means
    return {name: variation for name, (variation, _, _) in moments.items()}, means


@torch.no_grad()
def _link_moments(module: nn.Module, batches: list[Tensor],
                  centres: Mapping[str, Tensor] | None = None) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    """``{name: (mean |d|, mean d, mean d^2)}``, ``d = f_oi - centres[name]`` (default ``f_oi``), float64
    ``[O, I]``, of every fully connected hol layer the batches reach when ``module`` runs on them in eval
    mode."""
    sums: dict[str, list[Any]] = {}  # name: [sum |d|, sum d, sum d^2, rows]

    def recorder(name: str):
        def hook(layer: HighOrderLinear, args: tuple) -> None:
            features = (layer.in_features,) if layer.dims is None else (layer.in_features, layer.dims)
            rows = args[0].detach().reshape(-1, *features)
            step = max(1, _CHUNK_ELEMENTS // (layer.out_features * layer.in_features))
            total = sums.setdefault(name, [0.0, 0.0, 0.0, 0])
            centre = 0.0 if centres is None else centres[name]
            for chunk in rows.split(step):
                values = layer.links(chunk).double() - centre  # [rows, O, I]
                total[0] = total[0] + values.abs().sum(0)
                total[1] = total[1] + values.sum(0)
                total[2] = total[2] + values.square().sum(0)
                total[3] += chunk.shape[0]
        return hook

    handles = [layer.register_forward_pre_hook(recorder(name)) for name, layer in module.named_modules()
               if isinstance(layer, HighOrderLinear)]
    try:
        with eval_mode(module):
            for batch in batches:
                module(batch)
    finally:
        for handle in handles:
            handle.remove()
    return {name: (abs_sum / rows, signed_sum / rows, square_sum / rows)
            for name, (abs_sum, signed_sum, square_sum, rows) in sums.items() if rows}


@torch.no_grad()
def _max_change(module: nn.Module, pruned: nn.Module, batches: list[Tensor]) -> float:
    """``max |pruned(x) - module(x)|`` over the batches and every tensor of the outputs, both in eval mode."""
    change = 0.0
    with eval_mode(module), eval_mode(pruned):
        for batch in batches:
            for old, new in zip(_tensors(module(batch)), _tensors(pruned(batch)), strict=True):
                if old.numel():
                    change = max(change, (new.double() - old.double()).abs().max().item())
    return change


@torch.no_grad()
def _outputs(module: nn.Module, batches: list[Tensor]) -> Tensor:
    """Every tensor of ``module``'s outputs on the batches in eval mode, flattened to float64, in one."""
    with eval_mode(module):
        return torch.cat([tensor.double().flatten() for batch in batches
                          for tensor in _tensors(module(batch))])


def _batches(module: nn.Module, samples: Any) -> list[Tensor]:
    """The non-empty input batches of ``samples`` (a tensor, or an iterable of tensors or of ``(inputs,
    targets, ...)`` tuples), kept for the several passes; an MLP's checked against its input shape."""
    expected = None
    if isinstance(module, MLP):
        dims = getattr(module.layers[0], "dims", None)
        expected = (module.hparams()["in_features"], *([] if dims is None else [dims]))
    batches = list(sample_batches(samples))
    for batch in batches:
        if expected is not None and (batch.dim() < len(expected)
                                     or tuple(batch.shape[-len(expected):]) != expected):
            raise ValueError(f"samples must be inputs [..., {', '.join(map(str, expected))}] of the MLP, got "
                             f"a batch of shape {tuple(batch.shape)}")
    if not batches:
        raise ValueError("samples must hold at least one input, got none")
    return batches


def _tensors(output: Any) -> list[Tensor]:
    """The tensors of a module's output: a tensor, or those in a tuple, list, mapping or dataclass (e.g.
    :class:`hol.vae.VAEOutput`), in order."""
    if isinstance(output, Tensor):
        return [output]
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        output = [getattr(output, field.name) for field in dataclasses.fields(output)]
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, tuple | list):
        return [tensor for item in output for tensor in _tensors(item)]
    return []


class _CallableModule(types.ModuleType):
    """The type of this module: calling it calls :func:`prune`."""

    def __call__(self, module: nn.Module, samples: Tensor | Iterable[Tensor], threshold: float = 1e-2,
                 units: bool = True, score: str = "variation",
                 inputs: bool | None = None) -> tuple[nn.Module, PruneReport]:
        return prune(module, samples, threshold, units, score, inputs)


sys.modules[__name__].__class__ = _CallableModule
