"""The ``vle-hw train`` command: a learning experiment in the ODE (and the circuit).

Registered on the ``vle-hw`` group by :mod:`vle_hw.cli`. Exit codes as there:
0 done; 2 bad input or an existing output without ``--force``; 3 ngspice missing
or a simulation failed; 130 interrupted (the curves so far are written).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click
import numpy as np

from vle_hw.cli_types import OUTPUT_FOLDER

SOURCE_LABELS = {
    "ode": "ODE, local rule",
    "spice": "SPICE, local rule",
    "adjoint": "ODE, exact adjoint (windowed)",
}


def _progress_bars():
    """A tqdm bar on stderr for the ODE (model time) and one for ngspice (wall s)."""
    from tqdm import tqdm

    bars: dict = {}

    def update(stage: str, done: float, total: float | None) -> None:
        if stage not in bars:
            if stage == "spice" and "ode" in bars:
                bars["ode"].close()
            if stage == "adjoint" and "ode" in bars:
                bars["ode"].close()
            timed = stage in ("ode", "adjoint")
            bars[stage] = tqdm(
                total=total,
                desc={"ode": "ODE reference", "adjoint": "exact adjoint"}.get(
                    stage, "ngspice"
                ),
                unit="t" if timed else "s",
                bar_format=(
                    "{desc}: {percentage:3.0f}%|{bar}| t = {n:.4g} of {total:.4g} "
                    "model units [{elapsed}<{remaining}]"
                    if timed
                    else "{desc}: still running, {n:.0f} s wall [{elapsed}]"
                ),
                leave=False,
            )
        bar = bars[stage]
        bar.n = min(done, total) if total else done
        bar.refresh()

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close


def _format_table(rows: list[dict]) -> str:
    head = (
        f"{'weight':<14}{'initial':>9}{'teacher':>10}{'ODE final':>12}"
        f"{'SPICE final':>13}{'SPICE-ODE max dev':>19}{'SPICE to teacher':>18}"
    )
    lines = [head]
    for row in rows:
        teacher = row.get("teacher")
        off = row.get("spice_rel_error_to_teacher")
        lines.append(
            f"{row['weight']:<14}{row['initial']:>9.4g}"
            f"{'-' if teacher is None else f'{teacher:.4g}':>10}"
            f"{row['ode_final']:>12.6g}{row['spice_final']:>13.6g}"
            f"{100 * row['max_rel_dev_spice_vs_ode']:>17.3g} %"
            f"{'-' if off is None else f'{100 * off:.3g} %':>18}"
        )
    return "\n".join(lines)


def _summary_lines(source: str, summary: dict) -> list[str]:
    lines = [f"{source}: t = {summary.get('t_end')}"]
    for label, tol in (("weights", 1), ("tau_m", 5)):
        key = f"{label}_max_rel_error_final"
        if key not in summary:
            continue
        settle = summary.get(f"{label}_within_{tol}pct_from_t")
        when = "not reached" if settle is None else f"from t = {settle:.4g}"
        lines.append(
            f"  {label}: max relative error to the teacher "
            f"{100 * summary[key]:.3g} % at the end; within {tol} % {when}"
        )
    for name, value in summary.get("final", {}).items():
        shown = np.array2string(np.asarray(value), precision=6, separator=", ")
        lines.append(f"  {name} final = {shown}")
    return lines


@click.command()
@click.argument("spec", required=False)
@click.option("--spice", is_flag=True, help="Also learn in the circuit (ngspice).")
@click.option(
    "--out",
    "out_dir",
    type=OUTPUT_FOLDER,
    default=None,
    help="Output folder (default: vle_hw_out/<spec name>_train).",
)
@click.option(
    "--t-stop",
    "t_stop",
    type=float,
    default=None,
    help="Run length in model time units (default: simulation.t_stop).",
)
@click.option(
    "--adjoint-window",
    "adjoint_window",
    type=float,
    default=None,
    help="Also learn by the exact adjoint in windows of this length (model units) "
    "and show both rules side by side.",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def train(spec, spice, out_dir, t_stop, adjoint_window, force) -> None:
    """Teacher-student learning in the ODE reference (and with --spice, ngspice).

    Writes learning.json (curves, comparison table, settings, run times) and
    learning.png. Ctrl-C stops the run and keeps the curves computed so far.
    """
    from vle_hw.cli import (
        EXIT_INPUT,
        EXIT_INTERRUPTED,
        EXIT_NGSPICE,
        _fail,
        _load,
    )
    from vle_hw.errors import (
        NgspiceMissingError,
        NgspiceRunError,
        OutputExistsError,
        ReferenceSolveError,
        SpecError,
    )
    from vle_hw.learning import TrainPaths
    from vle_hw.learning import train as run_train
    from vle_hw.outputs import check_not_inputs, spec_inputs

    started = time.perf_counter()
    interrupted = {"flag": False}

    def on_sigint(signum, frame) -> None:
        interrupted["flag"] = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # 2nd: hard stop

    update, close = _progress_bars()
    previous = signal.signal(signal.SIGINT, on_sigint)
    out = None
    try:
        parsed, text = _load(spec)
        if t_stop is not None and not (t_stop > 0 and t_stop < float("inf")):
            raise SpecError(
                f"--t-stop must be a finite number > 0, got {t_stop!r}; fix: give "
                "the run length in model time units, e.g. --t-stop 400."
            )
        out = Path(out_dir) if out_dir else Path("vle_hw_out") / f"{parsed.name}_train"
        check_not_inputs(
            TrainPaths.default(out, parsed.name).files(spice), spec_inputs(spec, parsed)
        )
        result = run_train(
            parsed,
            text,
            out,
            t_stop=t_stop,
            spice=spice,
            adjoint_window=adjoint_window,
            force=force,
            on_progress=update,
            should_stop=lambda: interrupted["flag"],
        )
    except (SpecError, OutputExistsError) as exc:
        close()
        _fail(str(exc), EXIT_INPUT)
    except NgspiceMissingError as exc:
        close()
        _fail(str(exc), EXIT_NGSPICE)
    except NgspiceRunError as exc:
        close()
        _fail(str(exc), EXIT_NGSPICE)
    except ReferenceSolveError as exc:
        close()
        _fail(f"the ODE reference failed: {exc}", EXIT_NGSPICE)
    except OSError as exc:
        close()
        _fail(f"cannot write outputs: {exc}", EXIT_INPUT)
    except KeyboardInterrupt:
        close()
        where = f" in {out / 'learning.json'}" if out is not None else ""
        _fail(
            f"interrupted; the curves of the finished windows are kept{where}.",
            EXIT_INTERRUPTED,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    close()

    for source, summary in result.summary.items():
        for line in _summary_lines(SOURCE_LABELS.get(source, source), summary):
            click.echo(line)
    if result.comparison:
        click.echo("")
        click.echo(_format_table(result.comparison))
    t = result.timings
    click.echo(
        f"\nODE {t.get('ode_sec', 0):.1f} s"
        + (f", adjoint {t['adjoint_sec']:.1f} s" if "adjoint_sec" in t else "")
        + (f", ngspice {t['spice_wall_sec']:.1f} s" if "spice_wall_sec" in t else "")
        + f", total {time.perf_counter() - started:.1f} s"
    )
    click.echo(f"curves {result.paths.json}\nfigure {result.paths.figure}")
    if not result.complete:
        t_end = result.summary["ode"].get("t_end")
        kept = [p for p in (result.paths.json, result.paths.figure) if p.exists()]
        where = " and ".join(map(str, kept))
        click.echo(
            f"interrupted at t = {t_end}: the partial curves are in {where}"
            if t_end is not None
            else f"interrupted before the first window finished: {where} holds "
            "the settings and no curves",
            err=True,
        )
        raise SystemExit(EXIT_INTERRUPTED)
