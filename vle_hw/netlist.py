"""The netlist writer: a :class:`~vle_hw.circuit.CircuitPlan` to ngspice deck text.

One function writes every deck, from plain data, in a fixed order with ``\\n``
line endings and plain exponent-form numbers, so that the same spec gives the
same bytes. The deck runs standalone (``ngspice -b deck.cir``): a title line,
a commented header (tool version, spec hash, scales, level, maximum step),
the elements, ``.ic`` lines, ``.options``, ``.save`` of the probed vectors,
``.tran`` and ``.end``. Every name and node is checked against
``^[a-z][a-z0-9_]*$`` and no line may hold a newline, so no spec text can add
a deck line. This module imports neither PySpice nor the runner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vle_hw.circuit import CircuitPlan, Probe
from vle_hw.spice_expr import NODE_PATTERN, number

MAX_LINE = 78
CONTROL_BEGIN = ".control"
CONTROL_END = ".endc"
_SAFE_VALUE = re.compile(r"^[a-z0-9_ .,=()+\-*/eE]*$")
_SAFE_HEADER = re.compile(r"^[A-Za-z0-9_ .,:=()+\-*/]*$")
_SAFE_LIBRARY_LINE = re.compile(r"^[a-z0-9_ .,=()+\-*/{}<>:']*$")
_LIBRARY_START = re.compile(r"^(\.subckt |\.ends|\.model |\.param |\*|\+ |[a-z]\w* )")
_FORBIDDEN_IN_LIBRARY = (".control", ".endc", ".include", ".lib", "shell", ".end ")


@dataclass(frozen=True)
class Deck:
    """Deck text and the probe map that reads its vectors back in model units."""

    text: str
    probes: tuple[Probe, ...]
    tran_stop_sec: float
    time_sec_per_unit: float
    max_step_sec: float


def _check_name(name: str, what: str) -> str:
    if not NODE_PATTERN.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a plain lower-case identifier")
    return name


def _wrap(text: str) -> list[str]:
    """Split a long element line into ngspice continuation lines (``+ ...``)."""
    if len(text) <= MAX_LINE:
        return [text]
    words = text.split(" ")
    lines, current = [], words[0]
    for word in words[1:]:
        if len(current) + 1 + len(word) > MAX_LINE:
            lines.append(current)
            current = "+ " + word
        else:
            current += " " + word
    lines.append(current)
    return lines


def strip_control(text: str) -> str:
    """Deck text without its ``.control`` block (for the shared library)."""
    lines = text.split("\n")
    if CONTROL_BEGIN not in lines:
        return text
    start = lines.index(CONTROL_BEGIN)
    stop = lines.index(CONTROL_END, start)
    return "\n".join(lines[:start] + lines[stop + 1 :])


def _library_lines(block: str) -> list[str]:
    """Check one cell-library block line by line; it may define cells, nothing else."""
    out = []
    for line in block.strip("\n").split("\n"):
        line = line.rstrip()
        if not line:
            continue
        low = line.lower()
        if (
            not _SAFE_LIBRARY_LINE.fullmatch(line)
            or not _LIBRARY_START.match(line)
            or any(word in low + " " for word in _FORBIDDEN_IN_LIBRARY)
        ):
            raise ValueError(f"cell library line {line!r} is not a cell definition")
        out.append(line)
    return out


def write_deck(plan: CircuitPlan) -> Deck:
    """Write `plan` as ngspice deck text.

    Raises
    ------
    ValueError
        If a name, node or value could alter the deck's structure.

    Examples
    --------
    >>> from vle_hw.circuit import CircuitPlan, Element
    >>> plan = CircuitPlan(title="demo", header={"spec_hash": "0"},
    ...     sections=[("rc", [Element("r1", ("a", "0"), "1000.0")])],
    ...     tran_stop_sec=1e-3, tran_step_sec=1e-6, max_step_sec=1e-6)
    >>> print(write_deck(plan).text.splitlines()[0])
    demo
    """
    if not _SAFE_HEADER.fullmatch(plan.title):
        raise ValueError(f"deck title {plan.title!r} has unsafe characters")
    lines = [plan.title]
    for key, value in plan.header.items():
        _check_name(key, "header key")
        if not _SAFE_HEADER.fullmatch(value):
            raise ValueError(f"header {key} = {value!r} has unsafe characters")
        lines.append(f"* {key}: {value}")
    if plan.library:
        lines.append("")
        lines.append("* --- cell library ---")
        for block in plan.library:
            lines += _library_lines(block)
    for heading, elements in plan.sections:
        if not _SAFE_HEADER.fullmatch(heading):
            raise ValueError(f"section heading {heading!r} has unsafe characters")
        lines.append("")
        lines.append(f"* --- {heading} ---")
        for element in elements:
            _check_name(element.name, "element name")
            for node in element.nodes:
                if node != "0":
                    _check_name(node, "node")
            if not _SAFE_VALUE.fullmatch(element.value):
                raise ValueError(
                    f"element {element.name}: value {element.value!r} has unsafe "
                    "characters"
                )
            lines += _wrap(" ".join([element.name, *element.nodes, element.value]))
    lines.append("")
    if plan.initial:
        ics = " ".join(
            f"v({_check_name(node, 'node')})={number(volts)}"
            for node, volts in plan.initial.items()
        )
        lines += _wrap(f".ic {ics}")
    options = " ".join(
        f"{_check_name(k, 'option')}={v}" for k, v in plan.options.items()
    )
    if options:
        lines.append(f".options {options}")
    vectors = []
    for probe in plan.probes:
        vectors.append(f"v({_check_name(probe.vector, 'probe vector')})")
    lines += _wrap(".save " + " ".join(vectors))
    lines.append(
        f".tran {number(plan.tran_step_sec)} {number(plan.tran_stop_sec)} 0 "
        f"{number(plan.max_step_sec)}"
    )
    # Standalone runs (ngspice -b deck.cir) execute this block; the runner strips
    # it and drives the same analysis through the shared library.
    raw = f"{_check_name(plan.raw_name, 'raw file name')}.raw"
    lines += [CONTROL_BEGIN, "run", f"write {raw}", "quit 0", CONTROL_END]
    lines.append(".end")
    text = "\n".join(lines) + "\n"
    return Deck(
        text=text,
        probes=tuple(plan.probes),
        tran_stop_sec=plan.tran_stop_sec,
        time_sec_per_unit=plan.time_sec_per_unit,
        max_step_sec=plan.max_step_sec,
    )
