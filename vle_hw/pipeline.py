"""The main job: derive -> plan -> netlist -> ngspice and ODE -> compare -> report.

``build_deck`` and ``verify`` are library functions (no printing, no argument
parsing); the CLI wraps them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vle_hw import __version__, transistor
from vle_hw.circuit import CircuitPlan, check_tau_m_fixed, plan_behavioural
from vle_hw.compare import Comparison, compare
from vle_hw.errors import NgspiceRunError, SpecError
from vle_hw.netlist import Deck, write_deck
from vle_hw.network import build_network, network_graph
from vle_hw.outputs import check_writable, npz_bytes, write_atomic
from vle_hw.reference import ReferenceStopped, simulate_reference
from vle_hw.report import verify_figure
from vle_hw.runner import find_ngspice_library, run_files, start_run
from vle_hw.signals import build_inputs, build_targets
from vle_hw.spec import MAX_TABLE_POINTS, Spec, spec_hash
from vle_hw.transistor import plan_transistor

log = logging.getLogger(__name__)


def _plan_opamp(*args) -> CircuitPlan:
    from vle_hw.opamp import plan_opamp

    return plan_opamp(*args)


# Abstraction levels (DESIGN.md section 3): name -> planner with the signature
# of plan_behavioural(spec, network, inputs, targets, header) -> CircuitPlan.
LEVELS: dict[str, Callable[..., CircuitPlan]] = {
    "behavioural": plan_behavioural,
    "opamp": _plan_opamp,
    "transistor": plan_transistor,
}


def build_deck(spec: Spec, spec_text: str, level: str = "behavioural") -> Deck:
    """The ngspice deck at circuit `level` of `spec` (deterministic to the byte).

    Examples
    --------
    >>> from vle_hw.spec import load_spec
    >>> spec, text = load_spec()
    >>> deck = build_deck(spec, text)
    >>> deck.text.splitlines()[0]
    'vle_hw behavioural deck lagline'
    """
    return _deck(
        spec,
        spec_text,
        build_network(spec),
        build_inputs(spec),
        build_targets(spec),
        level,
    )


def _deck(
    spec,
    spec_text,
    network,
    inputs,
    targets,
    level="behavioural",
    transform: Callable[[CircuitPlan], CircuitPlan] | None = None,
) -> Deck:
    """The deck from parts already built (verify builds them once for both sides).

    `transform`, if given, rewrites the plan before it is written (a study's
    mismatch, leakage, quantisation and noise: :func:`vle_hw.perturb.perturb_plan`).
    """
    check_tau_m_fixed(network.eta_tau)
    tables = sum(
        len(sig.source.times)
        for sig in inputs + (targets or [])
        if hasattr(sig.source, "times")
    )
    if tables > MAX_TABLE_POINTS:
        raise SpecError(
            f"input/target: the tables hold {tables} samples in all, above "
            f"{MAX_TABLE_POINTS}; fix: use fewer channels or a larger input.dt."
        )
    header = {"tool_version": __version__, "spec_hash": spec_hash(spec_text)}
    try:
        plan = LEVELS[level](spec, network, inputs, targets, header)
        if transform is not None:
            plan = transform(plan)
        return write_deck(plan)
    except (ZeroDivisionError, OverflowError, FloatingPointError) as exc:
        raise SpecError(_NOT_FINITE.format(exc=exc)) from None
    except ValueError as exc:
        if "non-finite" not in str(exc):
            raise
        raise SpecError(_NOT_FINITE.format(exc=exc)) from None


_NOT_FINITE = (
    "the spec's values give a circuit value that is not a finite number ({exc}); "
    "fix: keep time constants, hardware scales, weights and inputs within "
    "realistic ranges."
)


@dataclass
class VerifyPaths:
    """Every file a verify run writes."""

    out_dir: Path
    deck: Path
    traces: Path
    json: Path
    figure: Path
    ngspice_dir: Path

    @classmethod
    def default(
        cls,
        out_dir: Path,
        name: str,
        json_path: Path | None = None,
        deck_path: Path | None = None,
        trace_format: str = "npz",
    ) -> VerifyPaths:
        return cls(
            out_dir=out_dir,
            deck=deck_path or out_dir / f"{name}.cir",
            traces=out_dir / f"traces.{trace_format}",
            json=json_path or out_dir / "result.json",
            figure=out_dir / "verify.png",
            ngspice_dir=out_dir / "ngspice",
        )

    def files(self) -> list[Path]:
        """The outputs, and every file the ngspice run creates or deletes in
        `ngspice_dir` (so that none of them is an input or a user's file)."""
        return [
            self.deck,
            self.traces,
            self.json,
            self.figure,
            *run_files(self.ngspice_dir),
        ]


@dataclass
class VerifyResult:
    comparison: Comparison
    paths: VerifyPaths
    timings: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.comparison.ok


def verify(
    spec: Spec,
    spec_text: str,
    paths: VerifyPaths,
    force: bool = False,
    on_start: Callable[[], None] | None = None,
    level: str = "behavioural",
) -> VerifyResult:
    """Run the whole verification of `spec` and write every output.

    Parameters
    ----------
    spec : Spec
        Validated spec.
    spec_text : str
        Its source text (hashed into the deck header).
    paths : VerifyPaths
        Output files; none is overwritten unless `force`.
    force : bool
    on_start : callable, optional
        Called once the inputs are valid, just before the simulations start.
    level : str
        A key of :data:`LEVELS`; its tolerances come from
        ``spec.tolerances.for_level(level)``.

    Returns
    -------
    VerifyResult

    Raises
    ------
    OutputExistsError
        If an output exists and `force` is false (checked before any work).
    NgspiceMissingError, NgspiceRunError
        If ngspice is missing or its run fails.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()

    # --- build: network, inputs, deck (bad input fails here, before anything) ------
    network = build_network(spec)
    graph = network_graph(network)
    inputs = build_inputs(spec)
    targets = build_targets(spec)
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {sorted(LEVELS)}.")
    deck = _deck(spec, spec_text, network, inputs, targets, level)
    check_writable(paths.files(), force)
    find_ngspice_library()
    # With --force, the previous run's files go now: a failed run must not
    # leave a new deck beside an old result.
    for stale in paths.files():
        stale.unlink(missing_ok=True)
    write_atomic(paths.deck, deck.text)
    timings["build_sec"] = time.perf_counter() - started

    # --- simulate: ngspice in a worker while the ODE runs here --------------------
    if on_start is not None:
        on_start()
    handle = start_run(deck, paths.deck, paths.ngspice_dir, spec.simulation.timeout_sec)
    t0 = time.perf_counter()
    deadline = t0 + spec.simulation.timeout_sec
    try:
        reference = simulate_reference(
            network,
            inputs,
            spec.simulation.t_stop,
            spec.initial_state,
            targets,
            should_stop=lambda: (
                handle.finished_badly() or time.perf_counter() > deadline
            ),
        )
    except ReferenceStopped:
        if handle.finished_badly():
            handle.result()  # raises the circuit run's own error
        handle.process.kill()
        raise NgspiceRunError(
            "the ODE reference did not finish within simulation.timeout_sec = "
            f"{spec.simulation.timeout_sec:g} s; raise the timeout, shorten "
            "simulation.t_stop, or check for very fast dynamics (large eta, small "
            "tau, high input frequency)."
        ) from None
    except BaseException:
        handle.process.kill()
        raise
    timings["ode_sec"] = time.perf_counter() - t0
    spice = handle.result()
    timings["spice_wall_sec"] = float(spice.meta.get("wall_sec") or 0.0)
    t0 = time.perf_counter()
    ode = reference.trace(spice.t)
    timings["ode_eval_sec"] = time.perf_counter() - t0
    level_warnings = []
    if level == "opamp":  # outputs beyond the op-amp swing
        from vle_hw.opamp import check_outputs

        level_warnings = check_outputs(spec, network, ode)

    # --- compare and report -------------------------------------------------------
    comparison = compare(ode, spice, *spec.tolerances.for_level(level))
    out_layer = network.layers[-1].index
    learning = _learning_summary(network, ode, spice)
    figure = verify_figure(
        ode,
        spice,
        f"r_l{out_layer}_n0",
        f"e_l{out_layer}_n0",
        {name: row["teacher"] for name, row in learning.items() if "teacher" in row},
    )
    write_atomic(paths.figure, figure)
    if paths.traces.suffix == ".csv":
        text = "# ode\n" + ode.csv_text() + "# spice\n" + spice.csv_text()
        write_atomic(paths.traces, text)
    else:
        write_atomic(
            paths.traces,
            npz_bytes({**ode.npz_bytes("ode__"), **spice.npz_bytes("spice__")}),
        )
    timings["total_sec"] = time.perf_counter() - started
    info = {
        "spec": spec.name,
        "spec_hash": spec_hash(spec_text),
        "tool_version": __version__,
        "level": level,
        "neurons": sum(1 for _, kind in graph.nodes(data="kind") if kind == "neuron"),
        "synapses": graph.number_of_edges(),
        "plastic_synapses": sum(1 for *_, p in graph.edges(data="plastic") if p),
        "deck": str(paths.deck),
        "traces": str(paths.traces),
        "figure": str(paths.figure),
        "ngspice_log": spice.meta.get("log"),
        "spice_points": len(spice.t),
        "ode_solver": reference.stats,
        "max_step_sec": deck.max_step_sec,
        "max_step_rule": _header_value(deck.text, "max_step"),
        "timings": timings,
    }
    info["learning"] = learning
    info["level_warnings"] = level_warnings
    if level == "transistor":  # each cell's own error, apart from the network's
        t0 = time.perf_counter()
        info["cells"] = transistor.characterise_network_cells(
            network, spec.hardware.signal_volt_per_unit, paths.ngspice_dir / "cells"
        )
        timings["cells_sec"] = time.perf_counter() - t0
    result = VerifyResult(comparison, paths, timings, info)
    write_atomic(
        paths.json,
        json.dumps({**info, **comparison.to_dict()}, indent=2, sort_keys=True),
    )
    return result


def _learning_summary(network, ode, spice) -> dict[str, dict[str, float]]:
    """Final plastic weights of both traces beside the teacher's, if any."""
    summary = {}
    teacher = {layer.index: layer for layer in network.teacher or ()}
    for name in ode.signals:
        if not name.startswith("w_"):
            continue
        layer, i, j = (int(part[1:]) for part in name.split("_")[1:])
        row = {
            "initial": float(ode.signals[name][0]),
            "ode_final": float(ode.signals[name][-1]),
            "spice_final": float(spice.signals[name][-1]),
        }
        if layer in teacher:
            row["teacher"] = float(teacher[layer].weights[i, j])
        summary[name] = row
    return summary


def _header_value(text: str, key: str) -> str | None:
    for line in text.splitlines()[1:40]:
        if line.startswith(f"* {key}: "):
            return line.split(": ", 1)[1]
    return None
