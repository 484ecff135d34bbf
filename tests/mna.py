"""A small symbolic modified nodal analysis (sympy) for the cell tests.

Reads a cell's subcircuit body (the text vle_hw writes, never user text) and
solves the linear (small-signal) network in the Laplace variable ``s``:
R, C, V, I, E (VCVS), G (VCCS), F (CCCS, through a V source's current),
B-sources linearised around an operating point, and MOS devices replaced by
their weak-inversion small-signal model (a VCCS gm * v_gs, bulk tied to
source or grounded as written, output conductance 0).
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.parsing.sympy_parser import parse_expr

s = sp.Symbol("s")
_NODE = re.compile(r"v\(([a-z0-9_]+)\)")


def node(name: str) -> sp.Symbol:
    return sp.Symbol(f"V_{name}", real=True)


def spice_expr(text: str, params: dict[str, sp.Expr]) -> sp.Expr:
    """A SPICE expression (braces, ``v(node)``, ``ln``) as a sympy expression."""
    text = text.strip().strip("{}")
    text = _NODE.sub(lambda m: f"V_{m.group(1)}", text)
    local = {"ln": sp.log, "exp": sp.exp, "tanh": sp.tanh, **params}
    expr = parse_expr(text, local_dict=local, evaluate=True)
    names = {str(sym) for sym in expr.free_symbols}
    return expr.subs({sp.Symbol(n): sp.Symbol(n, real=True) for n in names})


class Mna:
    """Collect stamps, then :meth:`solve` for the node voltages."""

    def __init__(self) -> None:
        self.nodes: list[str] = []
        self.branches: list[str] = []
        self.eqs: list[tuple] = []  # (kind, data)

    def _n(self, name: str) -> None:
        if name != "0" and name not in self.nodes:
            self.nodes.append(name)

    def add(self, kind: str, name: str, nodes: tuple[str, ...], value) -> None:
        for n in nodes:
            self._n(n)
        if kind in "veb":
            self.branches.append(name)
        self.eqs.append((kind, name, nodes, value))

    def solve(self) -> dict[str, sp.Expr]:
        unknowns = [node(n) for n in self.nodes]
        currents = {b: sp.Symbol(f"I_{b}") for b in self.branches}
        unknowns += list(currents.values())
        kcl = {n: sp.Integer(0) for n in self.nodes}  # sum of currents leaving
        extra = []

        def v(n):
            return sp.Integer(0) if n == "0" else node(n)

        def leave(n, current):
            if n != "0":
                kcl[n] += current

        for kind, name, nodes, value in self.eqs:
            if kind == "r":
                a, b = nodes
                leave(a, (v(a) - v(b)) / value)
                leave(b, (v(b) - v(a)) / value)
            elif kind == "c":
                a, b = nodes
                leave(a, s * value * (v(a) - v(b)))
                leave(b, s * value * (v(b) - v(a)))
            elif kind == "i":  # current value from a through the source to b
                a, b = nodes
                leave(a, value)
                leave(b, -value)
            elif kind == "g":  # value * v(c, d) from a through the source to b
                a, b, c, d = nodes
                leave(a, value * (v(c) - v(d)))
                leave(b, -value * (v(c) - v(d)))
            elif kind == "f":  # value * i(vsource) from a through the source to b
                a, b = nodes
                vname, gain = value
                leave(a, gain * currents[vname])
                leave(b, -gain * currents[vname])
            elif kind == "v":
                a, b = nodes
                leave(a, currents[name])
                leave(b, -currents[name])
                extra.append(v(a) - v(b) - value)
            elif kind == "e":
                a, b, c, d = nodes
                leave(a, currents[name])
                leave(b, -currents[name])
                extra.append(v(a) - v(b) - value * (v(c) - v(d)))
            elif kind == "b":  # linearised B voltage source: v(a) = value (expr)
                a, b = nodes
                leave(a, currents[name])
                leave(b, -currents[name])
                extra.append(v(a) - v(b) - value)
            elif kind == "m":  # d g s: gm * v(g, s) from d to s
                d, g, src = nodes
                leave(d, value * (v(g) - v(src)))
                leave(src, -value * (v(g) - v(src)))
        equations = list(kcl.values()) + extra
        solution = sp.solve(equations, unknowns, dict=True)
        if len(solution) != 1:
            raise ValueError(f"the network has {len(solution)} solutions")
        return {str(k): sp.simplify(val) for k, val in solution[0].items()}


def from_body(
    body: tuple[str, ...],
    params: dict[str, sp.Expr],
    gm: dict[str, sp.Expr] | None = None,
    zero_sources: bool = True,
) -> Mna:
    """The small-signal network of a cell body.

    Independent sources are zeroed (small signal) when `zero_sources`; MOS
    devices take their transconductance from `gm` (device name -> gm).
    B-sources with a ``v =`` expression are kept as written (they are
    linear in the cells tested this way) or must be linear in their nodes.
    """
    mna = Mna()
    for line in body:
        if line.startswith("*"):
            continue
        words = line.split()
        name, kind = words[0], words[0][0]
        if kind in "rc":
            mna.add(kind, name, (words[1], words[2]), spice_expr(words[3], params))
        elif kind in "vi":
            value = words[3] if words[3] != "dc" else words[4]
            value = 0 if zero_sources else spice_expr(value, params)
            mna.add(kind, name, (words[1], words[2]), value)
        elif kind in "eg":
            mna.add(kind, name, tuple(words[1:5]), spice_expr(words[5], params))
        elif kind == "f":
            mna.add(
                kind,
                name,
                (words[1], words[2]),
                (words[3], spice_expr(words[4], params)),
            )
        elif kind == "b":
            text = line.split("=", 1)[1]
            if line.split()[3] != "v":
                raise ValueError("only B voltage sources are supported")
            mna.add(kind, name, (words[1], words[2]), spice_expr(text, params))
        elif kind == "m":
            mna.add(kind, name, (words[1], words[2], words[3]), (gm or {})[name])
        else:
            raise ValueError(f"element {name}: type {kind!r} not supported")
    return mna
