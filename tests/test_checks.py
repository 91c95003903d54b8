"""hol.checks: every check accepts what it promises, refuses the rest (bools as numbers included), and names
the argument, the bad value and what is allowed in one line."""
from __future__ import annotations

import math
import re

import pytest

from hol.checks import check_bool, check_choice, check_int, check_interval, check_ints, check_number


def test_accepted_values_are_returned():
    assert check_int("n", 3, 1) == 3 and check_int("k", -5) == -5 and check_int("m", 4, 0, 4) == 4
    assert check_number("lr", 1, 0) == 1.0 and isinstance(check_number("lr", 1, 0), float)
    assert check_bool("bias", False) is False and check_choice("mode", "a", ("a", "b")) == "a"
    assert check_ints("stride", 2, 3, 1) == (2, 2, 2) and check_ints("stride", [1, 2], 2, 1) == (1, 2)
    assert check_interval("domain", [-1, 2]) == (-1.0, 2.0)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: check_int("n", 1, 2), "n must be an integer >= 2, got 1"),
    (lambda: check_int("n", True, 0), "n must be an integer >= 0, got True"),
    (lambda: check_int("n", 2.0, 1), "n must be an integer >= 1, got 2.0"),
    (lambda: check_int("n", 5, 1, 4), "n must be an integer in [1, 4], got 5"),
    (lambda: check_int("n", 1, 2, why=" for piecewise kinds"),
     "n must be an integer >= 2 for piecewise kinds, got 1"),
    (lambda: check_number("lr", -0.1, 0), "lr must be a number >= 0, got -0.1"),
    (lambda: check_number("lr", math.nan, 0), "lr must be a number >= 0, got nan"),
    (lambda: check_number("p", 1, 0, 1, below=True), "p must be a number in [0, 1), got 1"),
    (lambda: check_number("p", 0, 0, 1, above=True), "p must be a number in (0, 1], got 0"),
    (lambda: check_number("x", False), "x must be a number, got False"),
    (lambda: check_bool("bias", "yes"), "bias must be True or False, got 'yes'"),
    (lambda: check_bool("bias", 1), "bias must be True or False, got 1"),
    (lambda: check_choice("colour", "red", ("green", "blue")), "unknown colour 'red'; allowed: blue, green"),
    (lambda: check_choice("dim", True, (1, 2, 3)), "unknown dim True; allowed: 1, 2, 3"),
    (lambda: check_choice("mode", ["a"], ("a",)), "unknown mode ['a']; allowed: a"),
    (lambda: check_ints("stride", 0, 2, 1),
     "stride must be an integer >= 1 or a sequence of 2 such integers, got 0"),
    (lambda: check_ints("stride", (1, 2, 3), 2, 1), "a sequence of 2 such integers, got (1, 2, 3)"),
    (lambda: check_interval("domain", [1, 1]),
     "domain must be a pair [low, high] of numbers with low < high"),
    (lambda: check_interval("domain", "ab"), "domain must be a pair [low, high]"),
])
def test_refused_values_name_argument_value_and_what_is_allowed(call, message):
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        call()
    assert "\n" not in str(info.value)
