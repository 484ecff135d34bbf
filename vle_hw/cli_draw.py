"""``vle-hw draw CELL``: write the schematic of one library cell (SVG or PNG)."""

from __future__ import annotations

from pathlib import Path

import click

from vle_hw.cli_types import OUTPUT_FILE
from vle_hw.errors import OutputExistsError


@click.command()
@click.argument("cell")
@click.option(
    "-o",
    "--output",
    type=OUTPUT_FILE,
    default=None,
    help="File to write; .svg or .png picks the format (default: CELL.svg).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def draw(cell: str, output: str | None, force: bool) -> None:
    """Draw CELL of the circuits/ libraries (behavioural, MOS, op-amp)."""
    from vle_hw.cli import EXIT_INPUT, _fail
    from vle_hw.draw import cell_names, write_cell_drawing
    from vle_hw.outputs import check_writable

    if cell not in cell_names():
        _fail(
            f"unknown cell {cell!r}; fix: choose one of: {', '.join(cell_names())}.",
            EXIT_INPUT,
        )
    path = Path(output) if output else Path(f"{cell}.svg")
    if path.suffix.lower() not in (".svg", ".png"):
        _fail(
            f"-o/--output {str(path)!r} has suffix {path.suffix or '(none)'!r}; fix: "
            "end the file name in .svg or .png (that picks the format).",
            EXIT_INPUT,
        )
    try:
        check_writable([path], force)
        write_cell_drawing(cell, path)
    except OutputExistsError as exc:
        _fail(str(exc), EXIT_INPUT)
    except OSError as exc:
        reason = exc.strerror if exc.strerror else None
        _fail(f"cannot write {path}: {reason}" if reason else str(exc), EXIT_INPUT)
    click.echo(f"wrote {path}")
