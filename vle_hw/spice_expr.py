"""Print sympy expressions as ngspice B-source expressions.

Only the operations the derivation produces are accepted (sums, products,
integer powers, exp, log, tanh); anything else raises ``ValueError`` rather than
reaching a deck. Numbers are written in plain exponent form (``1e-05``), never
with SPICE scale letters, and node voltages as ``v(node)`` with node names
checked against ``^[a-z][a-z0-9_]*$``.
"""

from __future__ import annotations

import math
import re

import sympy as sp
from sympy.printing.str import StrPrinter

NODE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


def number(value: float) -> str:
    """Format a float for a deck: shortest round-trip repr, no scale letters.

    Examples
    --------
    >>> number(1e-3), number(2.0), number(-0.1)
    ('0.001', '2.0', '-0.1')
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write the non-finite number {value!r} into a deck")
    return repr(value)


def node_voltage(node: str) -> sp.Symbol:
    """A sympy symbol standing for ``v(node)`` in a B-source expression."""
    if not NODE_PATTERN.fullmatch(node):
        raise ValueError(f"node name {node!r} is not a plain lower-case identifier")
    return sp.Symbol(f"__node__{node}", real=True)


def parameter(name: str) -> sp.Symbol:
    """A symbol printed as a subcircuit parameter name (for the cell library)."""
    if not NODE_PATTERN.fullmatch(name):
        raise ValueError(f"parameter name {name!r} is not a plain identifier")
    return sp.Symbol(f"__param__{name}", real=True)


def current_time() -> sp.Symbol:
    """The symbol printed as ngspice's ``time`` (seconds)."""
    return sp.Symbol("__time__", real=True)


class _SpicePrinter(StrPrinter):
    _FUNCS = {
        "exp": "exp",
        "log": "ln",
        "tanh": "tanh",
        "sin": "sin",
        "cos": "cos",
        "Abs": "abs",
        "sign": "sgn",
        "floor": "floor",
    }

    def _print_Symbol(self, expr):
        if expr.name.startswith("__node__"):
            return f"v({expr.name.removeprefix('__node__')})"
        if expr.name == "__time__":
            return "time"
        if expr.name.startswith("__param__"):
            return expr.name.removeprefix("__param__")
        raise ValueError(
            f"symbol {expr.name!r} has no value in the circuit; substitute it "
            "before printing"
        )

    def _print_Float(self, expr):
        return number(float(expr))

    def _print_Integer(self, expr):
        return number(float(expr))

    def _print_Rational(self, expr):
        return number(float(expr))

    def _print_Half(self, expr):
        return number(0.5)

    def _print_One(self, expr):
        return number(1.0)

    def _print_NegativeOne(self, expr):
        return number(-1.0)

    def _print_Zero(self, expr):
        return number(0.0)

    def _print_Exp1(self, expr):
        return number(math.e)

    def _print_Pi(self, expr):
        return number(math.pi)

    def _print_Pow(self, expr, rational=False):
        base, exponent = expr.as_base_exp()
        if exponent.is_Integer and 1 <= abs(int(exponent)) <= 8:
            n = abs(int(exponent))
            factor = "(" + self._print(base) + ")"
            # Parenthesised as a whole: a printed Pow may sit in a denominator.
            product = "(" + "*".join([factor] * n) + ")"
            return product if exponent > 0 else f"(1.0/{product})"
        if exponent == sp.Rational(1, 2):
            return f"sqrt({self._print(base)})"
        raise ValueError(f"power {expr} is not supported in a deck expression")

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name not in self._FUNCS:
            raise ValueError(f"function {name!r} is not supported by ngspice B-sources")
        args = ", ".join(self._print(arg) for arg in expr.args)
        return f"{self._FUNCS[name]}({args})"

    def emptyPrinter(self, expr):  # noqa: N802 (sympy's hook name)
        raise ValueError(f"cannot write {type(expr).__name__} into a deck")


def to_spice(expr: sp.Expr) -> str:
    """ngspice text of `expr`, whose free symbols are node voltages or time.

    Examples
    --------
    >>> to_spice(0.5 * node_voltage("u_l1_n0") + sp.exp(node_voltage("x_n0")))
    '0.5*v(u_l1_n0) + exp(v(x_n0))'
    """
    if not isinstance(expr, sp.Basic):
        expr = sp.Float(float(expr))
    return _SpicePrinter({"order": "lex"}).doprint(expr)


class SpiceTemplate:
    """An expression printed once, whose node voltages are filled in per element.

    The per-synapse B-sources of a layer share one expression and differ only in
    their nodes; printing it through sympy once per synapse made deck writing
    slow (4 000 to 13 000 elements/s, benchmarks/netlist_speed.py). The template
    prints it once with slot nodes and fills each slot by text replacement,
    after the same name check as :func:`node_voltage`.

    Examples
    --------
    >>> t = SpiceTemplate(lambda a, b: 2.0 * a * b, 2)
    >>> t.fill("w_l1_i0_j0", "x_n0")
    '2.0*v(w_l1_i0_j0)*v(x_n0)'
    """

    def __init__(self, build, slots: int):
        names = [f"slot{k}zz" for k in range(slots)]
        self._text = to_spice(build(*(node_voltage(name) for name in names)))
        # a slot the expression does not use (e.g. eta = 0) is simply not filled
        self._marks = [f"v({name})" for name in names]

    def fill(self, *nodes: str) -> str:
        if len(nodes) != len(self._marks):
            raise ValueError(f"template takes {len(self._marks)} nodes, not {nodes}")
        text = self._text
        for mark, node in zip(self._marks, nodes, strict=True):
            if not NODE_PATTERN.fullmatch(node):
                raise ValueError(
                    f"node name {node!r} is not a plain lower-case identifier"
                )
            text = text.replace(mark, f"v({node})")
        return text
