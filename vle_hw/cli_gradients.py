"""``vle-hw gradients``: exact gradients of a window's cost, their finite-difference
check and the alignment of the local learning signals (part of the CLI; only
this module and cli.py print)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import click
import numpy as np

from vle_hw.cli_types import OUTPUT_FILE
from vle_hw.errors import OutputExistsError, ReferenceSolveError, SpecError
from vle_hw.spec import TIME_MIN


def _omegas(text: str | None) -> list[float] | None:
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise SpecError(
                f"--omegas: {part.strip()!r} is not a number; fix: give "
                "comma-separated frequencies in rad per model time unit, e.g. "
                "--omegas 0.5,1,2."
            ) from None
        if not (math.isfinite(value) and value > 0):
            raise SpecError(
                f"--omegas: each frequency must be a number > 0, got {part.strip()!r}; "
                "fix: give positive frequencies, e.g. --omegas 0.5,1,2."
            )
        if value in values:
            raise SpecError(
                f"--omegas: {part.strip()!r} is given twice; fix: list each "
                "frequency once, e.g. --omegas 0.5,1,2."
            )
        values.append(value)
    return values


def _window(window, t_stop: float) -> tuple[float, float]:
    t0, t1 = window if window is not None else (0.0, min(10.0, t_stop))
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 < 0 or t1 <= t0:
        raise SpecError(
            f"--window: need 0 <= T0 < T1, got T0 = {t0!r}, T1 = {t1!r}; fix: give "
            "a start and a later end in model time units, e.g. --window 0 10."
        )
    if t1 - t0 < 1e-6 * t1:
        raise SpecError(
            f"--window: T1 - T0 = {t1 - t0:.3g} is below a millionth of T1 = {t1!r}, "
            "too short a window to integrate over; fix: choose a window of at least "
            f"{1e-6 * t1:.3g} model time units."
        )
    if t1 - t0 < TIME_MIN:
        raise SpecError(
            f"--window: T1 - T0 = {t1 - t0:.3g} is below {TIME_MIN:g} model time "
            "units, the shortest time a spec can give; fix: choose a longer window."
        )
    if t1 > t_stop:
        raise SpecError(
            f"--window: T1 = {t1!r} is past the run's end, simulation.t_stop = "
            f"{t_stop!r}; fix: choose T1 <= {t_stop!r} or raise simulation.t_stop."
        )
    return float(t0), float(t1)


class _Bars:
    """One tqdm bar per phase, on stderr."""

    def __init__(self):
        self.bar = None
        self.phase = None

    def __call__(self, phase: str, fraction: float) -> None:
        from tqdm import tqdm

        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = tqdm(
                total=100,
                desc=phase,
                leave=False,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
            )
        target = int(100 * min(max(fraction, 0.0), 1.0))
        self.bar.update(max(0, target - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _json(data: dict) -> str:
    """JSON text with NaN and infinities as null (strict JSON)."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(data), indent=2, sort_keys=True)


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:+.6e}" for v in np.ravel(values))


@click.command()
@click.argument("spec", required=False)
@click.option(
    "--window",
    nargs=2,
    type=float,
    default=None,
    metavar="T0 T1",
    help="Window of the cost, model time units (default: 0 to min(10, t_stop)).",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME",
    help="Parameter to report (W1, b1, tau_m1, tau_r1, ...); repeatable. Default: all.",
)
@click.option("--check-fd", is_flag=True, help="Also compute central differences.")
@click.option(
    "--alignment",
    "with_alignment",
    is_flag=True,
    help="Compare the local updates with the exact gradient.",
)
@click.option(
    "--omegas",
    default=None,
    metavar="W1,W2,...",
    help="Sine frequencies (rad per model time unit) for the frequency alignment.",
)
@click.option(
    "--json",
    "json_path",
    type=OUTPUT_FILE,
    default=None,
    help="Write the results to this JSON file.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing JSON file.")
def gradients(spec, window, params, check_fd, with_alignment, omegas, json_path, force):
    """Exact gradient of the window cost of SPEC by the adjoint (default: LagLine).

    The cost is C = integral over the window of 1/2 |y - r_N|^2 for the free
    network (gamma = 0, weights frozen). The state at T0 is the free network's,
    run from t = 0 with the spec's initial state. Reports dC/dtheta per
    parameter; with --check-fd central differences beside it; with
    --alignment the cosine and norm ratio |local| / (beta |exact|) of the
    window-integrated local updates; with --omegas the same ratio for sine
    inputs against (1 + w^2 tau_m^2) / (1 + w^2 tau_r^2).
    """
    from vle_hw import gradients as G
    from vle_hw.circuit import check_step_budget
    from vle_hw.cli import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_NGSPICE, _fail, _load
    from vle_hw.network import build_network
    from vle_hw.outputs import (
        check_not_inputs,
        check_writable,
        spec_inputs,
        write_atomic,
    )
    from vle_hw.signals import build_inputs, build_targets

    started = time.perf_counter()
    out: dict = {}
    bars = _Bars()
    try:
        parsed, _ = _load(spec)
        t0, t1 = _window(window, parsed.simulation.t_stop)
        omega_list = _omegas(omegas)
        network = build_network(parsed)
        names = G.check_parameter_names(network, list(params) or None)
        if with_alignment:
            G.check_beta(network)
        if omega_list is not None:
            G.check_omegas(omega_list, network)
        if json_path is not None:
            check_not_inputs([Path(json_path)], spec_inputs(spec, parsed))
            check_writable([Path(json_path)], force)
        inputs, targets = build_inputs(parsed), build_targets(parsed)
        G._check_target(network, targets)
        check_step_budget(parsed, network, inputs, span=t1, shorten="--window T1")
        out.update(spec=parsed.name, window=[t0, t1], complete=False)

        # --- state at T0 and the exact gradient -----------------------------------
        click.echo(
            f"gradients {parsed.name}: window [{t0:g}, {t1:g}], free network "
            f"(gamma = 0), state at {t0:g} from a run from 0 "
            f"({parsed.initial_state} start)"
        )
        state0 = G.initial_state(
            network, inputs, targets, t0, parsed.initial_state, 0.0
        )
        result = G.window_gradient(
            network, inputs, targets, t0, t1, state0, names, on_progress=bars
        )
        bars.close()
        out["gradient"] = result.to_dict()
        fd = None
        if check_fd:
            fd = G.finite_difference_gradient(
                network,
                inputs,
                targets,
                t0,
                t1,
                state0,
                names,
                rtol=1e-11,
                atol=1e-13,
                on_progress=bars,
            )
            bars.close()
            errors = G.relative_errors(result.gradient, fd)
            out["finite_differences"] = {
                "gradient": {k: v.tolist() for k, v in fd.items()},
                "max_rel_err": errors,
                "method": "central, h = 1e-4 max(|theta|, 1), DOP853 rtol 1e-11",
            }
        align = None
        if with_alignment:
            align = G.alignment(
                network, inputs, targets, t0, t1, state0, result, on_progress=bars
            )
            bars.close()
            out["alignment"] = align
        freq = None
        if omega_list:
            freq = G.frequency_alignment(omega_list, network, on_progress=bars)
            bars.close()
            out["frequency_alignment"] = freq
        out["complete"] = True
    except (SpecError, OutputExistsError) as exc:
        bars.close()
        _fail(str(exc), EXIT_INPUT)
    except ReferenceSolveError as exc:
        bars.close()
        _fail(f"the ODE reference failed: {exc}", EXIT_NGSPICE)
    except KeyboardInterrupt:
        bars.close()
        where = "nothing written"
        if json_path is not None and "gradient" in out:
            write_atomic(Path(json_path), _json(out))
            where = f"partial results (complete: false) in {json_path}"
        _fail(f"interrupted; {where}.", EXIT_INTERRUPTED)

    # --- report -------------------------------------------------------------------
    click.echo(f"cost C = {result.cost:.9e} over [{t0:g}, {t1:g}]")
    header = f"{'param':<9} {'value':<28} {'dC/dtheta':<28}"
    if fd is not None:
        header += f" {'central diff.':<28} max rel err"
    click.echo(header)
    for name in names:
        line = (
            f"{name:<9} {_fmt(result.values[name]):<28} "
            f"{_fmt(result.gradient[name]):<28}"
        )
        if fd is not None:
            line += f" {_fmt(fd[name]):<28} {errors[name]:.2e}"
        click.echo(line)
    if align is not None:
        click.echo(
            f"\nalignment (local update vs -dC/dtheta, beta = {align['beta']:g})"
        )
        click.echo(f"{'param':<9} {'cosine':>9} {'|local|/(beta|exact|)':>22}")
        for name, row in {**align["params"], **align["overall"]}.items():
            click.echo(f"{name:<9} {row['cosine']:>9.5f} {row['norm_ratio']:>22.5f}")
    if freq is not None:
        click.echo("\nfrequency alignment (sine input, W updates)")
        click.echo(f"{'omega':>8} {'layer':>5} {'measured':>10} {'predicted':>10}")
        for row in freq:
            pred = "-" if row["predicted"] is None else f"{row['predicted']:.5f}"
            if row["predicted"] is not None and not row["prediction_exact"]:
                pred += " (linearised)"
            click.echo(
                f"{row['omega']:>8.4g} {row['layer']:>5} "
                f"{row['measured']:>10.5f} {pred:>10}"
            )
    click.echo(
        f"\nforward {result.stats['forward_sec']:.2f} s, adjoint "
        f"{result.stats['adjoint_sec']:.2f} s, total "
        f"{time.perf_counter() - started:.1f} s"
    )
    if json_path is not None:
        out["wall_sec"] = time.perf_counter() - started
        try:
            write_atomic(Path(json_path), _json(out))
        except OSError as exc:
            _fail(f"cannot write {json_path}: {exc.strerror or exc}", EXIT_INPUT)
        click.echo(f"wrote {json_path}")
