"""An MLP's hidden widths written in ``d``, the number of inputs: ``model.widths=[d,d,1]`` is ``[3, 3, 1]``
for three variables, so one config fits formulas of any number of variables (``experiment=formula``).

A width is a positive integer or ``a d + b`` written as ``d``, ``2d``, ``2*d+1``, ``d - 1``
(:data:`WIDTH_IN_D`).
:func:`parse_widths` checks the form before any data is read; :func:`resolve_widths` computes the widths
once the data gives ``d``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

REPLACED = ("model.hidden_width", "model.hidden_layers")
"""The keys of an MLP's config that ``model.widths`` replaces (it sets every hidden width)."""
WIDTH_IN_D = re.compile(r"(\d*)\s*\*?\s*d\s*(?:([+-])\s*(\d+))?")
"""A width written in ``d``: an optional integer factor, ``d``, an optional integer added or subtracted."""


def parse_width(index: int, width: str) -> tuple[int, int]:
    """``(a, b)`` of the width ``a d + b`` written as ``width`` (entry ``index`` of ``model.widths``);
    ``ValueError`` naming it when it has another form."""
    match = WIDTH_IN_D.fullmatch(width.strip())
    if match is None:
        raise ValueError(f"model.widths[{index}]={width!r}: a width is a positive integer or written in d, "
                         "the number of inputs (d, 2d, 2*d+1, d-1)")
    factor, sign, offset = match.groups()
    return int(factor or 1), (-1 if sign == "-" else 1) * int(offset or 0)


def parse_widths(widths: Any) -> None:
    """Check the form of every entry of ``model.widths`` written in ``d`` (:func:`parse_width`)."""
    if isinstance(widths, Sequence) and not isinstance(widths, str):
        for index, width in enumerate(widths):
            if isinstance(width, str):
                parse_width(index, width)


def resolve_widths(widths: Any, inputs: int) -> Any:
    """``model.widths`` with every entry written in ``d`` computed for ``d = inputs``, e.g. ``[d, d, 1]`` ->
    ``[3, 3, 1]`` for three variables; other entries as they are (the network checks them). ``ValueError``
    naming an entry of another form (:func:`parse_width`) or one that comes to less than 1."""
    if isinstance(widths, str) or not isinstance(widths, Sequence):
        return widths
    resolved = []
    for index, width in enumerate(widths):
        if isinstance(width, str):
            factor, offset = parse_width(index, width)
            width = factor * inputs + offset
            if width < 1:
                raise ValueError(f"model.widths[{index}]={widths[index]!r} is {width} for d={inputs} inputs; "
                                 "a width is at least 1")
        resolved.append(width)
    return resolved
