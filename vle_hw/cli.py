"""The ``vle-hw`` command line. Only this module prints, parses arguments or
configures logging.

Exit codes: 0 every signal within tolerance; 1 some signal out of tolerance;
2 bad input (spec, paths, an existing output without ``--force``);
3 ngspice missing or a simulation failed (ngspice or the ODE reference);
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import click

from vle_hw.cli_types import OUTPUT_FILE, OUTPUT_FOLDER
from vle_hw.errors import (
    NgspiceMissingError,
    NgspiceRunError,
    OutputExistsError,
    ReferenceSolveError,
    SpecError,
)

EXIT_FAIL, EXIT_INPUT, EXIT_NGSPICE, EXIT_INTERRUPTED = 1, 2, 3, 130
# The circuit levels of pipeline.LEVELS (kept literal so --help needs no imports).
LEVEL_NAMES = ["behavioural", "opamp", "transistor"]


def _load(spec_path: str | None):
    from vle_hw.spec import load_spec

    return load_spec(spec_path)


def _clean(text: str) -> str:
    """Drop control characters (terminal escapes) that user text may carry."""
    return "".join(ch if ch == "\n" or ch.isprintable() else "?" for ch in text)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {_clean(message)}", err=True)
    sys.exit(code)


# errno values of a write to standard output that cannot go on
_STREAM_ERRNOS = {errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EFBIG}


def _stdout_broken() -> bool:
    """True when what is buffered for standard output cannot be written."""
    try:
        sys.stdout.flush()
    except OSError:
        return True
    except ValueError:  # closed
        return False
    return False


def _is_stdout(stream) -> bool:
    if stream is sys.stdout or stream is sys.__stdout__:
        return True
    try:
        return stream.fileno() == sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False


def _stdout_write_failed(exc: OSError) -> bool:
    """True when `exc` is a failed write to standard output (click.echo's
    stream, or what is still buffered for it)."""
    if exc.errno not in _STREAM_ERRNOS or exc.filename is not None:
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None and any(_is_stdout(v) for v in tb.tb_frame.f_locals.values()):
        return True
    return _stdout_broken()


def _drop_stdout() -> None:
    """Point standard output at the null device, so that the flush at exit
    does not fail a second time (and print "Exception ignored ...")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test)
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115


def _stdout_failed(exc: OSError | None) -> None:
    """Say that standard output cannot be written, and exit with status 2."""
    _drop_stdout()
    reason = (exc.strerror if exc is not None else None) or "the write failed"
    if exc is not None and exc.errno == errno.EPIPE:
        fix = "let the reading program read to the end, or redirect to a file"
    else:
        fix = "free space on the device it goes to, or redirect it elsewhere"
    try:
        click.echo(
            f"error: cannot write to standard output: {reason}; fix: {fix}.",
            err=True,
        )
    except OSError:
        pass
    sys.exit(EXIT_INPUT)


def _given(args: list[str], failed: str) -> tuple[str, str]:
    """The option of the command line and the value that led to the path
    `failed` (the value itself, or a path inside or below it)."""

    def matches(value: str) -> bool:
        if not value or value.startswith("-"):
            return False
        if value == failed:
            return True
        full = os.path.abspath(value)
        return failed == full or failed.startswith(full.rstrip(os.sep) + os.sep)

    for index, token in enumerate(args):
        name, equals, rest = token.partition("=")
        if equals and name.startswith("-") and matches(rest):
            return name, rest
        if matches(token):
            before = args[index - 1] if index else ""
            return (before if before.startswith("-") else "argument"), token
    return "path", failed


class _Main(click.Group):
    """The ``vle-hw`` group: turns what no command catches into one error line.

    A path that cannot be used at all (a name longer than the file system
    allows, a symbolic-link loop) and a standard output that cannot be written
    (a full disk, a closed pipe) end with ``error: ...`` and status 2, not a
    traceback.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["vle_hw.args"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        from vle_hw.outputs import failed_path, path_problem, shown

        try:
            result = super().invoke(ctx)
        except SystemExit as exc:
            if _stdout_broken():
                if exc.code in (0, 1, None):  # nothing said yet: say it
                    _stdout_failed(None)
                _drop_stdout()  # an error was reported already
            raise
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, OSError) and _stdout_write_failed(exc):
                _stdout_failed(exc)
            reason = path_problem(exc)
            if reason is None:
                raise
            args = ctx.meta.get("vle_hw.args", [])
            option, value = _given(args, failed_path(exc))
            _fail(f"{option} {shown(value)}: {reason}", EXIT_INPUT)
        if _stdout_broken():
            _stdout_failed(None)
        return result


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {_clean(str(message))}\n"


@click.group(cls=_Main)
@click.version_option(package_name="vle_hw")
@click.option(
    "-v", "--verbose", count=True, help="Log the tool's choices (-vv: debug)."
)
def main(verbose: int) -> None:
    """Turn VLE / GLE learning networks into analog circuits and verify them."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)-7s %(name)s %(message)s")
    logging.getLogger("PySpice").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Unsupported Ngspice version")
    warnings.formatwarning = _one_line_warning


@main.command()
@click.argument("spec", required=False)
@click.option("--latex", is_flag=True, help="Print LaTeX instead of plain text.")
def derive(spec: str | None, latex: bool) -> None:
    """Print the derived local equations of every phi in SPEC (default: LagLine)."""
    from vle_hw.derivation import derive as derive_eq
    from vle_hw.derivation import render

    try:
        parsed, _ = _load(spec)
    except SpecError as exc:
        _fail(str(exc), EXIT_INPUT)
    phis = sorted({layer.phi for layer in parsed.network.layers})
    for name in phis:
        click.echo(render(derive_eq(name), "latex" if latex else "text"))


@main.command()
@click.argument("spec", required=False)
@click.option(
    "-o",
    "--output",
    type=OUTPUT_FILE,
    default=None,
    help="Deck file to write (default: print to standard output).",
)
@click.option(
    "--level",
    type=click.Choice(LEVEL_NAMES),
    default="behavioural",
    show_default=True,
    help="Abstraction level of the circuit (DESIGN.md section 3).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def netlist(spec: str | None, output: str | None, level: str, force: bool) -> None:
    """Write the ngspice deck of SPEC (default: LagLine) at a level."""
    from vle_hw.outputs import (
        check_not_inputs,
        check_writable,
        spec_inputs,
        write_atomic,
    )
    from vle_hw.pipeline import build_deck

    try:
        parsed, text = _load(spec)
        deck = build_deck(parsed, text, level)
        if output is not None:
            check_not_inputs([Path(output)], spec_inputs(spec, parsed))
            check_writable([Path(output)], force)
    except (SpecError, OutputExistsError) as exc:
        _fail(str(exc), EXIT_INPUT)
    except OSError as exc:
        _fail(f"cannot write {output}: {exc}", EXIT_INPUT)
    if output is None:
        click.echo(deck.text, nl=False)
    else:
        try:
            write_atomic(Path(output), deck.text)
        except OSError as exc:
            _fail(f"cannot write {output}: {exc.strerror or exc}", EXIT_INPUT)
        click.echo(f"wrote {output}")


@main.command()
@click.argument("spec", required=False)
@click.option(
    "--out",
    "out_dir",
    type=OUTPUT_FOLDER,
    default=None,
    help="Output folder (default: vle_hw_out/<spec name>, with _<level> for the "
    "op-amp and transistor levels).",
)
@click.option(
    "--json",
    "json_path",
    type=OUTPUT_FILE,
    default=None,
    help="Result JSON path (default: <out>/result.json).",
)
@click.option(
    "--deck",
    "deck_path",
    type=OUTPUT_FILE,
    default=None,
    help="Where to write the deck (default: <out>/<name>.cir).",
)
@click.option(
    "--traces",
    "trace_format",
    type=click.Choice(["npz", "csv"]),
    default="npz",
    show_default=True,
    help="Trace file format.",
)
@click.option(
    "--level",
    type=click.Choice(LEVEL_NAMES),
    default="behavioural",
    show_default=True,
    help="Circuit level (DESIGN.md section 3): ideal elements; op-amp stages; "
    "or MOS cells for phi, phi' and the multipliers.",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def verify(spec, out_dir, json_path, deck_path, trace_format, level, force) -> None:
    """Derive, build, simulate in ngspice and check SPEC against the ODE reference.

    With no SPEC, runs the embedded LagLine teacher-student example.
    """
    from vle_hw.compare import summary_table
    from vle_hw.outputs import check_not_inputs, spec_inputs
    from vle_hw.pipeline import VerifyPaths
    from vle_hw.pipeline import verify as run_verify

    started = time.perf_counter()
    try:
        parsed, text = _load(spec)
        # each level gets its own default folder, so levels never collide
        suffix = "" if level == "behavioural" else f"_{level}"
        default_out = Path("vle_hw_out") / f"{parsed.name}{suffix}"
        paths = VerifyPaths.default(
            Path(out_dir) if out_dir else default_out,
            parsed.name,
            Path(json_path) if json_path else None,
            Path(deck_path) if deck_path else None,
            trace_format,
        )
        check_not_inputs(paths.files(), spec_inputs(spec, parsed))
        result = run_verify(
            parsed,
            text,
            paths,
            force=force,
            level=level,
            on_start=lambda: click.echo(
                f"verify {parsed.name} ({level}): t_stop = "
                f"{parsed.simulation.t_stop:g} model units, eta = "
                f"{parsed.network.eta:g}; running ngspice and the ODE reference..."
            ),
        )
    except (SpecError, OutputExistsError) as exc:
        _fail(str(exc), EXIT_INPUT)
    except NgspiceMissingError as exc:
        _fail(str(exc), EXIT_NGSPICE)
    except NgspiceRunError as exc:
        _fail(str(exc), EXIT_NGSPICE)
    except ReferenceSolveError as exc:
        _fail(f"the ODE reference failed: {exc}", EXIT_NGSPICE)
    except OSError as exc:
        if _stdout_write_failed(exc):
            _stdout_failed(exc)
        _fail(f"cannot write outputs: {exc}", EXIT_INPUT)
    except KeyboardInterrupt:
        _fail("interrupted; files written so far are kept.", EXIT_INTERRUPTED)

    comparison = result.comparison
    click.echo(summary_table(comparison))
    click.echo("")
    for cls, row in sorted(comparison.by_class().items()):
        click.echo(
            f"class {cls:<16} worst nrmse {row['nrmse_max']:.2e}  "
            f"max abs err {row['max_abs_err']:.2e}"
        )
    learning = result.info.get("learning", {})
    if learning:
        click.echo("")
    for name, row in learning.items():
        line = (
            f"learning {name}: {row['initial']:.4g} -> ODE {row['ode_final']:.6g}, "
            f"SPICE {row['spice_final']:.6g}"
        )
        if "teacher" in row and row["teacher"] != 0:
            off = abs(row["spice_final"] - row["teacher"]) / abs(row["teacher"])
            line += (
                f" (teacher {row['teacher']:.4g}; SPICE to teacher {100 * off:.3g} %)"
            )
        click.echo(line)
    for key, cell in result.info.get("cells", {}).items():
        if key.startswith("phi_"):
            click.echo(
                f"cell {cell['phi_cell']}: phi error {cell['phi_error_pct_fs']:.3g} % "
                f"of full scale; {cell['dphi_cell']}: phi' error "
                f"{cell['dphi_error_pct_peak']:.3g} % of peak"
            )
        else:
            click.echo(
                f"cell {cell['cell']} input {cell['swept']}: linear to "
                f"{100 * cell['tol_rel']:g} % over +-{cell['linear_range_fs']:.3g} "
                f"full scales, gain error {cell['small_signal_gain_error_pct']:.2g} %"
            )
    t = result.timings
    click.echo(
        f"\nngspice {t.get('spice_wall_sec', 0):.1f} s, "
        f"ODE {t.get('ode_sec', 0):.1f} s, "
        f"total {time.perf_counter() - started:.1f} s"
    )
    click.echo(
        f"deck {result.paths.deck}\ntraces {result.paths.traces}\n"
        f"result {result.paths.json}\nfigure {result.paths.figure}"
    )
    if comparison.ok:
        click.echo(
            f"PASS: every signal within nrmse {comparison.tol_nrmse:g} "
            f"(weights within {comparison.tol_weight_rel:g} of their movement)"
        )
        sys.exit(0)
    click.echo(f"FAIL: {', '.join(comparison.failing())}", err=True)
    sys.exit(EXIT_FAIL)


def _register() -> None:
    """Add the commands that live in their own modules (they import names above)."""
    from vle_hw.cli_draw import draw
    from vle_hw.cli_explore import explore
    from vle_hw.cli_gradients import gradients
    from vle_hw.cli_spec import spec_command
    from vle_hw.cli_train import train

    main.add_command(spec_command)
    main.add_command(gradients)
    main.add_command(train)
    main.add_command(draw)
    main.add_command(explore)


_register()

if __name__ == "__main__":
    main()
