"""Schematics of the cell library, drawn with schemdraw.

Every cell of ``circuits/behavioural.lib`` and ``circuits/mos.lib`` is drawn
from its own subcircuit body, so a drawing can never disagree with the
netlist: each element is one symbol (resistor, capacitor, source, controlled
source, n-channel MOSFET) whose terminals carry the names of their nets, the
usual net-label convention (terminals with the same label are connected; ``0``
is ground). Ports are listed in the title.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import schemdraw  # noqa: E402
import schemdraw.elements as elm  # noqa: E402

from vle_hw.cells import all_cells  # noqa: E402
from vle_hw.transistor import all_mos_cells  # noqa: E402

FORMATS = ("svg", "png")
_PER_ROW = 6
_PITCH = 4.0


@dataclass(frozen=True)
class _ParsedCell:
    name: str
    ports: tuple[str, ...]
    body: tuple[str, ...]


def _opamp_cell() -> _ParsedCell:
    """The op-amp macromodel of circuits/opamp.lib, read from its own text."""
    from vle_hw.opamp import macromodel_text

    lines = macromodel_text().splitlines()
    head = next(line for line in lines if line.startswith(".subckt "))
    words = head.split()
    ports = tuple(words[2 : words.index("params:")])
    body = tuple(
        line
        for line in lines[lines.index(head) + 1 :]
        if line and not line.startswith((".", "*"))
    )
    return _ParsedCell(words[1], ports, body)


def _all() -> list:
    return [*all_cells(), *all_mos_cells(), _opamp_cell()]


def cell_names() -> list[str]:
    """Every drawable cell: behavioural, MOS, then the op-amp macromodel."""
    return [c.name for c in _all()]


def _cell(name: str):
    for cell in _all():
        if cell.name == name:
            return cell
    raise ValueError(f"unknown cell {name!r}; choose one of {', '.join(cell_names())}.")


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _text(drawing, at, text: str, size: int = 8, color: str = "black") -> None:
    drawing.add(elm.Label().at(at).label(text, fontsize=size, color=color))


def _net(drawing, at, node: str, dy: float) -> None:
    """Ground symbol for node 0, otherwise the net's name (blue) next to `at`."""
    if node == "0":
        drawing.add(elm.Ground().at(at).theta(0 if dy < 0 else 180))
    else:
        _text(drawing, (at[0], at[1] + dy), node, 9, "blue")


_SYMBOLS = {
    "r": elm.Resistor,
    "c": elm.Capacitor,
    "v": elm.SourceV,
    "i": elm.SourceI,
    "b": elm.SourceControlledV,
    "e": elm.SourceControlledV,
    "g": elm.SourceControlledI,
    "f": elm.SourceControlledI,
    "d": elm.Diode,
}


def _two_terminal(drawing, x: float, y: float, kind: str, words: list[str]) -> None:
    """A vertical symbol, node words[1] at the top (the + end), words[2] below."""
    name, top, bottom = words[0], words[1], words[2]
    symbol = _SYMBOLS[kind]
    value = " ".join(words[3:])
    if kind == "b" and value.lstrip().startswith("i"):
        symbol = elm.SourceControlledI
    element = symbol().at((x, y - 3)).up().length(3)
    if symbol in (elm.SourceI, elm.SourceControlledI):
        element = element.reverse()  # current flows top -> bottom (n+ to n-)
    drawing.add(element)
    _net(drawing, (x, y), top, 0.35)
    _net(drawing, (x, y - 3), bottom, -0.35)
    _text(drawing, (x - 1.0, y - 1.5), name, 9)
    if kind in "eg":
        value = f"v({words[3]},{words[4]}) x {' '.join(words[5:])}"
    elif kind == "f":
        value = f"i({words[3]}) x {' '.join(words[4:])}"
    for k, piece in enumerate(_chunks(value, 22)[:3]):
        _text(drawing, (x + 1.6, y - 1.0 - 0.45 * k), piece, 7)


def _chunks(text: str, width: int) -> list[str]:
    return [text[i : i + width] for i in range(0, len(text), width)] or [""]


def _mosfet(drawing, x: float, y: float, words: list[str]) -> None:
    name, d, g, s, b = words[:5]
    fet = drawing.add(elm.NFet(bulk=True).at((x, y)).theta(0).anchor("drain"))
    _net(drawing, fet.drain, d, 0.35)
    _net(drawing, fet.source, s, -0.35)
    _text(drawing, (fet.gate[0] - 0.4, fet.gate[1] + 0.35), g, 9, "blue")
    _text(drawing, (x + 1.2, y - 1.5), f"{name} (bulk {b})", 8)


def draw_cell(name: str, fmt: str = "svg") -> bytes:
    """The schematic of cell `name` as SVG or PNG bytes.

    Raises
    ------
    ValueError
        If `name` is not a cell of the library, or `fmt` is not svg/png.

    Examples
    --------
    >>> draw_cell("vle_leaky_integrator")[:5]
    b'<?xml'
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}.")
    cell = _cell(name)
    lines = [line for line in cell.body if not line.startswith("*")]
    with schemdraw.Drawing(show=False, canvas="matplotlib") as drawing:
        drawing.config(fontsize=10)
        drawing.add(
            elm.Label()
            .at((0, 2.0))
            .label(f"{cell.name}  (ports: {', '.join(cell.ports)})", loc="right")
        )
        for k, line in enumerate(lines):
            x, y = (k % _PER_ROW) * _PITCH, -(k // _PER_ROW) * (_PITCH + 1.5)
            words = line.split()
            kind = words[0][0]
            if kind == "m":
                _mosfet(drawing, x, y, words)
            else:
                _two_terminal(drawing, x, y, kind, words)
        data = drawing.get_imagedata(fmt)
        figure = getattr(drawing, "fig", None)
        if figure is not None and hasattr(figure, "fig"):
            plt.close(figure.fig)  # schemdraw keeps its pyplot figure open
    return data if isinstance(data, bytes) else data.encode("utf-8")


def write_cell_drawing(name: str, path: Path) -> Path:
    """Draw cell `name` into `path`; the suffix (.svg or .png) picks the format."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"output {path} must end in .svg or .png (got {path.suffix!r})."
        )
    data = draw_cell(name, fmt)
    from vle_hw.outputs import write_atomic

    write_atomic(path, data)
    return path
