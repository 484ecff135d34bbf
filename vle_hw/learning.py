"""Learning experiments: the student learns the teacher, in the ODE and in the circuit.

``train`` runs the ODE reference of a spec in windows of simulated time (each
window starts from the last state of the one before), samples learning curves
from every finished window and writes them to ``learning.json`` when the run
ends, when the caller stops it (Ctrl-C in the CLI) and every 30 s meanwhile, so
a stopped run keeps the curves of its finished windows.
With ``spice=True`` the behavioural deck runs in ngspice meanwhile, and its
curves and a comparison table (final weights, largest deviation of the SPICE
weights from the ODE weights over the run, teacher distances) join the ODE's.

Curves are plain data with the keys ``t``, ``loss``, ``weights`` (``{"W1":
[matrix per t], ...}`` for each plastic layer), ``teacher_distance`` and, when
tau_m is learned, ``tau_m`` (``{"tau_m1": [vector per t], ...}``) and
``teacher_distance_tau_m``. The loss is the running mean of
1/2 |y - r_N|^2 over a trailing window (one input period by default). A teacher
distance is |theta - theta_teacher| / |theta_teacher| over every plastic
weight (biases excluded) or every learned tau_m; ``teacher_max_rel_error`` is
the largest elementwise relative error, which decides "within 1 %" (weights)
and "within 5 %" (tau_m): the time reported is the first curve time after
which the error stays within the tolerance to the end of the run.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from vle_hw import __version__
from vle_hw.circuit import check_step_budget
from vle_hw.errors import SpecError, VleLimitationWarning
from vle_hw.network import Network, build_network
from vle_hw.outputs import check_not_inputs, check_writable, spec_inputs, write_atomic
from vle_hw.reference import (
    TAU_M_FLOOR_REL,
    ReferenceSolution,
    ReferenceStopped,
    simulate_reference,
)
from vle_hw.runner import run_files
from vle_hw.signals import build_inputs, build_targets
from vle_hw.spec import (
    OrnsteinUhlenbeck,
    Sines,
    SmoothedSquare,
    Spec,
    _format_validation_error,
    spec_hash,
)
from vle_hw.trace import Trace

log = logging.getLogger(__name__)

WEIGHT_TOL_REL = 0.01  # "within 1 %" of the teacher (issue #3)
TAU_M_TOL_REL = 0.05  # "within 5 %"
CURVE_POINTS = 2000  # default number of curve samples over the run
CHUNKS = 40  # default number of ODE windows (what a Ctrl-C can lose at most)
LOSS_SAMPLES_PER_WINDOW = 200
SAVE_EVERY_SEC = 30.0  # partial curves are written at most this often during a run
# LIMITATION(learning): a run holds at most MAX_CURVE_SAMPLES loss samples (200 per
#   loss window) and curve points, so a run is at most 10 000 loss windows long
#   (40 000 units of LagLine); longer runs are refused before any work.
MAX_CURVE_SAMPLES = 2_000_000

Progress = Callable[[str, float, float | None], None]


@dataclass
class TrainPaths:
    """Every file a train run writes."""

    out_dir: Path
    json: Path
    figure: Path
    deck: Path
    ngspice_dir: Path

    @classmethod
    def default(cls, out_dir: Path, name: str) -> TrainPaths:
        return cls(
            out_dir=out_dir,
            json=out_dir / "learning.json",
            figure=out_dir / "learning.png",
            deck=out_dir / f"{name}.cir",
            ngspice_dir=out_dir / "ngspice",
        )

    def files(self, spice: bool) -> list[Path]:
        files = [self.json, self.figure]
        if spice:
            files += [self.deck, *run_files(self.ngspice_dir)]
        return files


@dataclass
class TrainResult:
    """Learning curves of one run (plain data), as written to ``learning.json``.

    Attributes
    ----------
    curves : dict
        ``{"ode": curves, "spice": curves}`` (``spice`` only when run).
    summary : dict
        Per source: final parameters, final teacher distances, and the times
        at which the weights (tau_m) settle within 1 % (5 %) of the teacher's.
    comparison : list of dict or None
        One row per plastic weight: initial, teacher, ODE and SPICE final
        values, and the largest relative deviation of SPICE from ODE over the
        run. None without SPICE.
    settings, timings : dict
    complete : bool
        False when the caller stopped the run; the curves end where it stopped.
    paths : TrainPaths
    """

    curves: dict[str, dict]
    summary: dict[str, dict]
    comparison: list[dict] | None
    settings: dict
    timings: dict[str, float]
    complete: bool
    paths: TrainPaths
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "complete": self.complete,
            "settings": self.settings,
            "timings": self.timings,
            "summary": self.summary,
            "comparison": self.comparison,
            "curves": self.curves,
            **self.info,
        }


# --- settings -------------------------------------------------------------------


def with_t_stop(spec: Spec, t_stop: float) -> Spec:
    """`spec` with ``simulation.t_stop`` replaced, validated again.

    Raises
    ------
    SpecError
        If the new run length breaks a rule of the spec (e.g. max_step).
    """
    data = spec.model_dump()
    data["simulation"]["t_stop"] = float(t_stop)
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(
            _format_validation_error(exc, f"--t-stop {t_stop:g}", data)
        ) from None


def loss_window(spec: Spec) -> tuple[float, str]:
    """Length of the loss's running mean (model units) and why that length.

    One input period for a periodic input (the slowest sine's for a sum of
    sines); otherwise a tenth of the run.

    Examples
    --------
    >>> from vle_hw.spec import load_spec
    >>> loss_window(load_spec()[0])
    (4.0, 'one period of the input square wave')
    """
    first = spec.input[0] if isinstance(spec.input, list) else spec.input
    if isinstance(first, SmoothedSquare):
        return first.period, "one period of the input square wave"
    if isinstance(first, Sines):
        return 2 * math.pi / min(first.omegas), "one period of the slowest input sine"
    if isinstance(first, OrnsteinUhlenbeck):
        return 10 * first.tau, "ten correlation times of the OU input"
    return spec.simulation.t_stop / 10, "a tenth of the run (no input period)"


def _check_learns(spec: Spec, network: Network, spice: bool) -> None:
    if network.eta <= 0 and network.eta_tau <= 0:
        raise SpecError(
            "network.eta = 0 and network.eta_tau = 0: nothing learns; fix: set "
            "network.eta > 0 (weights) or network.eta_tau > 0 (tau_m)."
        )
    if not any(layer.plastic for layer in network.layers):
        raise SpecError(
            "network.layers: every layer has plastic: false, so nothing learns; "
            "fix: make at least one layer plastic."
        )
    if spice and network.eta <= 0:
        raise SpecError(
            "train --spice compares weights learned in ngspice, but network.eta = "
            "0; fix: set network.eta > 0 or run without --spice."
        )


# --- curves ---------------------------------------------------------------------


def _check_sizes(t_stop, every, chunk, window, adjoint_window) -> None:
    """Refuse runs whose sample counts would exhaust memory or run for days.

    Raises
    ------
    SpecError
        Naming --t-stop (or the setting at fault), the count and the fix.
    """
    from vle_hw.gradients import check_adjoint_windows

    counts = {
        "loss samples": (t_stop * LOSS_SAMPLES_PER_WINDOW / window, "window"),
        "curve points": (t_stop / every, "every"),
        "ODE windows": (t_stop / chunk, "chunk"),
    }
    for what, (count, knob) in counts.items():
        if not count <= MAX_CURVE_SAMPLES:
            longest = MAX_CURVE_SAMPLES * t_stop / count
            raise SpecError(
                f"--t-stop = {t_stop:g} needs {count:.3g} {what}, more than the "
                f"{MAX_CURVE_SAMPLES} a train run holds; fix: give --t-stop at most "
                f"{longest:.4g} model units (library callers: or a larger {knob})."
            )
    if adjoint_window is not None:
        check_adjoint_windows(t_stop, adjoint_window, "--adjoint-window")


def _parameters(network: Network, states: np.ndarray, model) -> dict[str, np.ndarray]:
    """Learned parameters at each row of `states`: W1..., b1..., tau_m1..."""
    out = {}
    for layer in network.layers:
        if ("W", layer.index) in model.slots:
            out[f"W{layer.index}"] = model.get(states, "W", layer.index).copy()
        if ("b", layer.index) in model.slots:
            out[f"b{layer.index}"] = model.get(states, "b", layer.index).copy()
        if ("T", layer.index) in model.slots:
            out[f"tau_m{layer.index}"] = model.tau_m(states, layer).copy()
    return out


def _teacher_parameters(network: Network) -> dict[str, np.ndarray]:
    out = {}
    for layer in network.teacher or ():
        out[f"W{layer.index}"] = layer.weights
        if layer.biases is not None:
            out[f"b{layer.index}"] = layer.biases
        out[f"tau_m{layer.index}"] = layer.tau_m
    return out


def _instant_loss(trace: Trace, out_layer: int) -> np.ndarray:
    """1/2 |y - r_N|^2 at each time point of `trace`."""
    total = np.zeros_like(trace.t)
    j = 0
    while f"y_n{j}" in trace.signals:
        diff = trace.signals[f"y_n{j}"] - trace.signals[f"r_l{out_layer}_n{j}"]
        total += 0.5 * diff**2
        j += 1
    return total


def _running_mean(t_fine, c_fine, t, window) -> np.ndarray:
    """Trailing mean of c over [t - window, t] (over [0, t] before one window)."""
    steps = np.diff(t_fine) * 0.5 * (c_fine[1:] + c_fine[:-1])
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])
    start = np.maximum(t - window, t_fine[0])
    span = t - start
    area = np.interp(t, t_fine, cumulative) - np.interp(start, t_fine, cumulative)
    instant = np.interp(t, t_fine, c_fine)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, area / np.where(span > 0, span, 1.0), instant)


def _distance(values: dict, teacher: dict, prefix: str):
    """Relative Frobenius distance and max elementwise relative error per time."""
    names = [n for n in values if n.startswith(prefix) and n in teacher]
    if prefix == "W":
        names = [n for n in names if n[1:].isdigit()]
    if not names:
        return None, None
    diff = np.concatenate(
        [(values[n] - teacher[n]).reshape(len(values[n]), -1) for n in names], axis=1
    )
    ref = np.concatenate([teacher[n].ravel() for n in names])
    norm = np.linalg.norm(ref)
    floor = 1e-3 * (np.max(np.abs(ref)) if ref.size else 1.0) or 1.0
    distance = np.linalg.norm(diff, axis=1) / (norm if norm > 0 else 1.0)
    max_rel = np.max(np.abs(diff) / np.maximum(np.abs(ref), floor), axis=1)
    return distance, max_rel


def _settle_time(t: np.ndarray, error: np.ndarray | None, tol: float):
    """First curve time after which `error` stays <= tol to the end, or None."""
    if error is None or len(error) == 0 or error[-1] > tol:
        return None
    above = np.nonzero(error > tol)[0]
    return float(t[0] if len(above) == 0 else t[above[-1] + 1])


def curves_from(
    t: np.ndarray,
    params: dict[str, np.ndarray],
    t_fine: np.ndarray,
    loss_fine: np.ndarray,
    window: float,
    teacher: dict[str, np.ndarray],
) -> dict:
    """Assemble the plain-data curves of one source (ODE or SPICE)."""
    curves: dict = {
        "t": t.tolist(),
        "loss": _running_mean(t_fine, loss_fine, t, window).tolist(),
        "weights": {n: v.tolist() for n, v in params.items() if n.startswith("W")},
    }
    biases = {n: v.tolist() for n, v in params.items() if n.startswith("b")}
    if biases:
        curves["biases"] = biases
    taus = {n: v.tolist() for n, v in params.items() if n.startswith("tau_m")}
    if taus:
        curves["tau_m"] = taus
    distance, max_rel = _distance(params, teacher, "W")
    if distance is not None:
        curves["teacher_distance"] = distance.tolist()
        curves["teacher_max_rel_error"] = max_rel.tolist()
    if taus:
        distance, max_rel = _distance(params, teacher, "tau_m")
        if distance is not None:
            curves["teacher_distance_tau_m"] = distance.tolist()
            curves["teacher_max_rel_error_tau_m"] = max_rel.tolist()
    return curves


def _summary(curves: dict) -> dict:
    t = np.asarray(curves["t"])
    out: dict = {"t_end": float(t[-1]) if len(t) else None}
    if not len(t):
        return out
    out["final"] = {n: v[-1] for n, v in curves["weights"].items()}
    out["final"].update({n: v[-1] for n, v in curves.get("biases", {}).items()})
    out["final"].update({n: v[-1] for n, v in curves.get("tau_m", {}).items()})
    out["loss_final"] = curves["loss"][-1]
    for key, tol, label in (
        ("teacher_max_rel_error", WEIGHT_TOL_REL, "weights"),
        ("teacher_max_rel_error_tau_m", TAU_M_TOL_REL, "tau_m"),
    ):
        if key not in curves:
            continue
        error = np.asarray(curves[key])
        dist_key = key.replace("max_rel_error", "distance")
        out[f"{label}_teacher_distance_final"] = curves[dist_key][-1]
        out[f"{label}_max_rel_error_final"] = float(error[-1])
        out[f"{label}_within_{round(100 * tol)}pct_from_t"] = _settle_time(
            t, error, tol
        )
    return out


# --- the run ----------------------------------------------------------------------


def train(
    spec: Spec,
    spec_text: str,
    out_dir: Path,
    *,
    t_stop: float | None = None,
    spice: bool = False,
    every: float | None = None,
    chunk: float | None = None,
    window: float | None = None,
    adjoint_window: float | None = None,
    force: bool = False,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Run a teacher-student learning experiment and write its curves.

    Parameters
    ----------
    spec : Spec
        Validated spec with a target (a teacher gives the teacher distances).
    spec_text : str
        Its source text (hashed into the outputs).
    out_dir : Path
        Folder for ``learning.json``, ``learning.png`` (and, with `spice`, the
        deck and the ngspice log); nothing is overwritten unless `force`.
    t_stop : float, optional
        Run length in model time units (default: ``simulation.t_stop``).
    spice : bool
        Also run the behavioural circuit in ngspice and compare.
    every : float, optional
        Curve sampling interval, model units (default: run / 2000).
    chunk : float, optional
        Length of each ODE window, model units (default: run / 40).
    window : float, optional
        Loss running-mean window, model units (default: :func:`loss_window`).
    adjoint_window : float, optional
        Also learn by the exact adjoint (truncated BPTT) in windows of this
        length, from the same start (:func:`vle_hw.gradients.train_windowed_adjoint`);
        its curves go under ``"adjoint"`` beside the local rule's ``"ode"``.
    force : bool
    on_progress : callable, optional
        ``on_progress(stage, done, total)``: stage ``"ode"`` with model time
        and the run length, stage ``"spice"`` with wall seconds and None.
    should_stop : callable, optional
        Polled during the run; when it returns True the run stops, the
        curves so far are written (``complete: false``) and returned.

    Returns
    -------
    TrainResult

    Raises
    ------
    SpecError
        Bad settings (nothing learns, a bad t_stop, tau_m learning with SPICE).
    OutputExistsError
        An output exists and `force` is false (checked before any work).
    NgspiceMissingError, NgspiceRunError, ReferenceSolveError
        A simulation failed.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    # --- build (bad input fails here, before any file is touched) ----------------
    if t_stop is not None:
        spec = with_t_stop(spec, t_stop)
    t_stop = spec.simulation.t_stop
    network = build_network(spec)
    inputs = build_inputs(spec)
    targets = build_targets(spec)
    _check_learns(spec, network, spice)
    for name, value in (
        ("every", every),
        ("chunk", chunk),
        ("window", window),
        ("--adjoint-window", adjoint_window),
    ):
        if value is not None and not (0 < value <= t_stop):
            raise SpecError(
                f"{name} = {value!r} must be > 0 and <= the run length {t_stop:g}; "
                f"fix: give {name} a value inside the run."
            )
    every = every or t_stop / CURVE_POINTS
    chunk = chunk or t_stop / CHUNKS
    default_window, window_reason = loss_window(spec)
    if window is None:
        window = min(default_window, t_stop)
    else:
        window_reason = "given by the caller"
    _check_sizes(t_stop, every, chunk, window, adjoint_window)
    # LIMITATION(learning): train has no wall-clock limit (simulation.timeout_sec
    #   is verify's); the step budget is its only bound. Consequence: a run inside
    #   the budget can still take hours on a large network. Issue #6 note.
    check_step_budget(spec, network, inputs, shorten="--t-stop (simulation.t_stop)")
    paths = TrainPaths.default(out_dir, spec.name)
    check_not_inputs(paths.files(spice), spec_inputs(None, spec))
    deck = None
    if spice:
        from vle_hw.pipeline import _deck

        deck = _deck(spec, spec_text, network, inputs, targets)
    check_writable(paths.files(spice), force)
    for stale in paths.files(spice):
        stale.unlink(missing_ok=True)
    settings = {
        "spec": spec.name,
        "spec_hash": spec_hash(spec_text),
        "tool_version": __version__,
        "t_stop": t_stop,
        "eta": network.eta,
        "eta_tau": network.eta_tau,
        "every": every,
        "chunk": chunk,
        "loss": "running mean of 1/2 |y - r_N|^2",
        "loss_window": window,
        "loss_window_reason": window_reason,
        "weight_tol_rel": WEIGHT_TOL_REL,
        "tau_m_tol_rel": TAU_M_TOL_REL,
        "spice": spice,
        "adjoint_window": adjoint_window,
    }
    if adjoint_window is not None:
        settings["adjoint_loss"] = "mean of 1/2 |y - r_N|^2 over each adjoint window"
        settings["adjoint_step_rule"] = (
            "delta theta = eta * beta * (-dC/dtheta) per window, free network"
        )
    teacher = _teacher_parameters(network)
    settings["teacher"] = {name: value.tolist() for name, value in teacher.items()}
    timings["build_sec"] = time.perf_counter() - started

    # --- circuit: ngspice in a worker while the ODE runs here ----------------------
    handle = None
    if spice:
        from vle_hw.runner import start_run

        write_atomic(paths.deck, deck.text)
        handle = start_run(
            deck, paths.deck, paths.ngspice_dir, spec.simulation.timeout_sec
        )
    spice_started = time.perf_counter()

    # --- ODE in windows; curves written after each ------------------------------------
    t_curve = np.unique(np.append(np.arange(0.0, t_stop, every), t_stop))
    n_fine = max(2, math.ceil(t_stop / (window / LOSS_SAMPLES_PER_WINDOW)) + 1)
    t_fine_all = np.linspace(0.0, t_stop, n_fine)
    edges = np.unique(np.append(np.arange(0.0, t_stop, chunk), t_stop))
    out_layer = network.layers[-1].index
    solutions: list[ReferenceSolution] = []
    samples: list[dict[str, np.ndarray]] = []
    t_done: list[np.ndarray] = []
    fine_t: list[np.ndarray] = []
    fine_loss: list[np.ndarray] = []
    state = None
    complete = True
    t0 = last_write = time.perf_counter()

    def stop_now() -> bool:
        if handle is not None and handle.finished_badly():
            return True
        return should_stop is not None and should_stop()

    def partial_result() -> TrainResult:
        t = np.concatenate(t_done) if t_done else np.empty(0)
        params = (
            {n: np.concatenate([s[n] for s in samples]) for n in samples[0]}
            if samples
            else {}
        )
        tf = np.concatenate(fine_t) if fine_t else np.empty(0)
        lf = np.concatenate(fine_loss) if fine_loss else np.empty(0)
        ode = (
            curves_from(t, params, tf, lf, window, teacher)
            if len(t)
            else {"t": [], "loss": [], "weights": {}}
        )
        return TrainResult(
            curves={"ode": ode},
            summary={"ode": _summary(ode)},
            comparison=None,
            settings=settings,
            timings=dict(timings),
            complete=False,
            paths=paths,
        )

    try:
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            if stop_now():
                raise ReferenceStopped(f"stopped by the caller at t = {a:g}")
            solution = simulate_reference(
                network,
                inputs,
                float(b),
                spec.initial_state,
                targets,
                t_start=float(a),
                state0=state,
                should_stop=stop_now,
                on_progress=(
                    None
                    if on_progress is None
                    else lambda t_now: on_progress("ode", t_now, t_stop)
                ),
            )
            state = solution.states(np.array([b]))[0]
            first = a == edges[0]
            pick = (t_curve >= a if first else t_curve > a) & (t_curve <= b)
            states = solution.states(t_curve[pick])
            samples.append(_parameters(network, states, solution.model))
            t_done.append(t_curve[pick])
            fpick = (t_fine_all >= a if first else t_fine_all > a) & (t_fine_all <= b)
            trace = solution.trace(t_fine_all[fpick])
            fine_t.append(t_fine_all[fpick])
            fine_loss.append(_instant_loss(trace, out_layer))
            solutions.append(solution)
            timings["ode_sec"] = time.perf_counter() - t0
            if on_progress is not None:
                on_progress("ode", float(b), t_stop)
            # a hard kill (a second Ctrl-C) keeps what was written last
            if b < t_stop and time.perf_counter() - last_write > SAVE_EVERY_SEC:
                _write_json(paths.json, partial_result())
                last_write = time.perf_counter()
    except ReferenceStopped:
        complete = False
    except BaseException:
        if handle is not None:
            handle.stop()
        raise
    timings["ode_sec"] = time.perf_counter() - t0

    if not complete:
        if handle is not None:
            asked = should_stop is not None and should_stop()
            if not asked and handle.finished_badly():
                handle.result()  # raises the circuit run's own error
            handle.stop()
        result = partial_result()
        result.timings["total_sec"] = time.perf_counter() - started
        _write_outputs(paths, result)
        log.info(
            "train stopped t_end=%s json=%s", result.summary["ode"]["t_end"], paths.json
        )
        return result

    result = partial_result()
    result.complete = True
    if adjoint_window is not None:
        adjoint = _adjoint_side(
            spec,
            network,
            inputs,
            targets,
            adjoint_window,
            teacher,
            on_progress,
            stop_now,
        )
        timings["adjoint_sec"] = adjoint.pop("wall_sec")
        result.timings = dict(timings)
        result.curves["adjoint"] = adjoint
        result.summary["adjoint"] = _summary(adjoint)
        if not adjoint.pop("complete"):
            if handle is not None:
                handle.stop()
            result.complete = False
            result.info["stopped"] = "during the adjoint run"
            result.timings["total_sec"] = time.perf_counter() - started
            _write_outputs(paths, result)
            return result
    floored = _tau_m_at_floor(network, samples)
    if floored:
        result.info["tau_m_at_floor"] = floored
        warnings.warn(
            f"tau_m of {', '.join(floored)} reached its floor of {TAU_M_FLOOR_REL:g} "
            "x its initial value, where the tau_m rule is switched off "
            "[LIMITATION(reference), #3]; lower network.eta_tau.",
            VleLimitationWarning,
            stacklevel=2,
        )

    # --- circuit result ------------------------------------------------------------
    if handle is not None:
        while handle.process.is_alive():
            handle.process.join(0.5)
            if on_progress is not None:
                on_progress("spice", time.perf_counter() - spice_started, None)
            if should_stop is not None and should_stop():
                handle.stop()
                result.complete = False
                result.timings["total_sec"] = time.perf_counter() - started
                result.info["stopped"] = "while waiting for ngspice"
                _write_outputs(paths, result)
                return result
        spice_trace = handle.result()
        timings["spice_wall_sec"] = float(spice_trace.meta.get("wall_sec") or 0.0)
        result.info["ngspice_log"] = spice_trace.meta.get("log")
        result.info["spice_points"] = len(spice_trace.t)
        spice_curves, comparison = _spice_side(
            network, spice_trace, solutions, t_curve, window, teacher
        )
        result.curves["spice"] = spice_curves
        result.summary["spice"] = _summary(spice_curves)
        result.comparison = comparison

    timings["total_sec"] = time.perf_counter() - started
    result.timings = dict(timings)
    _write_outputs(paths, result)
    return result


def _adjoint_side(
    spec, network, inputs, targets, window, teacher, on_progress, stop_now
) -> dict:
    """Learning by the windowed exact adjoint, as curves of the ODE's shape."""
    from vle_hw.gradients import train_windowed_adjoint

    t_stop = spec.simulation.t_stop
    raw = train_windowed_adjoint(
        network,
        inputs,
        targets,
        t_stop,
        window,
        initial_state_rule=spec.initial_state,
        on_progress=(
            None
            if on_progress is None
            else lambda _phase, fraction: on_progress(
                "adjoint", fraction * t_stop, t_stop
            )
        ),
        should_stop=stop_now,
    )
    t = np.asarray(raw["t"], dtype=float)
    params = {
        name: np.asarray(values, dtype=float).reshape(len(t), *np.shape(values[0]))
        for group in ("weights", "biases")
        for name, values in raw.get(group, {}).items()
        if values
    }
    curves: dict = {
        "t": t.tolist(),
        "loss": list(raw["loss"]),
        "weights": {n: v.tolist() for n, v in params.items() if n.startswith("W")},
    }
    biases = {n: v.tolist() for n, v in params.items() if n.startswith("b")}
    if biases:
        curves["biases"] = biases
    distance, max_rel = _distance(params, teacher, "W") if len(t) else (None, None)
    if distance is not None:
        curves["teacher_distance"] = distance.tolist()
        curves["teacher_max_rel_error"] = max_rel.tolist()
    curves["wall_sec"] = raw["wall_sec"]
    curves["complete"] = raw["complete"]
    return curves


def _tau_m_at_floor(network: Network, samples: list[dict]) -> list[str]:
    """Learned tau_m (``tau_m<layer>[i]``) whose sampled minimum sits at the floor."""
    floored = []
    for layer in network.layers:
        key = f"tau_m{layer.index}"
        if not samples or key not in samples[0]:
            continue
        lowest = np.min(np.concatenate([s[key] for s in samples]), axis=0)
        for i in np.nonzero(lowest <= TAU_M_FLOOR_REL * layer.tau_m * (1 + 1e-9))[0]:
            floored.append(f"{key}[{i}]")
    return floored


def _ode_states_at(solutions: list[ReferenceSolution], t: np.ndarray) -> np.ndarray:
    """Dense ODE states at any times of the run, from the window that holds each."""
    ends = np.array([s.solution.t[-1] for s in solutions])
    which = np.minimum(np.searchsorted(ends, t), len(solutions) - 1)
    out = np.empty((len(t), solutions[0].model.n_state))
    for k in np.unique(which):
        mask = which == k
        out[mask] = solutions[k].states(t[mask])
    return out


def _spice_side(network, trace, solutions, t_curve, window, teacher):
    """SPICE curves and the ODE-vs-SPICE weight table."""
    model = solutions[0].model
    params = {}
    for layer in network.layers:
        if ("W", layer.index) not in model.slots:
            continue
        rows, cols = layer.weights.shape
        params[f"W{layer.index}"] = np.stack(
            [
                np.stack(
                    [
                        np.interp(
                            t_curve,
                            trace.t,
                            trace.signals[f"w_l{layer.index}_i{i}_j{j}"],
                        )
                        for j in range(cols)
                    ],
                    axis=-1,
                )
                for i in range(rows)
            ],
            axis=1,
        )
    loss = _instant_loss(trace, network.layers[-1].index)
    curves = curves_from(t_curve, params, trace.t, loss, window, teacher)

    # deviation of SPICE from ODE weights at every SPICE time point
    ode_states = _ode_states_at(solutions, trace.t)
    rows_out = []
    for layer in network.layers:
        if ("W", layer.index) not in model.slots:
            continue
        w_ode = model.get(ode_states, "W", layer.index)
        scale = 1e-3 * max(np.max(np.abs(w_ode)), 1e-12)
        for i in range(layer.weights.shape[0]):
            for j in range(layer.weights.shape[1]):
                name = f"w_l{layer.index}_i{i}_j{j}"
                ode_w = w_ode[:, i, j]
                spice_w = trace.signals[name]
                deviation = np.abs(spice_w - ode_w) / np.maximum(np.abs(ode_w), scale)
                row = {
                    "weight": name,
                    "initial": float(layer.weights[i, j]),
                    "ode_final": float(ode_w[-1]),
                    "spice_final": float(spice_w[-1]),
                    "max_rel_dev_spice_vs_ode": float(np.max(deviation)),
                    "at_t": float(trace.t[int(np.argmax(deviation))]),
                }
                key = f"W{layer.index}"
                if key in teacher:
                    target = float(teacher[key][i, j])
                    row["teacher"] = target
                    if target != 0:
                        row["ode_rel_error_to_teacher"] = abs(ode_w[-1] - target) / abs(
                            target
                        )
                        row["spice_rel_error_to_teacher"] = abs(
                            spice_w[-1] - target
                        ) / abs(target)
                rows_out.append(row)
    return curves, rows_out


def _write_json(path: Path, result: TrainResult) -> None:
    write_atomic(path, json.dumps(result.to_dict(), indent=1, sort_keys=True))


def _write_outputs(paths: TrainPaths, result: TrainResult) -> None:
    _write_json(paths.json, result)
    if result.curves["ode"]["t"]:
        write_atomic(paths.figure, learning_figure(result.curves, result.settings))


def learning_figure(curves: dict[str, dict], settings: dict) -> bytes:
    """PNG bytes: loss, learned parameters against the teacher's, teacher distance.

    ODE curves are drawn wide and pale, SPICE curves thin and dashed on top,
    so agreement shows as one line.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_tau = "tau_m" in curves["ode"]
    fig, axes = plt.subplots(
        2 + has_tau, 2, figsize=(11, 4 + 3 * (1 + has_tau)), constrained_layout=True
    )
    styles = {
        "ode": {"lw": 2.5, "alpha": 0.5},
        "spice": {"lw": 1.0, "ls": "--"},
        "adjoint": {"lw": 1.5, "ls": ":"},
    }
    # a zero start (loss exactly 0) must not stretch the log axis to 1e-300
    peak = max((max(d["loss"]) for d in curves.values() if d["loss"]), default=1.0)
    loss_floor = max(peak, 1e-300) * 1e-12
    for source, data in curves.items():
        if not data["t"]:
            continue
        t = np.asarray(data["t"])
        style = styles.get(source, {})
        label = {"adjoint": "ADJOINT"}.get(source, f"{source.upper()} local")
        axes[0, 0].semilogy(
            t, np.maximum(data["loss"], loss_floor), label=label, **style
        )
        for key in ("teacher_distance", "teacher_distance_tau_m"):
            if key in data:
                which = "tau_m" if key.endswith("tau_m") else "weights"
                axes[0, 1].semilogy(t, data[key], label=f"{label} {which}", **style)
        groups = [("weights", axes[1, 0]), ("biases", axes[1, 1])]
        if has_tau:
            groups.append(("tau_m", axes[2, 0]))
        for group, ax in groups:
            for name, values in data.get(group, {}).items():
                flat = np.asarray(values).reshape(len(t), -1)
                for k in range(flat.shape[1]):
                    ax.plot(t, flat[:, k], label=f"{label} {name}[{k}]", **style)
    teacher = settings.get("teacher", {})
    for group, ax in (("W", axes[1, 0]), ("b", axes[1, 1]), ("tau_m", None)):
        if ax is None:
            ax = axes[2, 0] if has_tau else None
        for name, values in teacher.items():
            if (
                ax is None
                or not name.startswith(group)
                or name
                not in (
                    set(curves["ode"].get("weights", {}))
                    | set(curves["ode"].get("biases", {}))
                    | set(curves["ode"].get("tau_m", {}))
                )
            ):
                continue
            for value in np.ravel(values):
                ax.axhline(value, color="k", lw=0.8, ls=":")
    axes[0, 0].set_title(
        f"loss: running mean of 1/2 |y - r_N|^2 over {settings['loss_window']:.3g}"
    )
    axes[0, 1].set_title("relative distance to the teacher")
    axes[0, 1].axhline(settings["weight_tol_rel"], color="k", lw=0.8, ls=":")
    axes[1, 0].set_title("weights (teacher dotted)")
    axes[1, 1].set_title("biases (teacher dotted)")
    if has_tau:
        axes[2, 0].set_title("tau_m (teacher dotted)")
        axes[2, 1].set_visible(False)
    for ax in axes.ravel():
        if ax.has_data():
            ax.set_xlabel("t (model units)")
            if ax.get_legend_handles_labels()[0]:  # no teacher: nothing labelled
                ax.legend(fontsize=7)
    if not curves["ode"].get("biases"):
        axes[1, 1].set_visible(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
