"""Argument checks shared by the library and the runner, with one message format.

Every check raises ``ValueError`` with one line naming the argument, the bad value and what is allowed:

* ``"{name} must be {what is allowed}, got {value!r}"``, e.g. ``n must be an integer >= 2, got 1``;
* choices: ``"unknown {name} {value!r}; allowed: {sorted choices}"``.

``bool`` is never accepted where a number is expected (``True`` is an ``int`` in Python). Each check returns
the value it accepted (as ``float`` for numbers, as a tuple for sequences), so callers can write
``self.n = check_int("n", n, 1)``.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def is_int(value: Any) -> bool:
    """Whether ``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` and not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, *,
              why: str = "") -> int:
    """``value`` if it is an integer in ``[minimum, maximum]`` (either bound optional), else ``ValueError``;
    ``why`` is appended to what is allowed (e.g. ``" for piecewise kinds"``)."""
    if (not is_int(value) or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        bounds = _bounds(minimum, maximum, False, False)
        raise ValueError(f"{name} must be an integer{bounds}{why}, got {value!r}")
    return value


def check_number(name: str, value: Any, minimum: float | None = None, maximum: float | None = None, *,
                 above: bool = False, below: bool = False) -> float:
    """``float(value)`` if it is a number in the range, else ``ValueError``.

    The range is ``[minimum, maximum]``; ``above=True`` excludes ``minimum``, ``below=True`` excludes
    ``maximum``. NaN is never in range.
    """
    ok = is_number(value) and value == value
    if ok and minimum is not None:
        ok = value > minimum if above else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if below else value <= maximum
    if not ok:
        raise ValueError(f"{name} must be a number{_bounds(minimum, maximum, above, below)}, got {value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``, else ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: T, allowed: Collection[Any]) -> T:
    """``value`` if it is one of ``allowed``, else ``ValueError`` listing the sorted choices."""
    hashable = isinstance(value, str | int | float | bool | None)
    if not hashable or value not in allowed or (isinstance(value, bool) and value not in
                                                 [a for a in allowed if isinstance(a, bool)]):
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(sorted(str(a) for a in allowed))}")
    return value


def check_ints(name: str, value: Any, length: int, minimum: int) -> tuple[int, ...]:
    """An integer ``>= minimum`` repeated ``length`` times, or a sequence of ``length`` such integers (as
    torch's ``kernel_size``, ``stride``, ...), as a tuple; else ``ValueError``."""
    values = (value,) * length if is_int(value) else value
    if (not isinstance(values, Sequence) or isinstance(values, str) or len(values) != length
            or not all(is_int(v) and v >= minimum for v in values)):
        raise ValueError(f"{name} must be an integer >= {minimum} or a sequence of {length} such integers, "
                         f"got {value!r}")
    return tuple(values)


def check_interval(name: str, value: Any) -> tuple[float, float]:
    """A pair ``[low, high]`` of numbers with ``low < high`` as floats, else ``ValueError``."""
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
            or not all(is_number(v) for v in value) or not value[0] < value[1]):
        raise ValueError(f"{name} must be a pair [low, high] of numbers with low < high, got {value!r}")
    return float(value[0]), float(value[1])


def _bounds(minimum: float | None, maximum: float | None, above: bool, below: bool) -> str:
    if minimum is not None and maximum is not None:
        return f" in {'(' if above else '['}{minimum}, {maximum}{')' if below else ']'}"
    if minimum is not None:
        return f" {'>' if above else '>='} {minimum}"
    if maximum is not None:
        return f" {'<' if below else '<='} {maximum}"
    return ""
