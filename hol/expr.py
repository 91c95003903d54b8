"""A restricted expression language for target functions (``data.expr``), parsed without ``eval``.

Grammar (Python syntax, parsed with :mod:`ast`, then checked node by node against an allow-list):

* numbers (``1``, ``0.25``, ``1e-3``), the variables ``x`` and ``y``, the constants ``pi`` and ``e``;
* binary ``+ - * / **``, unary ``-`` and ``+``, parentheses;
* calls of one argument to ``sin cos tan exp log sqrt abs tanh``.

Anything else (attributes, names, keyword arguments, comparisons, subscripts, lambdas, ...) is rejected with a
``ValueError`` naming what is not allowed. The result is a tree of torch operations: ``Expression(x, y)``
evaluates element-wise on tensors.

Examples::

    >>> f = parse("0.5*cos(1.5*pi/(abs(x)+0.25))")
    >>> f.variables
    ('x',)
    >>> f(torch.zeros(1))
    tensor([0.5000])
"""
from __future__ import annotations

import ast
import math
from collections.abc import Callable

import torch
from torch import Tensor

VARIABLES = ("x", "y")
CONSTANTS = {"pi": math.pi, "e": math.e}
FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "abs": torch.abs, "tanh": torch.tanh,
}
BINARY: dict[type[ast.operator], Callable[[Tensor, Tensor], Tensor]] = {
    ast.Add: torch.add, ast.Sub: torch.sub, ast.Mult: torch.mul, ast.Div: torch.div, ast.Pow: torch.pow}
UNARY: dict[type[ast.unaryop], Callable[[Tensor], Tensor]] = {
    ast.USub: torch.neg, ast.UAdd: lambda value: value}
ALLOWED = ("numbers, x, y, pi, e, + - * / **, unary -, parentheses, and the functions "
           + " ".join(FUNCTIONS))
MAX_LENGTH = 1000

Node = Callable[[dict], Tensor]


class Expression:
    """A parsed expression; call it with tensors ``x`` (and ``y`` when it uses ``y``) of one shape."""

    def __init__(self, text: str, root: Node, variables: tuple[str, ...]):
        self.text, self._root, self.variables = text, root, variables

    @property
    def dims(self) -> int:
        """Input dimension: 2 when ``y`` appears, else 1 (constant expressions are 1-D)."""
        return 2 if "y" in self.variables else 1

    def __call__(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.dims == 2 and y is None:
            raise ValueError(f"expression {self.text!r} uses y; call it with x and y")
        values = {"x": x, "y": x if y is None else y}
        return self._root(values) + torch.zeros_like(x)  # broadcast constants to the input's shape

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def _reject(text: str, what: str) -> ValueError:
    return ValueError(f"bad expression {text!r}: {what} is not allowed; allowed: {ALLOWED}")


def _compile(node: ast.AST, text: str, used: set) -> Node:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _reject(text, f"the constant {node.value!r}")
        value = float(node.value)
        return lambda values: torch.tensor(value, dtype=values["x"].dtype, device=values["x"].device)
    if isinstance(node, ast.Name):
        if node.id in VARIABLES:
            used.add(node.id)
            variable = node.id
            return lambda values: values[variable]
        if node.id in CONSTANTS:
            value = CONSTANTS[node.id]
            return lambda values: torch.tensor(value, dtype=values["x"].dtype, device=values["x"].device)
        raise _reject(text, f"the name {node.id!r}")
    if isinstance(node, ast.BinOp):
        if type(node.op) not in BINARY:
            raise _reject(text, f"the operator {type(node.op).__name__}")
        op = BINARY[type(node.op)]
        left, right = _compile(node.left, text, used), _compile(node.right, text, used)
        return lambda values: op(left(values), right(values))
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in UNARY:
            raise _reject(text, f"the operator {type(node.op).__name__}")
        unary, operand = UNARY[type(node.op)], _compile(node.operand, text, used)
        return lambda values: unary(operand(values))
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            raise _reject(text, f"calling {ast.unparse(node.func)!r}")
        if node.keywords or len(node.args) != 1:
            raise ValueError(f"bad expression {text!r}: {name} takes exactly one argument")
        function, argument = FUNCTIONS[name], _compile(node.args[0], text, used)
        return lambda values: function(argument(values))
    raise _reject(text, f"{type(node).__name__} ({ast.unparse(node)!r})")


def parse(text: str) -> Expression:
    """Parse ``text`` into an :class:`Expression`; ``ValueError`` for anything outside the grammar."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"bad expression {text!r}: expected a non-empty string in x (and y); "
                         f"allowed: {ALLOWED}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"bad expression: longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"bad expression {text!r}: syntax error ({error.msg}); allowed: {ALLOWED}") from None
    used: set = set()
    root = _compile(tree.body, text, used)
    return Expression(text, root, tuple(name for name in VARIABLES if name in used))
