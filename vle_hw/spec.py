"""Network specs: the schema, loading from YAML or TOML, and validation.

A spec is parsed by a real YAML (PyYAML, safe loader) or TOML (tomllib) parser
and validated by pydantic models with unknown fields forbidden, strict types
(no string is silently read as a number) and no NaN or infinity. Every problem
is reported as one :class:`~vle_hw.errors.SpecError` whose lines each name the
field path (``network.layers[0].tau_m``), the value found and the fix; the
clearest line comes first. Names that may reach a netlist must match
``^[a-z][a-z0-9_]*$``; no spec string is ever passed to ``sympify``.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import math
import re
import sys
import tomllib
import types
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vle_hw.derivation import PhiName
from vle_hw.errors import SpecError

IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_]*$"
DEFAULT_SPEC_NAME = "lagline.yaml"
MAX_NEURONS_PER_LAYER = 100_000
MAX_TABLE_POINTS = 2_000_000  # samples in one piecewise-linear source
# LIMITATION(reference): the ODE reference solves the algebraic loop with a dense
#   Newton Jacobian of size (2 n_neurons)^2 at every evaluation, and the deck has
#   per-synapse elements. Consequence: networks are capped at MAX_NEURONS neurons
#   and MAX_SYNAPSES synapses (student + teacher) for verify. Issue #2 note.
MAX_NEURONS = 300
MAX_SYNAPSES = 10_000
MAX_SPEC_BYTES = 2_000_000
# A smoothed square's period over its edge width. The closed form's error grows
# with this ratio (double-precision phase): about 1e-7 of the swing at 1e6,
# 8e-7 at 1e8, 7e-5 at 1e10 (signals.smoothed_square's max_error); at 1e300 the
# erf arguments overflow and ngspice does not converge.
MAX_PERIOD_PER_SIGMA = 1e8
EXAMPLE_HINT = "see vle_hw/examples/lagline.yaml"

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
# Model-unit ranges. Every time and every value of a spec becomes a double in
# the ODE reference and a number in the deck. The ranges are wide (the examples
# use times of 0.05 to 400 and values near 1) and keep both finite: a time of
# 5e-324 divides by zero, and a time of 1e300 or a weight of 1e15 overflows the
# reference or stalls ngspice. A phase beyond PHASE_MAX loses the precision of
# sin(omega t + phase); reduce it modulo 2 pi.
TIME_MIN, TIME_MAX = 1e-9, 1e9
OMEGA_MIN, OMEGA_MAX = 1e-9, 1e9  # rad per unit: 1 / TIME_MAX to 1 / TIME_MIN
VALUE_MAX = 1e6
PHASE_MAX = 1e3
T_STOP_MIN_SEC = 1e-15  # ngspice stops at t = 0 on a run of 1e-20 s
Time = Annotated[float, Field(ge=TIME_MIN, le=TIME_MAX)]
Value = Annotated[float, Field(ge=-VALUE_MAX, le=VALUE_MAX)]
Gain = Annotated[float, Field(ge=0, le=VALUE_MAX)]
Matrix = list[list[Value]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class RandomInit(_Model):
    """Seeded random values: normal(mean, std / sqrt(fan_in)) for weights."""

    init: Literal["random"] = Field(description="the word random")
    std: Gain = 1.0
    mean: Value = 0.0
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None


_TAU_M = (
    "membrane time constant in model time units (1e-9 to 1e9): one number, or "
    "one per neuron"
)
_TAU_R = (
    "rate time constant in model time units (1e-9 to 1e9): one number, or one "
    "per neuron"
)
_WEIGHTS = (
    "one matrix per layer, rows = post-synaptic neurons, columns = the layer "
    "below, e.g. [[[0.5]], [[0.5]]]; or {init: random, std: 1.0}"
)
_BIASES = "'none', 'zero', one vector per layer, or {init: random, std: 1.0}"


class LayerSpec(_Model):
    name: Identifier | None = Field(
        None, description="optional layer name, a plain lower-case identifier"
    )
    size: Annotated[int, Field(ge=1, le=MAX_NEURONS_PER_LAYER)] = Field(
        description=f"number of neurons in the layer, 1 to {MAX_NEURONS_PER_LAYER}"
    )
    phi: PhiName = Field(description="activation function of the layer")
    tau_m: Time | list[Time] = Field(description=_TAU_M)
    tau_r: Time | list[Time] = Field(description=_TAU_R)
    gamma: Gain | None = Field(
        None,
        description="error gain of this layer (m = gamma e), >= 0; "
        "default: network.gamma",
    )
    plastic: bool = Field(True, description="whether the layer's weights learn")


class TeacherLayerSpec(_Model):
    phi: PhiName | None = Field(None, description="teacher activation override")
    tau_m: Time | list[Time] | None = Field(None, description=_TAU_M)
    tau_r: Time | list[Time] | None = Field(None, description=_TAU_R)


class NetworkSpec(_Model):
    inputs: Annotated[int, Field(ge=1, le=MAX_NEURONS_PER_LAYER)] = Field(
        description="number of input channels"
    )
    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=64)] = Field(
        description="list of layers, input side first, e.g. "
        "[{size: 1, phi: softplus, tau_m: 1.0, tau_r: 0.1}]"
    )
    gamma: Gain = Field(
        0.0, description="error gain in the neuron dynamics (m = gamma e), >= 0"
    )
    beta: Gain = Field(description="nudging strength at the output, >= 0")
    eta: Gain = Field(
        description="learning rate in 1 / model time unit, >= 0 (0 freezes weights)"
    )
    eta_tau: Gain = Field(
        0.0,
        description="learning rate of tau_m in the plastic layers, "
        "d tau_m/dt = -eta_tau e du/dt, >= 0 (0: tau_m fixed; ODE reference only)",
    )
    cost: Literal["mse"] = "mse"
    weights: list[Matrix] | RandomInit = Field(description=_WEIGHTS)
    biases: Literal["none", "zero"] | list[list[Value]] | RandomInit = Field(
        "none", description=_BIASES
    )


class TeacherSpec(_Model):
    layers: list[TeacherLayerSpec] | None = Field(
        None, description="one (possibly empty) override mapping per network layer"
    )
    weights: list[Matrix] | RandomInit = Field(description=_WEIGHTS)
    biases: Literal["none", "zero"] | list[list[Value]] | RandomInit | None = Field(
        None, description=_BIASES
    )


class SmoothedSquare(_Model):
    """Square wave between `low` and `high`, convolved with a Gaussian."""

    kind: Literal["smoothed_square"]
    period: Time = 4.0
    duty: Annotated[float, Field(gt=0, lt=1)] = 0.5
    low: Value = -1.0
    high: Value = 1.0
    sigma: Time = Field(
        0.05,
        validate_default=True,
        description="width of the Gaussian edges in model time units",
    )
    delay: Annotated[float, Field(ge=0, le=TIME_MAX)] = 0.0

    @field_validator("delay")
    @classmethod
    def _delay_within_a_period(cls, delay: float, info: ValidationInfo) -> float:
        period = info.data.get("period")
        if period is not None and delay >= period:
            raise ValueError(
                f"must be smaller than the period {period:g}, got {delay!r}: the "
                "wave repeats, so whole periods of delay change nothing and cost "
                f"precision; fix: use delay: {math.fmod(delay, period):.6g} (the "
                "delay modulo the period)"
            )
        return delay

    @field_validator("sigma")
    @classmethod
    def _edges_fit_in_the_period(cls, sigma: float, info: ValidationInfo) -> float:
        # The circuit's closed form sums the neighbouring edges only (signals.py).
        period, duty = info.data.get("period"), info.data.get("duty")
        if period is None or duty is None:
            return sigma
        limit = 0.125 * period * min(duty, 1.0 - duty)
        if period > MAX_PERIOD_PER_SIGMA * sigma:
            raise ValueError(
                f"must be at least period / {MAX_PERIOD_PER_SIGMA:g} = "
                f"{period / MAX_PERIOD_PER_SIGMA:.4g} for period = {period:g}, got "
                f"{sigma!r}: beyond that the closed-form edges lose precision (and "
                "overflow by 1e300); fix: use a period of at most "
                f"{MAX_PERIOD_PER_SIGMA * sigma:.4g} (a period of twice "
                "simulation.t_stop already gives a single step)"
            )
        if sigma > limit:
            raise ValueError(
                f"must be <= {limit:.4g} (period / 8 x the shorter of duty and "
                f"1 - duty, for period = {period:g}, duty = {duty:g}), got "
                f"{sigma!r}; fix: use a smaller sigma or a longer period"
            )
        return sigma


class Sines(_Model):
    """Sum of a_k sin(omega_k t + phase_k) + offset (omega in rad per unit)."""

    kind: Literal["sines"]
    amplitudes: Annotated[list[Value], Field(min_length=1, max_length=64)]
    omegas: Annotated[
        list[Annotated[float, Field(ge=OMEGA_MIN, le=OMEGA_MAX)]],
        Field(min_length=1, max_length=64),
    ]
    phases: list[Annotated[float, Field(ge=-PHASE_MAX, le=PHASE_MAX)]] | None = None
    offset: Value = 0.0

    @field_validator("omegas", "phases")
    @classmethod
    def _one_per_amplitude(
        cls, values: list[float] | None, info: ValidationInfo
    ) -> list[float] | None:
        amplitudes = info.data.get("amplitudes")
        if values is not None and amplitudes is not None:
            if len(values) != len(amplitudes):
                raise ValueError(
                    f"must have one value per amplitude ({len(amplitudes)}), got "
                    f"{len(values)} values {values!r}; fix: make amplitudes, "
                    "omegas and phases the same length"
                )
        return values


class OrnsteinUhlenbeck(_Model):
    """OU process sampled every `dt` (linear in between), seeded."""

    kind: Literal["ou"]
    tau: Time = 1.0
    std: Gain = 1.0
    mean: Value = 0.0
    dt: Time = 0.01
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None


class CsvSamples(_Model):
    """Samples from a CSV file: a time column `t` then one column per channel."""

    kind: Literal["csv"]
    path: Annotated[str, Field(min_length=1, max_length=4096)] = Field(
        description="CSV file, relative to the spec file's folder"
    )


InputSpec = Annotated[
    SmoothedSquare | Sines | OrnsteinUhlenbeck | CsvSamples,
    Field(discriminator="kind"),
]


class TargetTeacher(_Model):
    kind: Literal["teacher"]


TargetSpec = Annotated[TargetTeacher | CsvSamples, Field(discriminator="kind")]


class SimulationSpec(_Model):
    t_stop: Time = Field(description="simulated time in model time units, > 0")
    max_step: Time | None = None
    steps_per_tau: Annotated[float, Field(ge=2, le=10_000)] = 60.0
    steps_per_feature: Annotated[float, Field(ge=2, le=10_000)] = 20.0
    reltol: Annotated[float, Field(ge=1e-12, le=1e-2)] = 1e-6
    timeout_sec: Annotated[float, Field(gt=0, le=86_400)] = 600.0


class HardwareSpec(_Model):
    # Bounds keep every circuit value a finite double: physical ranges, wide.
    time_sec_per_unit: Annotated[float, Field(ge=1e-15, le=1e3)] = 1e-5
    signal_volt_per_unit: Annotated[float, Field(ge=1e-9, le=1e3)] = 0.1
    error_volt_per_unit: Annotated[float, Field(ge=1e-9, le=1e3)] = 10.0
    weight_volt_per_unit: Annotated[float, Field(ge=1e-9, le=1e3)] = 1.0
    c_mem_farad: Annotated[float, Field(ge=1e-18, le=1.0)] = 1e-9
    c_weight_farad: Annotated[float, Field(ge=1e-18, le=1.0)] = 1e-9
    r_sum_ohm: Annotated[float, Field(ge=1e-3, le=1e12)] = 1e3


class LevelToleranceSpec(_Model):
    nrmse: Annotated[float, Field(gt=0, le=1)]
    weight_rel: Annotated[float, Field(gt=0, le=1)]


class ToleranceSpec(_Model):
    """Behavioural-level tolerances; other levels have their own sub-section."""

    nrmse: Annotated[float, Field(gt=0, le=1)] = 1e-4
    weight_rel: Annotated[float, Field(gt=0, le=1)] = 1e-3
    # The op-amp level is judged by the 1e-2 (DESIGN.md section 3).
    opamp: LevelToleranceSpec = LevelToleranceSpec(nrmse=1e-2, weight_rel=5e-2)
    # The transistor level has no threshold in the issue; 5e-2 is a loose band
    # that the weak-inversion cells meet on LagLine (README, measured).
    transistor: LevelToleranceSpec = LevelToleranceSpec(nrmse=5e-2, weight_rel=5e-2)

    def for_level(self, level: str) -> tuple[float, float]:
        """(nrmse, weight_rel) of `level`; the top-level pair is the behavioural."""
        sub = getattr(self, level, None) if level != "behavioural" else None
        if isinstance(sub, LevelToleranceSpec):
            return sub.nrmse, sub.weight_rel
        return self.nrmse, self.weight_rel


SeriesName = Literal["E96", "E24", "exact"]


class ComponentsSpec(_Model):
    """Series and realisable ranges of the passive parts (``vle-hw spec``)."""

    series: SeriesName = "E96"
    r_min_ohm: Annotated[float, Field(gt=0, le=1e12)] = 1e3
    r_max_ohm: Annotated[float, Field(gt=0, le=1e12)] = 1e7
    c_min_farad: Annotated[float, Field(gt=0, le=1.0)] = 1e-12
    c_max_farad: Annotated[float, Field(gt=0, le=1.0)] = 1e-6
    r_base_ohm: Annotated[float, Field(ge=1e-3, le=1e12)] = 1e4
    tracking_error_rel: Annotated[float, Field(ge=1e-9, lt=1)] = 1e-2

    @model_validator(mode="after")
    def _ranges(self) -> ComponentsSpec:
        for lo, hi, what in (
            (self.r_min_ohm, self.r_max_ohm, "r"),
            (self.c_min_farad, self.c_max_farad, "c"),
        ):
            if lo >= hi:
                unit = "ohm" if what == "r" else "farad"
                raise ValueError(
                    f"{what}_min_{unit} = {lo:g} must be below {what}_max_{unit} = "
                    f"{hi:g}; fix: swap or widen them"
                )
        return self


class OpAmpSpec(_Model):
    """Op-amp macromodel parameters (``circuits/opamp.lib``)."""

    a0_db: Annotated[float, Field(ge=0, le=200)] = 100.0
    gbw_hz: Annotated[float, Field(gt=0, le=1e12)] = 100e6
    slew_volt_per_sec: Annotated[float, Field(gt=0, le=1e12)] = 100e6
    swing_volt: Annotated[float, Field(gt=0, le=1e3)] = 2.5
    offset_volt: Annotated[float, Field(ge=-1, le=1)] = 0.0
    r_out_ohm: Annotated[float, Field(ge=0, le=1e9)] = 50.0


class ProcessSpec(_Model):
    """First-order process constants for area, power and noise (see components)."""

    c_density_farad_per_m2: Annotated[float, Field(ge=1e-9, le=1)] = 2e-3
    r_sheet_ohm_per_sq: Annotated[float, Field(ge=1e-3, le=1e9)] = 2000.0
    r_square_area_m2: Annotated[float, Field(gt=0, le=1e-3)] = 1e-12
    opamp_area_m2: Annotated[float, Field(gt=0, le=1e-2)] = 5e-9
    supply_volt: Annotated[float, Field(gt=0, le=1e3)] = 5.0
    gm_over_id_per_volt: Annotated[float, Field(ge=1, le=40)] = 10.0
    c_comp_farad: Annotated[float, Field(gt=0, le=1e-6)] = 1e-12
    temperature_kelvin: Annotated[float, Field(gt=0, le=1000)] = 300.0


class Spec(_Model):
    """A validated network spec; see ``vle_hw/examples/lagline.yaml``."""

    name: Identifier = Field(
        description="network name, used in netlist and file names, e.g. lagline"
    )
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = Field(
        0, description="random seed, a whole number >= 0"
    )
    network: NetworkSpec
    teacher: TeacherSpec | None = None
    input: InputSpec | list[InputSpec] = Field(
        description="a mapping with a kind (smoothed_square, sines, ou or csv), "
        "or a list with one per input channel"
    )
    target: TargetSpec = Field(description="{kind: teacher} or {kind: csv, path: ...}")
    initial_state: Literal["zero", "steady"] = "zero"
    simulation: SimulationSpec
    hardware: HardwareSpec = HardwareSpec()
    tolerances: ToleranceSpec = ToleranceSpec()
    components: ComponentsSpec = ComponentsSpec()
    opamp: OpAmpSpec = OpAmpSpec()
    process: ProcessSpec = ProcessSpec()

    @field_validator("input", mode="before")
    @classmethod
    def _input_is_mapping_or_list(cls, value: Any) -> Any:
        if not isinstance(value, dict | list):
            raise ValueError(
                f"must be a mapping with a 'kind' or a list of them, got "
                f"{_show(value)}; fix: write e.g. {{kind: smoothed_square}} "
                "(kinds: smoothed_square, sines, ou, csv)"
            )
        return value

    @model_validator(mode="after")
    def _check_shapes(self) -> Spec:
        _check_network(self)
        return self


# --- cross-field checks -------------------------------------------------------


def _per_neuron(value: float | list[float], size: int, where: str) -> None:
    if isinstance(value, list) and len(value) != size:
        raise ValueError(
            f"{where} has {len(value)} values {_show(value)} for a layer of size "
            f"{size}; fix: give one number for the whole layer, or exactly {size} "
            "(one per neuron)"
        )


def _check_matrices(weights: Any, sizes: list[int], where: str) -> None:
    if isinstance(weights, RandomInit):
        return
    if len(weights) != len(sizes) - 1:
        raise ValueError(
            f"{where} has {len(weights)} matrices for {len(sizes) - 1} layers; "
            f"fix: give one matrix per layer (rows = post-synaptic neurons), "
            f"shapes {_shapes_text(sizes)}"
        )
    for index, matrix in enumerate(weights):
        rows, cols = sizes[index + 1], sizes[index]
        if len(matrix) != rows or any(len(row) != cols for row in matrix):
            below = "network.inputs" if index == 0 else f"layer {index} size"
            raise ValueError(
                f"{where}[{index}] must be {rows} x {cols} (layer {index + 1} size "
                f"x {below}), got {len(matrix)} rows of lengths "
                f"{[len(r) for r in matrix]}: {_show(matrix)}; fix: give "
                f"{rows} rows of {cols} numbers each"
            )


def _shapes_text(sizes: list[int]) -> str:
    return ", ".join(f"{sizes[i + 1]} x {sizes[i]}" for i in range(len(sizes) - 1))


def _check_biases(biases: Any, sizes: list[int], where: str) -> None:
    if biases is None or isinstance(biases, str | RandomInit):
        return
    if len(biases) != len(sizes) - 1:
        raise ValueError(
            f"{where} has {len(biases)} vectors for {len(sizes) - 1} layers; "
            "fix: give one vector per layer, or 'none' or 'zero'"
        )
    for index, vector in enumerate(biases):
        if len(vector) != sizes[index + 1]:
            raise ValueError(
                f"{where}[{index}] must have {sizes[index + 1]} values (layer "
                f"{index + 1} size), got {len(vector)}: {_show(vector)}; fix: give "
                "one bias per neuron"
            )


def _check_network(spec: Spec) -> None:
    net = spec.network
    sizes = [net.inputs] + [layer.size for layer in net.layers]
    for index, layer in enumerate(net.layers):
        _per_neuron(layer.tau_m, layer.size, f"network.layers[{index}].tau_m")
        _per_neuron(layer.tau_r, layer.size, f"network.layers[{index}].tau_r")
    copies = 2 if spec.teacher is not None else 1  # a teacher has the same layers
    neurons = copies * sum(sizes[1:])
    synapses = copies * sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    if neurons > MAX_NEURONS or synapses > MAX_SYNAPSES:
        who = "student and teacher" if copies == 2 else "student"
        raise ValueError(
            f"network.layers: {neurons} neurons and {synapses} synapses ({who}; "
            f"each layer's size: {sizes[1:]}, after network.inputs = {net.inputs}), "
            f"above the limit of {MAX_NEURONS} neurons and {MAX_SYNAPSES} synapses "
            "that the ODE reference and an ngspice deck can handle; fix: "
            "use smaller layers"
        )
    _check_matrices(net.weights, sizes, "network.weights")
    _check_biases(net.biases, sizes, "network.biases")
    names = [layer.name for layer in net.layers if layer.name is not None]
    if len(names) != len(set(names)):
        raise ValueError(
            f"network.layers: layer names must be unique, got {names}; fix: rename "
            "the repeated ones"
        )

    if spec.teacher is not None:
        teacher = spec.teacher
        if teacher.layers is not None and len(teacher.layers) != len(net.layers):
            raise ValueError(
                f"teacher.layers has {len(teacher.layers)} entries for "
                f"{len(net.layers)} network layers; fix: give one (possibly empty, "
                "{}) override per layer"
            )
        for index, layer in enumerate(teacher.layers or []):
            size = net.layers[index].size
            if layer.tau_m is not None:
                _per_neuron(layer.tau_m, size, f"teacher.layers[{index}].tau_m")
            if layer.tau_r is not None:
                _per_neuron(layer.tau_r, size, f"teacher.layers[{index}].tau_r")
        _check_matrices(teacher.weights, sizes, "teacher.weights")
        _check_biases(teacher.biases, sizes, "teacher.biases")
    if isinstance(spec.target, TargetTeacher) and spec.teacher is None:
        raise ValueError(
            "target.kind is 'teacher' but the spec has no 'teacher' section; "
            "fix: add a teacher (weights at least) or use target.kind: csv"
        )

    _check_inputs(spec)
    sim = spec.simulation
    seconds = sim.t_stop * spec.hardware.time_sec_per_unit
    if seconds < T_STOP_MIN_SEC:
        raise ValueError(
            f"simulation.t_stop = {sim.t_stop!r} model units is {seconds:.3g} s at "
            f"hardware.time_sec_per_unit = {spec.hardware.time_sec_per_unit!r}, "
            f"shorter than the {T_STOP_MIN_SEC:g} s ngspice can simulate; fix: "
            "raise simulation.t_stop or hardware.time_sec_per_unit"
        )
    if sim.max_step is not None and sim.max_step >= sim.t_stop:
        raise ValueError(
            f"simulation.max_step = {sim.max_step!r} must be smaller than "
            f"simulation.t_stop = {sim.t_stop!r}; fix: lower max_step or leave it out"
        )


def _check_inputs(spec: Spec) -> None:
    channels = spec.network.inputs
    inputs = spec.input if isinstance(spec.input, list) else [spec.input]
    csv_inputs = [item for item in inputs if isinstance(item, CsvSamples)]
    if isinstance(spec.input, list):
        if len(spec.input) != channels:
            raise ValueError(
                f"input lists {len(spec.input)} generators for network.inputs = "
                f"{channels}; fix: give one generator per input channel"
            )
        if csv_inputs:
            raise ValueError(
                "input: a csv source holds every channel; fix: give it alone "
                "(input: {kind: csv, path: ...}), not in a list"
            )
    elif channels > 1 and not csv_inputs:
        raise ValueError(
            f"input is one generator but network.inputs = {channels}; fix: give "
            "a list with one generator per channel, or a csv file"
        )

    t_stop = spec.simulation.t_stop
    for index, item in enumerate(inputs):
        where = f"input[{index}]" if isinstance(spec.input, list) else "input"
        if isinstance(item, OrnsteinUhlenbeck):
            samples = math.ceil(t_stop / item.dt) + 1
            if samples > MAX_TABLE_POINTS:
                raise ValueError(
                    f"{where}.dt = {item.dt!r} gives {samples} samples for "
                    f"simulation.t_stop = {t_stop!r}; fix: raise dt to at least "
                    f"{_round_up(t_stop / (MAX_TABLE_POINTS - 1))} (at most "
                    f"{MAX_TABLE_POINTS} samples)"
                )


def _round_up(value: float, digits: int = 3) -> str:
    """`value` rounded up to `digits` significant digits, so a hint is sufficient.

    >>> _round_up(0.0200001)
    '0.0201'
    """
    exponent = math.floor(math.log10(value)) - digits + 1
    step = 10.0**exponent
    return f"{math.ceil(value / step - 1e-9) * step:.{digits}g}"


# --- error formatting -----------------------------------------------------------
#
# pydantic reports one error per member of a union (`tau_m: float | list`), and
# names the member in the error's location ("list[constrained-float]"). The
# formatter walks each location through the schema to recover the path the user
# wrote, keeps only the union member that matches the shape of the value found
# (a list for a list, a mapping for a mapping), and words each error as: field,
# requirement, value, fix, and what the field is.

_MAX_LINES = 8
_NUMBER_MEMBERS = {"float", "int", "bool", "constrained-float", "constrained-int"}
_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


@dataclass
class _Problem:
    """One pydantic error, located in the spec the user wrote."""

    kind: str  # pydantic error type, or "wrong_form": the value fits no union member
    path: tuple[str | int, ...]  # user path, union members and kind tags removed
    value: Any
    ctx: dict[str, Any]
    message: str
    union: tuple[int, str] | None = None  # (length of path at the union, member)
    owner: tuple[type[BaseModel], str] | None = None  # model and field named last
    models: tuple[type[BaseModel], ...] = ()  # models holding the last part
    forms: tuple[str, ...] = ()  # for "wrong_form": the shapes that are accepted


def _flatten(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _flatten(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [leaf for arg in get_args(annotation) for leaf in _flatten(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _kinds(model: type[BaseModel]) -> tuple[str, ...]:
    field = model.model_fields.get("kind")
    return get_args(field.annotation) if field is not None else ()


class _Where(NamedTuple):
    path: tuple[str | int, ...]
    union: tuple[int, str] | None
    owner: tuple[type[BaseModel], str] | None
    models: list[type[BaseModel]]


def _locate(loc: tuple[Any, ...], kind: str) -> _Where:
    """Walk a pydantic location through the schema (see the block comment)."""
    path: list[str | int] = []
    union = owner = None
    candidates: list[Any] = [Spec]
    models: list[type[BaseModel]] = [Spec]
    for position, part in enumerate(loc):
        flat = [leaf for c in candidates for leaf in _flatten(c)]
        models = [leaf for leaf in flat if _is_model(leaf)]
        holders = [
            m for m in models if isinstance(part, str) and part in m.model_fields
        ]
        if isinstance(part, int):
            candidates = [get_args(t)[0] for t in flat if get_origin(t) is list]
            path.append(part)
        elif holders:
            owner = (holders[0], part)
            candidates = [m.model_fields[part].annotation for m in holders]
            path.append(part)
        elif tagged := [m for m in models if part in _kinds(m)]:
            candidates = tagged  # a discriminator value: no choice left to report
        elif position == len(loc) - 1 and kind == "extra_forbidden":
            path.append(part)  # the unknown key itself
            break
        else:
            candidates = flat
            if union is None:
                union = (len(path), part)
    flat = [leaf for c in candidates for leaf in _flatten(c)]
    if kind != "extra_forbidden":
        models = [leaf for leaf in flat if _is_model(leaf)]
    return _Where(tuple(path), union, owner, models)


def _value_at(data: Any, path: tuple[str | int, ...]) -> tuple[bool, Any]:
    for part in path:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False, None
    return True, data


def _shape(value: Any) -> str:
    if isinstance(value, bool | int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "other"


def _member_shape(member: str) -> str:
    if member.startswith(("list[", "tuple[")):
        return "list"
    if member.startswith("literal["):
        return "str"
    if member in _NUMBER_MEMBERS:
        return "number"
    if member in {"str", "constrained-str"}:
        return "str"
    return "mapping"


def _member_form(member: str) -> str:
    shape = _member_shape(member)
    if member.startswith("literal["):
        return " or ".join(re.findall(r"'[^']*'", member))
    if member == "RandomInit":
        return "a mapping {init: random, std: ...}"
    if member.startswith("tagged-union["):
        return "a mapping with a kind"
    return {"list": "a list", "number": "a number", "str": "a string"}.get(
        shape, "a mapping"
    )


def _problems(exc: ValidationError, data: Any) -> list[_Problem]:
    """The errors the user should see, one union member per union."""
    located = []
    for err in exc.errors(include_url=False):
        where = _locate(tuple(err["loc"]), err["type"])
        located.append(
            _Problem(
                kind=err["type"],
                path=where.path,
                value=err.get("input"),
                ctx=dict(err.get("ctx") or {}),
                message=err["msg"],
                union=where.union,
                owner=where.owner,
                models=tuple(where.models),
            )
        )

    # Group the alternatives of each union, keeping the order of first mention.
    order: list[_Problem | tuple[str | int, ...]] = []
    groups: dict[tuple[str | int, ...], dict[str, list[_Problem]]] = {}
    for problem in located:
        if problem.union is None:
            order.append(problem)
            continue
        at = problem.path[: problem.union[0]]
        if at not in groups:
            groups[at] = {}
            order.append(at)
        groups[at].setdefault(problem.union[1], []).append(problem)

    chosen: list[_Problem] = []
    for entry in order:
        if isinstance(entry, _Problem):
            chosen.append(entry)
        else:
            chosen += _pick_member(entry, groups[entry], data)
    return chosen


def _pick_member(
    at: tuple[str | int, ...], members: dict[str, list[_Problem]], data: Any
) -> list[_Problem]:
    found, value = _value_at(data, at)
    shape = _shape(value)
    for member, problems in members.items():
        if found and _member_shape(member) == shape:
            return problems
    where = _locate(at, "wrong_form")  # a user path names no union member
    return [
        _Problem(
            kind="wrong_form",
            path=at,
            value=value,
            ctx={},
            message="",
            owner=where.owner,
            forms=tuple(_member_form(member) for member in members),
        )
    ]


def _path_text(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + printable(part)
    return text or "the spec"


def printable(text: str) -> str:
    """`text` with control and other non-printable characters escaped as Python
    does (a key with a newline must not start a new line of an error message).

    >>> printable("a\\nb")
    'a\\\\nb'
    """
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _closest(word: Any, choices: list[str]) -> str:
    matches = difflib.get_close_matches(str(word), choices, n=2, cutoff=0.6)
    if not matches:
        return ""
    return f"did you mean {' or '.join(repr(m) for m in matches)}? "


def _number_text(value: Any) -> str | None:
    """`value` as a number if it is text holding one ('1.0' -> '1.0')."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return None
        return value.strip()
    return None


def _identifier_like(value: Any) -> str:
    text = re.sub(r"[^a-z0-9_]+", "_", str(value).lower()).strip("_")
    if text and not text[0].isalpha():
        text = "n" + text
    if len(text) < 2 or not re.fullmatch(IDENTIFIER_PATTERN, text):
        return "my_net"
    return text


def _requirement_and_fix(problem: _Problem) -> tuple[str, str]:
    kind, ctx, value = problem.kind, problem.ctx, problem.value
    if kind in _BOUNDS:
        sign, key = _BOUNDS[kind]
        return f"must be {sign} {ctx[key]:g}", f"use a number {sign} {ctx[key]:g}"
    if kind == "finite_number":
        return "must be a finite number", "replace it with a finite number"
    if kind in {"float_type", "int_type", "bool_type", "string_type"}:
        return _type_requirement(kind, value)
    if kind == "wrong_form":
        forms = " or ".join([", ".join(problem.forms[:-1]), problem.forms[-1]])
        forms = forms.removeprefix(" or ")
        number = _number_text(value)
        if number is not None:
            return f"must be {forms}", f"remove the quotes: write {number}"
        return f"must be {forms}", "write one of these forms"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        choices = re.findall(r"'([^']*)'", expected)
        return f"must be {expected}", f"{_closest(value, choices)}use one of these"
    if kind == "string_pattern_mismatch":
        return (
            "must be a plain lower-case identifier (pattern ^[a-z][a-z0-9_]*$)",
            "start with a lower-case letter and use only a-z, 0-9 and _, e.g. "
            f"{_identifier_like(value)!r}",
        )
    if kind in {"list_type", "too_short", "too_long"}:
        return _length_requirement(kind, ctx)
    if kind in {"model_type", "dict_type", "model_attributes_type"}:
        return "must be a mapping of fields (key: value)", "write a mapping"
    if kind == "string_too_long":
        return (
            f"must have at most {ctx['max_length']} characters",
            f"shorten it to {ctx['max_length']} characters or fewer",
        )
    if kind == "string_too_short":
        return "must not be empty", "write a non-empty string"
    return problem.message[:1].lower() + problem.message[1:], EXAMPLE_HINT


def _type_requirement(kind: str, value: Any) -> tuple[str, str]:
    number = _number_text(value)
    if kind == "float_type":
        if number is not None:
            return "must be a number, not text", f"remove the quotes: write {number}"
        return "must be a number", "write a plain number such as 1.0"
    if kind == "int_type":
        if isinstance(value, float) and value.is_integer():
            return "must be a whole number", f"write {int(value)}"
        if number is not None:
            return (
                "must be a whole number, not text",
                f"remove the quotes: write {number}",
            )
        return "must be a whole number", "write a whole number such as 1"
    if kind == "bool_type":
        return "must be true or false", "write true or false (no quotes)"
    return "must be a string", "write text, in quotes if it could be read as a number"


def _length_requirement(kind: str, ctx: dict[str, Any]) -> tuple[str, str]:
    if kind == "list_type":
        return "must be a list", "write a list in [ ]"
    if kind == "too_short":
        return (
            f"must have at least {ctx['min_length']} entries",
            f"add entries (it has {ctx['actual_length']})",
        )
    return (
        f"must have at most {ctx['max_length']} entries",
        f"remove entries (it has {ctx['actual_length']})",
    )


def _describe(problem: _Problem, source: str) -> str:
    """One line: field, requirement, value found, fix, what the field is."""
    field = _path_text(problem.path)
    about = ""
    if problem.owner is not None:
        model, name = problem.owner
        description = model.model_fields[name].description
        if description:
            about = f" ({name}: {description})"
    kind = problem.kind

    if kind == "missing":
        return (
            f"{source}: {field} is missing; fix: add it{about or ', ' + EXAMPLE_HINT}."
        )
    if kind == "extra_forbidden":
        allowed = sorted({f for m in problem.models for f in m.model_fields})
        name = problem.path[-1] if problem.path else ""
        return (
            f"{source}: {field} is not a known field (value {_show(problem.value)}); "
            f"fix: {_closest(name, allowed)}remove it or correct its spelling; "
            f"fields allowed here: {', '.join(allowed)}."
        )
    if kind == "invalid_key":
        parent = _path_text(problem.path[:-1])
        return (
            f"{source}: {parent} has the key {_show(problem.value)}, which is not "
            f"text; fix: use field names as in vle_hw/examples/lagline.yaml."
        )
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        kinds = sorted({k for m in problem.models for k in _kinds(m)})
        listed = ", ".join(kinds)
        if kind == "union_tag_not_found":
            return f"{source}: {field}.kind is missing; fix: add kind: one of {listed}."
        tag = problem.ctx.get("tag")
        return (
            f"{source}: {field}.kind must be one of {listed}, got {tag!r}; "
            f"fix: {_closest(tag, kinds)}use one of these."
        )
    if kind == "value_error":
        message = problem.message.removeprefix("Value error, ").rstrip(".")
        if not problem.path:  # a cross-field check: the message names its fields
            return f"{source}: {message}."
        return f"{source}: {field} {message}."
    requirement, fix = _requirement_and_fix(problem)
    return (
        f"{source}: {field} {requirement}, got {_show(problem.value)}; "
        f"fix: {fix}{about}."
    )


def _format_validation_error(exc: ValidationError, source: str, data: Any) -> str:
    lines: list[str] = []
    for problem in _problems(exc, data):
        line = _describe(problem, source)
        if line not in lines:
            lines.append(line)
    if len(lines) > _MAX_LINES:
        more = len(lines) - _MAX_LINES
        lines = lines[:_MAX_LINES] + [f"{source}: ... and {more} more problem(s)."]
    return "\n".join(lines)


# --- loading --------------------------------------------------------------------


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, without two YAML 1.1 surprises.

    ``1e-3`` is read as a number (YAML 1.1 reads it as text), ``010`` is not
    octal, aliases and merge keys are refused, and a repeated key is an error
    rather than a silent overwrite.
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            _no_aliases(self, None)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # A merge key would let one mapping set a key twice unseen.
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    "merge keys (<<) are not allowed in a spec; write values out",
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:
                continue  # an unhashable key; the base class reports it
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} twice",
                    key_node.start_mark,
                )
        try:
            return super().construct_mapping(node, deep=deep)
        except yaml.constructor.ConstructorError as exc:
            _name_the_key(exc, node)
            raise


def _name_the_key(exc: yaml.constructor.ConstructorError, node: yaml.MappingNode):
    """Say which key's value a bad scalar is (the innermost mapping names it)."""
    mark = exc.problem_mark
    if exc.context is not None or mark is None:
        return
    for key_node, value_node in node.value:
        if (
            value_node.start_mark.index
            <= mark.index
            < max(value_node.end_mark.index, value_node.start_mark.index + 1)
        ):
            exc.context = f"the value of {key_node.value!r}"
            exc.context_mark = key_node.start_mark
            return


# Numbers as YAML 1.2 reads them: decimal only. YAML 1.1 would read 010 as 8,
# 0x10 as 16 and 1:30 as 90; those stay text here and fail validation.
_SpecLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    try:
        return int(text, 10)
    except ValueError:  # more digits than Python converts (sys.int_info)
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"the whole number {text[:20]}... has {len(text)} digits, too many to read",
            node.start_mark,
        ) from None


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _no_aliases(self, anchor):  # a 1 KB alias bomb expands to gigabytes
    raise yaml.composer.ComposerError(
        None,
        None,
        "aliases (*name) are not allowed in a spec; write values out",
        self.peek_event().start_mark,
    )


_TOP_LEVEL_NAMES = {
    list: "a list (lines starting with '- ')",
    str: "a single text value",
    int: "a single number",
    float: "a single number",
    bool: "a single true/false",
}
_YAML_HINTS = {
    "twice": "keep one of the two",
    "'\\t'": "indent with spaces, not tabs",
    "constructor for the tag": "remove the !! tag; a spec holds plain values only",
    "mapping values are not allowed": "quote text that holds ': ', or fix the "
    "indentation",
    "too many to read": "write a number within the field's range",
}


def _yaml_error_text(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    text = f"{where}{problem}"
    if context:
        text += f" ({context}"
        if context_mark is not None:
            text += f" at line {context_mark.line + 1}"
        text += ")"
    return text


def _parse_text(text: str, source: str, fmt: Literal["yaml", "toml"]) -> Any:
    try:
        if fmt == "toml":
            return tomllib.loads(text)
        return yaml.load(text, Loader=_SpecLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = _yaml_error_text(exc)
        hints = [hint for key, hint in _YAML_HINTS.items() if key in where]
        hint = hints[0] if hints else "correct the syntax there"
        raise SpecError(f"{source}: not valid YAML: {where}; fix: {hint}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(
            f"{source}: not valid TOML: {exc}; fix: correct the syntax there "
            "(text needs quotes, each key appears once)."
        ) from None
    except RecursionError:
        raise SpecError(
            f"{source}: the {fmt.upper()} is nested too deeply to read; fix: use "
            "the structure of vle_hw/examples/lagline.yaml."
        ) from None
    except (ValueError, OverflowError) as exc:
        # PyYAML builds dates and numbers with Python's constructors; tomllib
        # reads integers with int() and does not say where a too-long one is.
        where = ""
        long_number = re.search(f"[0-9_]{{{sys.get_int_max_str_digits()},}}", text)
        if fmt == "toml" and long_number is not None:
            line = text.count("\n", 0, long_number.start()) + 1
            where = f" at line {line}"
        raise SpecError(
            f"{source}: a {fmt.upper()} value{where} cannot be read ({exc}); fix: "
            "correct it, or quote it if it is meant as text."
        ) from None


def default_spec_text() -> str:
    """Text of the embedded default spec (LagLine, DESIGN.md 5.1).

    Examples
    --------
    >>> default_spec_text().splitlines()[4]
    'name: lagline'
    """
    return (
        resources.files("vle_hw.examples")
        .joinpath(DEFAULT_SPEC_NAME)
        .read_text("utf-8")
    )


def parse_spec_text(text: str, source: str, fmt: Literal["yaml", "toml"]) -> Spec:
    """Parse and validate spec text.

    CSV paths are not checked here (the text has no folder); :func:`load_spec`
    checks them.

    Parameters
    ----------
    text : str
        YAML or TOML document.
    source : str
        Where the text came from, used in error messages.
    fmt : {"yaml", "toml"}

    Returns
    -------
    Spec

    Raises
    ------
    SpecError
        If the text does not parse or the spec is invalid. The message has one
        line per problem, each naming the field path, the value and the fix.

    Examples
    --------
    >>> spec = parse_spec_text(default_spec_text(), "default", "yaml")
    >>> spec.name, [layer.tau_m for layer in spec.network.layers]
    ('lagline', [1.0, 2.0])
    >>> parse_spec_text("name: Net", "s.yaml", "yaml")
    Traceback (most recent call last):
    ...
    vle_hw.errors.SpecError: s.yaml: name must be a plain lower-case identifier ...
    """
    return validate_spec_data(_parse_text(text, source, fmt), source)


def validate_spec_data(data: Any, source: str) -> Spec:
    """Validate already-parsed spec data (a study's base spec with its knobs set).

    Raises
    ------
    SpecError
        As :func:`parse_spec_text`, each line naming the field, value and fix.
    """
    if not isinstance(data, dict):
        found = (
            "an empty file"
            if data is None
            else _TOP_LEVEL_NAMES.get(type(data), f"a {type(data).__name__}")
        )
        raise SpecError(
            f"{source}: the spec must be a mapping of fields at the top level "
            f"(name: ..., network: ...), got {found}; fix: write the fields as in "
            "vle_hw/examples/lagline.yaml."
        )
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(exc, source, data)) from None
    except RecursionError:
        raise SpecError(
            f"{source}: a value is nested too deeply; fix: use the structure of "
            "vle_hw/examples/lagline.yaml."
        ) from None
    return spec


def load_spec(path: str | Path | None = None) -> tuple[Spec, str]:
    """Load a spec file (YAML or TOML by extension), or the embedded default.

    Relative CSV paths are resolved against the spec file's folder and must
    exist.

    Parameters
    ----------
    path : str or Path, optional
        A ``.yaml``, ``.yml`` or ``.toml`` file; None loads the default.

    Returns
    -------
    (Spec, str)
        The validated spec and its source text (hashed into netlist headers).

    Raises
    ------
    SpecError
        If the file is missing, unreadable, has an unknown extension or is
        invalid, or a CSV file it names does not exist.

    Examples
    --------
    >>> spec, text = load_spec()
    >>> spec.network.inputs
    1
    """
    if path is None:
        text = default_spec_text()
        return parse_spec_text(text, f"(default {DEFAULT_SPEC_NAME})", "yaml"), text
    path = Path(path) if str(path).strip() else path
    text, fmt = read_user_file(
        path,
        "spec file",
        "leave SPEC out to use the built-in LagLine example",
    )
    spec = parse_spec_text(text, str(path), fmt)
    _resolve_csv_paths(spec, path.parent, str(path))
    return spec, text


def read_user_file(
    path: str | Path, what: str, default_hint: str
) -> tuple[str, Literal["yaml", "toml"]]:
    """Read a user's YAML or TOML file as text, with errors that name the fix.

    Parameters
    ----------
    path : str or Path
        A ``.yaml``, ``.yml`` or ``.toml`` file.
    what : str
        What the file is, for messages ("spec file", "study file").
    default_hint : str
        How to do without the file, for the messages on a missing file.

    Raises
    ------
    SpecError
        If the path is empty, missing, a folder or a device, too large, not
        UTF-8 or has an unknown extension.
    """
    if not str(path).strip():
        raise SpecError(
            f"{what}: an empty path; fix: give a .yaml, .yml or .toml file, or "
            f"{default_hint}."
        )
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".yaml", ".yml", ".toml"}:
        raise SpecError(
            f"{what} {str(path)!r}: unknown extension {suffix or '(none)'!r}; "
            "fix: name it .yaml, .yml or .toml to say how it is written."
        )
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise SpecError(
                f"{what} {str(path)!r} is not a regular file (a device, pipe or "
                f"socket); fix: give a {what}."
            )
        if path.is_file() and path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(
                f"{what} {str(path)!r} is {path.stat().st_size} bytes, above "
                f"{MAX_SPEC_BYTES}; fix: put large sample tables in a CSV file."
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{what} {str(path)!r} does not exist; fix: check the path "
            f"({default_hint})."
        ) from None
    except IsADirectoryError:
        raise SpecError(
            f"{what} {str(path)!r} is a folder; fix: give the {what} in it."
        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{what} {str(path)!r} is not UTF-8 text ({exc.reason} at byte "
            f"{exc.start}); fix: save it as UTF-8."
        ) from None
    except (OSError, ValueError) as exc:
        raise SpecError(
            f"{what} {str(path)!r} cannot be read: {exc}; fix: check the path "
            f"and the file's permissions ({default_hint})."
        ) from None
    fmt: Literal["yaml", "toml"] = "toml" if suffix == ".toml" else "yaml"
    return text, fmt


def _resolve_csv_paths(spec: Spec, base: Path, source: str) -> None:
    from vle_hw.outputs import resolved

    items = spec.input if isinstance(spec.input, list) else [spec.input]
    fields = ["input"] * len(items) + ["target"]
    for field, item in zip(fields, [*items, spec.target], strict=True):
        if not isinstance(item, CsvSamples):
            continue
        given = item.path
        relative = not Path(given).is_absolute()
        try:  # a name too long or a link loop is refused here, naming the field
            absolute = resolved(
                base / given if relative else Path(given), f"{source}: {field}.path ="
            )
        except OSError as exc:
            raise SpecError(
                f"{source}: {field}.path = {given!r} cannot be used ({exc}); "
                "fix: check the path."
            ) from None
        if relative:
            item.path = str(absolute)
        if Path(item.path).exists() and not Path(item.path).is_file():
            raise SpecError(
                f"{source}: {field}.path = {given!r} is not a regular file (a "
                "folder, device or pipe); fix: give a CSV file."
            )
        if not Path(item.path).is_file():
            raise SpecError(
                f"{source}: {field}.path = {given!r} does not exist (looked for "
                f"{item.path}); fix: correct the path, which is relative to the "
                "spec file's folder, or create the file."
            )


def spec_hash(text: str) -> str:
    """Short SHA-256 of the spec text, printed in netlist headers."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_csv_samples(path: str, field: str, channels: int) -> np.ndarray:
    """Read a CSV of samples: a header, a time column, then `channels` columns.

    Blank lines are skipped.

    Returns
    -------
    ndarray, shape (n, 1 + channels)

    Raises
    ------
    SpecError
        If the file is missing, not numeric, has the wrong number of columns,
        or its times do not increase strictly. The message names the line.
    """
    where = f"{field}.path = {path!r}"
    try:
        if not Path(path).is_file() and Path(path).exists():
            raise SpecError(f"{where}: not a regular file; fix: give a CSV file.")
        with open(path, newline="", encoding="utf-8") as handle:
            rows = []
            for row in csv.reader(handle):
                rows.append(row)
                if len(rows) > MAX_TABLE_POINTS + 1:
                    raise SpecError(
                        f"{where}: more than {MAX_TABLE_POINTS} samples; fix: "
                        "resample the file more coarsely."
                    )
    except FileNotFoundError:
        raise SpecError(f"{where}: file not found; fix: check the path.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpecError(f"{where}: cannot be read ({exc}).") from None
    width = 1 + channels
    numbered = [
        (line, row)
        for line, row in enumerate(rows, start=1)
        if any(cell.strip() for cell in row)
    ]
    if len(numbered) < 3:
        raise SpecError(
            f"{where}: needs a header line and at least two rows of samples, got "
            f"{len(numbered)} non-blank line(s); fix: add samples."
        )
    data = np.empty((len(numbered) - 1, width))
    for index, (line, row) in enumerate(numbered[1:]):
        if len(row) != width:
            raise SpecError(
                f"{where}: line {line} has {len(row)} columns, expected {width} "
                f"(t then {channels} channel(s)); fix: one time and one value per "
                "channel on every line."
            )
        for column, cell in enumerate(row):
            try:
                if "_" in cell:
                    raise ValueError(cell)
                data[index, column] = float(cell)
            except ValueError:
                raise SpecError(
                    f"{where}: line {line}, column {column + 1}: {_show(cell)} is "
                    "not a number; fix: every cell after the header must be a number."
                ) from None
    if not np.all(np.isfinite(data)):
        line = numbered[1 + int(np.argmax(~np.isfinite(data).all(axis=1)))][0]
        raise SpecError(
            f"{where}: line {line} holds NaN or infinity; fix: finite numbers only."
        )
    limits = np.array([TIME_MAX] + [VALUE_MAX] * channels)
    outside = np.abs(data) > limits
    if np.any(outside):
        row, column = np.argwhere(outside)[0]
        kind = "a time" if column == 0 else "a value"
        raise SpecError(
            f"{where}: line {numbered[1 + row][0]}, column {column + 1}: "
            f"{float(data[row, column])!r} is beyond the range of {kind} "
            f"(|x| <= {limits[column]:g}); fix: rescale the column."
        )
    steps = np.diff(data[:, 0])
    if np.any(steps < TIME_MIN):
        line = numbered[2 + int(np.argmax(steps < TIME_MIN))][0]
        raise SpecError(
            f"{where}: line {line}: the time column must increase strictly, by at "
            f"least {TIME_MIN:g} model units per row; fix: sort the rows by t and "
            "remove repeated (or nearly repeated) times."
        )
    return data


def spec_to_json(spec: Spec) -> str:
    """Canonical JSON of a validated spec (sorted keys), for result files."""
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True)
