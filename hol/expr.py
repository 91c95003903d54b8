"""A restricted expression language for formulas (``data.expr``, the PDEs' forcing and solutions), parsed
without ``eval``.

Grammar (Python syntax, parsed with :mod:`ast`, then checked node by node against an allow-list):

* numbers (``1``, ``0.25``, ``1e-3``), the variables (by default ``x`` and ``y``; any identifiers given to
  :func:`parse`), the constants ``pi`` and ``e``;
* binary ``+ - * / **``, unary ``-`` and ``+``, parentheses;
* calls, by position, of numpy's elementary functions by their numpy names (:data:`ELEMENTARY`: ``sin``,
  ``arcsin``, ``sinh``, ``arctanh``, ``exp``, ``log1p``, ``sqrt``, ``abs``, ``arctan2``, ``hypot``, ...),
  evaluated by torch (differentiable, on the inputs' device);
* calls of every real function of ``scipy.special`` by its scipy name and argument order (:data:`SPECIAL`:
  each ufunc with a loop of real arguments and one real result, ``jv(x, y)`` is ``scipy.special.jv(x, y)``,
  ``lpmv(0, x, y)``, ``ellipkinc``, ``erf``, ``gamma``, ...), evaluated by scipy in float64 (values only, no
  gradient). Arguments that scipy takes as integers (``eval_hermite``'s degree) must be integers. Two
  conventions for functions with no single real result:

  - ``ellipj(u, m)`` is ``sn(u | m)``, the first output of ``scipy.special.ellipj(u, m)``;
  - ``sph_harm(m, n, x, y)`` is the real part of the spherical harmonic ``Y_n^m`` with azimuth ``x`` and
    polar angle ``y``, ``scipy.special.sph_harm_y(n, m, y, x).real`` (the argument order of scipy's former
    ``sph_harm(m, n, theta, phi)``, which the KAN paper's Table 1 uses).

A name is a variable where it is read and a function where it is called: a variable may be named ``gamma``.
Anything else (attributes, other names, keyword arguments, comparisons, subscripts, lambdas, ...) is rejected
with a ``ValueError`` naming what is not allowed. The result is a tree of torch operations:
``Expression(*values)`` evaluates element-wise on tensors, one per variable in the order given to
:func:`parse`.

Examples::

    >>> f = parse("0.5*cos(1.5*pi/(abs(x)+0.25))")
    >>> f.variables
    ('x',)
    >>> f(torch.zeros(1))
    tensor([0.5000])
    >>> g = parse("jv(nu, r) * exp(-r)", variables=("nu", "r"))
    >>> round(g(torch.tensor([0.0]), torch.tensor([1.0])).item(), 6)  # J_0(1) / e
    0.281501
"""
from __future__ import annotations

import ast
import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.special
import torch
from torch import Tensor

VARIABLES = ("x", "y")
CONSTANTS = {"pi": math.pi, "e": math.e}


def _cbrt(value: Tensor) -> Tensor:
    return torch.sign(value) * value.abs() ** (1 / 3)


ELEMENTARY: dict[str, Callable[..., Tensor]] = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "arcsin": torch.asin, "arccos": torch.acos,
    "arctan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh, "arcsinh": torch.asinh,
    "arccosh": torch.acosh, "arctanh": torch.atanh, "exp": torch.exp, "exp2": torch.exp2,
    "expm1": torch.expm1, "log": torch.log, "log2": torch.log2, "log10": torch.log10, "log1p": torch.log1p,
    "sqrt": torch.sqrt, "cbrt": _cbrt, "square": torch.square, "abs": torch.abs, "absolute": torch.abs,
    "sign": torch.sign, "floor": torch.floor, "ceil": torch.ceil, "arctan2": torch.atan2,
    "hypot": torch.hypot, "power": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum,
}
"""numpy's elementary functions by their numpy names, as torch functions (numpy's argument order)."""

BINARY: dict[type[ast.operator], Callable[[Tensor, Tensor], Tensor]] = {
    ast.Add: torch.add, ast.Sub: torch.sub, ast.Mult: torch.mul, ast.Div: torch.div, ast.Pow: torch.pow}
UNARY: dict[type[ast.unaryop], Callable[[Tensor], Tensor]] = {
    ast.USub: torch.neg, ast.UAdd: lambda value: value}
_ARITY = dict.fromkeys(("arctan2", "hypot", "power", "maximum", "minimum"), 2)


def _real_loop(ufunc: np.ufunc) -> str | None:
    """The argument types (``"d"`` real, ``"l"`` integer) of ``ufunc``'s real loop with one real result,
    preferring real arguments; ``None``: it has none."""
    loops = [types.split("->")[0] for types in ufunc.types
             if types.endswith("->d") and set(types.split("->")[0]) <= {"d", "l"}]
    return min(loops, key=lambda inputs: inputs.count("l"), default=None) if ufunc.nout == 1 else None


SPECIAL: dict[str, str] = {name: loop for name in dir(scipy.special)
                           if isinstance(function := getattr(scipy.special, name), np.ufunc)
                           and (loop := _real_loop(function)) is not None and name not in ELEMENTARY}
"""The real functions of ``scipy.special`` (each name's argument types: ``d`` real, ``l`` integer) and the two
conventions ``ellipj`` (sn) and ``sph_harm`` (module docstring); names numpy also has (``cbrt``, ``expm1``,
...) are :data:`ELEMENTARY`'s."""
SPECIAL.update({"ellipj": "dd", "sph_harm": "lldd"})

ALLOWED = ("numbers, the variables, pi, e, + - * / **, unary -, parentheses, numpy's elementary functions "
           "(sin, arcsin, sinh, exp, log1p, sqrt, abs, arctan2, ...) and scipy.special's real functions by "
           "their names (jv, lpmv, ellipkinc, erf, gamma, ...; ellipj is sn, sph_harm the real part of "
           "Y_n^m)")
MAX_LENGTH = 1000

Node = Callable[[dict], Tensor]


def _scipy_function(name: str) -> Callable[..., np.ndarray]:
    if name == "ellipj":
        return lambda u, m: scipy.special.ellipj(u, m)[0]
    if name == "sph_harm":
        return lambda m, n, azimuth, polar: scipy.special.sph_harm_y(n, m, polar, azimuth).real
    return getattr(scipy.special, name)


def _special(name: str, text: str) -> Callable[..., Tensor]:
    """``scipy.special``'s ``name`` on tensors: evaluated in float64 on the CPU, returned in the dtype and on
    the device of the first tensor argument."""
    function, types = _scipy_function(name), SPECIAL[name]

    def evaluate(*arguments: Tensor) -> Tensor:
        like = arguments[0]
        values = [argument.detach().double().cpu().numpy() for argument in arguments]
        for position, kind in enumerate(types):
            if kind == "l":
                fractional = values[position][values[position] != np.round(values[position])]
                if fractional.size:
                    raise ValueError(f"bad expression {text!r}: argument {position + 1} of {name} must be an "
                                     f"integer, got {float(fractional.flat[0])!r}")
                values[position] = values[position].astype(np.int64)
        result = np.asarray(function(*values), dtype=np.float64)
        return torch.from_numpy(result).to(dtype=like.dtype, device=like.device)

    return evaluate


class Expression:
    """A parsed expression; call it with one tensor per variable (in the order given to :func:`parse`; the
    leading ones suffice when the expression uses no later one), all of one shape or broadcastable.

    Attributes:
        text: the expression as given.
        names: the variables it may use, in order.
        variables: the variables it uses, in the order of ``names``.
    """

    def __init__(self, text: str, root: Node, names: tuple[str, ...], used: set):
        self.text, self._root, self.names = text, root, names
        self.variables = tuple(name for name in names if name in used)

    @property
    def dims(self) -> int:
        """Leading variables the expression needs: 1 + the position of the last one it uses (at least 1;
        with ``x, y``: 2 when ``y`` appears, else 1)."""
        return max((self.names.index(name) + 1 for name in self.variables), default=1)

    def __call__(self, *values: Tensor) -> Tensor:
        if not values:
            raise ValueError(f"expression {self.text!r}: call it with a tensor per variable "
                             f"({', '.join(self.names)})")
        missing = [name for name in self.variables if self.names.index(name) >= len(values)]
        if missing:
            raise ValueError(f"expression {self.text!r} uses {', '.join(missing)}; call it with "
                             f"{', '.join(self.names[:self.dims])}")
        shape = torch.broadcast_shapes(*(value.shape for value in values))
        result = self._root(dict(zip(self.names, values, strict=False)) | {"": values[0]})
        return result + torch.zeros(shape, dtype=values[0].dtype, device=values[0].device)  # constants too

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def _reject(text: str, what: str) -> ValueError:
    return ValueError(f"bad expression {text!r}: {what} is not allowed; allowed: {ALLOWED}")


def _constant(value: float) -> Node:
    return lambda values: torch.tensor(value, dtype=values[""].dtype, device=values[""].device)


def _call(node: ast.Call, text: str, names: tuple[str, ...], used: set) -> Node:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name in ELEMENTARY:
        function, arity = ELEMENTARY[name], _ARITY.get(name, 1)
    elif name in SPECIAL:
        function, arity = _special(name, text), len(SPECIAL[name])
    else:
        raise _reject(text, f"calling {ast.unparse(node.func)!r}")
    if node.keywords or len(node.args) != arity or any(isinstance(a, ast.Starred) for a in node.args):
        raise ValueError(f"bad expression {text!r}: {name} takes exactly {arity} positional "
                         f"argument{'s' if arity > 1 else ''}, got {ast.unparse(node)!r}")
    arguments = [_compile(argument, text, names, used) for argument in node.args]
    return lambda values: function(*(argument(values) for argument in arguments))


def _compile(node: ast.AST, text: str, names: tuple[str, ...], used: set) -> Node:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _reject(text, f"the constant {node.value!r}")
        return _constant(float(node.value))
    if isinstance(node, ast.Name):
        if node.id in names:
            used.add(node.id)
            variable = node.id
            return lambda values: values[variable]
        if node.id in CONSTANTS:
            return _constant(CONSTANTS[node.id])
        raise _reject(text, f"the name {node.id!r} (variables: {', '.join(names)})")
    if isinstance(node, ast.BinOp):
        if type(node.op) not in BINARY:
            raise _reject(text, f"the operator {type(node.op).__name__}")
        op = BINARY[type(node.op)]
        left, right = _compile(node.left, text, names, used), _compile(node.right, text, names, used)
        return lambda values: op(left(values), right(values))
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in UNARY:
            raise _reject(text, f"the operator {type(node.op).__name__}")
        unary, operand = UNARY[type(node.op)], _compile(node.operand, text, names, used)
        return lambda values: unary(operand(values))
    if isinstance(node, ast.Call):
        return _call(node, text, names, used)
    raise _reject(text, f"{type(node).__name__} ({ast.unparse(node)!r})")


def check_variable_names(names: Sequence[str], what: str = "variables") -> tuple[str, ...]:
    """``names`` as a tuple of distinct identifiers other than the constants (``ValueError`` naming the bad
    one)."""
    names = tuple(names)
    if not names:
        raise ValueError(f"{what}: expected at least one variable name")
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or name in CONSTANTS:
            raise ValueError(f"{what}: bad variable name {name!r}; allowed: Python identifiers other than "
                             f"{', '.join(CONSTANTS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: repeated variable names in {list(names)}")
    return names


def parse(text: str, variables: Sequence[str] = VARIABLES) -> Expression:
    """Parse ``text`` into an :class:`Expression` in ``variables`` (names, in the order the expression is
    called with); ``ValueError`` for anything outside the grammar."""
    names = check_variable_names(variables)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"bad expression {text!r}: expected a non-empty string in {', '.join(names)}; "
                         f"allowed: {ALLOWED}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"bad expression: longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"bad expression {text!r}: syntax error ({error.msg}); allowed: {ALLOWED}") from None
    used: set = set()
    root = _compile(tree.body, text, names, used)
    return Expression(text, root, names, used)
