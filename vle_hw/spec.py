"""Network specs: the schema, loading from YAML or TOML, and validation.

A spec is parsed by a real YAML (PyYAML, safe loader) or TOML (tomllib) parser
and validated by pydantic models with unknown fields forbidden, strict types
(no string is silently read as a number) and no NaN or infinity. Every error is
reported as a :class:`~vle_hw.errors.SpecError` whose lines each name the field,
the value and the fix. Names that may reach a netlist must match
``^[a-z][a-z0-9_]*$``; no spec string is ever passed to ``sympify``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from vle_hw.derivation import PhiName
from vle_hw.errors import SpecError

IDENTIFIER_PATTERN = r"^[a-z][a-z0-9_]*$"
DEFAULT_SPEC_NAME = "lagline.yaml"
MAX_NEURONS_PER_LAYER = 100_000

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Matrix = list[list[float]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class RandomInit(_Model):
    """Seeded random values: normal(mean, std / sqrt(fan_in)) for weights."""

    init: Literal["random"]
    std: NonNegative = 1.0
    mean: float = 0.0
    seed: int | None = None


class LayerSpec(_Model):
    name: Identifier | None = None
    size: Annotated[int, Field(ge=1, le=MAX_NEURONS_PER_LAYER)]
    phi: PhiName
    tau_m: Positive | list[Positive]
    tau_r: Positive | list[Positive]
    gamma: NonNegative | None = None
    plastic: bool = True


class TeacherLayerSpec(_Model):
    phi: PhiName | None = None
    tau_m: Positive | list[Positive] | None = None
    tau_r: Positive | list[Positive] | None = None


class NetworkSpec(_Model):
    inputs: Annotated[int, Field(ge=1, le=MAX_NEURONS_PER_LAYER)]
    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=64)]
    gamma: NonNegative = 0.0
    beta: NonNegative
    eta: NonNegative
    cost: Literal["mse"] = "mse"
    weights: list[Matrix] | RandomInit
    biases: Literal["none", "zero"] | list[list[float]] | RandomInit = "none"


class TeacherSpec(_Model):
    layers: list[TeacherLayerSpec] | None = None
    weights: list[Matrix] | RandomInit
    biases: Literal["none", "zero"] | list[list[float]] | RandomInit | None = None


class SmoothedSquare(_Model):
    """Square wave between `low` and `high`, convolved with a Gaussian."""

    kind: Literal["smoothed_square"]
    period: Positive = 4.0
    duty: Annotated[float, Field(gt=0, lt=1)] = 0.5
    low: float = -1.0
    high: float = 1.0
    sigma: Positive = 0.05
    delay: NonNegative = 0.0


class Sines(_Model):
    """Sum of a_k sin(omega_k t + phase_k) + offset (omega in rad per unit)."""

    kind: Literal["sines"]
    amplitudes: Annotated[list[float], Field(min_length=1, max_length=64)]
    omegas: Annotated[list[Positive], Field(min_length=1, max_length=64)]
    phases: list[float] | None = None
    offset: float = 0.0


class OrnsteinUhlenbeck(_Model):
    """OU process sampled every `dt` (linear in between), seeded."""

    kind: Literal["ou"]
    tau: Positive = 1.0
    std: NonNegative = 1.0
    mean: float = 0.0
    dt: Positive = 0.01
    seed: int | None = None


class CsvSamples(_Model):
    """Samples from a CSV file: a time column `t` then one column per channel."""

    kind: Literal["csv"]
    path: Annotated[str, Field(min_length=1, max_length=4096)]


InputSpec = Annotated[
    SmoothedSquare | Sines | OrnsteinUhlenbeck | CsvSamples,
    Field(discriminator="kind"),
]


class TargetTeacher(_Model):
    kind: Literal["teacher"]


TargetSpec = Annotated[TargetTeacher | CsvSamples, Field(discriminator="kind")]


class SimulationSpec(_Model):
    t_stop: Positive
    max_step: Positive | None = None
    steps_per_tau: Annotated[float, Field(ge=2, le=10_000)] = 60.0
    steps_per_feature: Annotated[float, Field(ge=2, le=10_000)] = 20.0
    reltol: Annotated[float, Field(gt=0, le=1e-2)] = 1e-6
    timeout_sec: Annotated[float, Field(gt=0, le=86_400)] = 600.0


class HardwareSpec(_Model):
    time_sec_per_unit: Positive = 1e-5
    signal_volt_per_unit: Positive = 0.1
    error_volt_per_unit: Positive = 10.0
    weight_volt_per_unit: Positive = 1.0
    c_mem_farad: Positive = 1e-9
    c_weight_farad: Positive = 1e-9
    r_sum_ohm: Positive = 1e3


class ToleranceSpec(_Model):
    nrmse: Positive = 1e-4
    weight_rel: Positive = 1e-3


class Spec(_Model):
    """A validated network spec; see ``vle_hw/examples/lagline.yaml``."""

    name: Identifier
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    network: NetworkSpec
    teacher: TeacherSpec | None = None
    input: InputSpec | list[InputSpec]
    target: TargetSpec
    initial_state: Literal["zero", "steady"] = "zero"
    simulation: SimulationSpec
    hardware: HardwareSpec = HardwareSpec()
    tolerances: ToleranceSpec = ToleranceSpec()

    @field_validator("input", mode="before")
    @classmethod
    def _input_is_mapping_or_list(cls, value: Any) -> Any:
        if not isinstance(value, dict | list):
            raise ValueError(
                f"must be a mapping with a 'kind' or a list of them, got {value!r}"
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
            f"{where} has {len(value)} values for a layer of size {size}; "
            f"give one number for the layer or exactly {size} (one per neuron)"
        )


def _check_matrices(weights: Any, sizes: list[int], where: str) -> None:
    if isinstance(weights, RandomInit):
        return
    if len(weights) != len(sizes) - 1:
        raise ValueError(
            f"{where} has {len(weights)} matrices for {len(sizes) - 1} layers; "
            "give one matrix (rows = post-synaptic neurons) per layer"
        )
    for index, matrix in enumerate(weights):
        rows, cols = sizes[index + 1], sizes[index]
        if len(matrix) != rows or any(len(row) != cols for row in matrix):
            raise ValueError(
                f"{where}[{index}] must be {rows} x {cols} "
                f"(layer {index + 1} size x layer {index} size), "
                f"got {len(matrix)} rows of lengths {[len(r) for r in matrix]}"
            )


def _check_biases(biases: Any, sizes: list[int], where: str) -> None:
    if biases is None or isinstance(biases, str | RandomInit):
        return
    if len(biases) != len(sizes) - 1:
        raise ValueError(
            f"{where} has {len(biases)} vectors for {len(sizes) - 1} layers; "
            "give one vector per layer, or 'none' or 'zero'"
        )
    for index, vector in enumerate(biases):
        if len(vector) != sizes[index + 1]:
            raise ValueError(
                f"{where}[{index}] must have {sizes[index + 1]} values, "
                f"got {len(vector)}"
            )


def _check_network(spec: Spec) -> None:
    net = spec.network
    sizes = [net.inputs] + [layer.size for layer in net.layers]
    for index, layer in enumerate(net.layers):
        _per_neuron(layer.tau_m, layer.size, f"network.layers[{index}].tau_m")
        _per_neuron(layer.tau_r, layer.size, f"network.layers[{index}].tau_r")
    _check_matrices(net.weights, sizes, "network.weights")
    _check_biases(net.biases, sizes, "network.biases")
    names = [layer.name for layer in net.layers if layer.name is not None]
    if len(names) != len(set(names)):
        raise ValueError(f"network.layers: layer names must be unique, got {names}")

    if spec.teacher is not None:
        teacher = spec.teacher
        if teacher.layers is not None and len(teacher.layers) != len(net.layers):
            raise ValueError(
                f"teacher.layers has {len(teacher.layers)} entries for "
                f"{len(net.layers)} network layers; give one (possibly empty) "
                "override per layer"
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
            "add a teacher (weights at least) or use target.kind: csv"
        )

    inputs = spec.input if isinstance(spec.input, list) else [spec.input]
    csv_inputs = [item for item in inputs if isinstance(item, CsvSamples)]
    if isinstance(spec.input, list):
        if len(spec.input) != net.inputs:
            raise ValueError(
                f"input lists {len(spec.input)} generators for "
                f"network.inputs = {net.inputs}; give one per input channel"
            )
        if csv_inputs:
            raise ValueError(
                "input: a csv source holds every channel; give it alone, not in a list"
            )
    elif net.inputs > 1 and not csv_inputs:
        raise ValueError(
            f"input is one generator but network.inputs = {net.inputs}; "
            "give a list with one generator per channel, or a csv file"
        )
    for item in inputs:
        if isinstance(item, Sines):
            if len(item.omegas) != len(item.amplitudes):
                raise ValueError(
                    "input.omegas and input.amplitudes must have the same length, "
                    f"got {len(item.omegas)} and {len(item.amplitudes)}"
                )
            if item.phases is not None and len(item.phases) != len(item.amplitudes):
                raise ValueError(
                    "input.phases must have one value per sine "
                    f"({len(item.amplitudes)}), got {len(item.phases)}"
                )
    sim = spec.simulation
    if sim.max_step is not None and sim.max_step >= sim.t_stop:
        raise ValueError(
            f"simulation.max_step = {sim.max_step} must be smaller than "
            f"simulation.t_stop = {sim.t_stop}"
        )


# --- error formatting -----------------------------------------------------------

_FIXES = {
    "missing": "add this field (see vle_hw/examples/lagline.yaml)",
    "extra_forbidden": "remove it or correct its spelling",
    "float_type": "write a plain number such as 1.0 (no quotes)",
    "int_type": "write a whole number such as 2 (no quotes)",
    "finite_number": "write a finite number (no nan or inf)",
    "greater_than": "use a value above the bound",
    "greater_than_equal": "use a value at or above the bound",
    "less_than": "use a value below the bound",
    "less_than_equal": "use a value at or below the bound",
    "literal_error": "use one of the listed values",
    "string_pattern_mismatch": (
        "use a plain identifier: lower-case letter first, then a-z, 0-9 or _"
    ),
    "union_tag_invalid": "set 'kind' to one of the listed values",
    "union_tag_not_found": "add a 'kind' field",
    "list_type": "write a list, e.g. [1.0, 2.0]",
    "model_type": "write a mapping of fields",
    "dict_type": "write a mapping of fields",
    "too_short": "add entries",
    "too_long": "remove entries",
    "bool_type": "write true or false",
    "string_type": "write a string",
    "string_too_long": "shorten it",
    "string_too_short": "write a non-empty string",
}


def _loc_to_field(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in {
            "float",
            "int",
            "list[float]",
            "list[list[float]]",
            "list[list[list[float]]]",
            "RandomInit",
            "str",
        } or str(part).startswith(("constrained-", "function-", "literal[")):
            # pydantic names the union member it tried; the user never wrote it
            continue
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = []
    seen = set()
    for err in exc.errors(include_url=False):
        field = _loc_to_field(err["loc"])
        kind = err["type"]
        if (field, kind) in seen:
            continue
        seen.add((field, kind))
        message = err["msg"].removeprefix("Value error, ")
        if kind == "value_error":
            lines.append(f"{source}: {field}: {message}.")
            continue
        value = "(missing)" if kind == "missing" else repr(err.get("input"))
        if len(value) > 80:
            value = value[:77] + "..."
        fix = _FIXES.get(kind, "see vle_hw/examples/lagline.yaml for a valid spec")
        lines.append(f"{source}: field '{field}': {message}; got {value}; fix: {fix}.")
    # Several union members fail for one wrong value; keep the first few lines.
    return "\n".join(lines[:12])


# --- loading --------------------------------------------------------------------


def default_spec_text() -> str:
    """Text of the embedded default spec (LagLine, DESIGN.md 5.1)."""
    return (
        resources.files("vle_hw.examples")
        .joinpath(DEFAULT_SPEC_NAME)
        .read_text("utf-8")
    )


def parse_spec_text(text: str, source: str, fmt: Literal["yaml", "toml"]) -> Spec:
    """Parse and validate spec text.

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
        If the text does not parse or the spec is invalid.

    Examples
    --------
    >>> spec = parse_spec_text(default_spec_text(), "default", "yaml")
    >>> spec.name, [layer.tau_m for layer in spec.network.layers]
    ('lagline', [1.0, 2.0])
    """
    try:
        if fmt == "toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(
            f"{source}: not valid {fmt.upper()}: {exc}; fix the syntax at the "
            "position shown."
        ) from exc
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: the spec must be a mapping of fields at the top level, got "
            f"{type(data).__name__}; see vle_hw/examples/lagline.yaml."
        )
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(exc, source)) from None
    return spec


def load_spec(path: str | Path | None = None) -> tuple[Spec, str]:
    """Load a spec file (YAML or TOML by extension), or the embedded default.

    Returns
    -------
    (Spec, str)
        The validated spec and its source text (hashed into netlist headers).

    Raises
    ------
    SpecError
        If the file is missing, unreadable, has an unknown extension or is invalid.
    """
    if path is None:
        text = default_spec_text()
        return parse_spec_text(text, f"(default {DEFAULT_SPEC_NAME})", "yaml"), text
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".yaml", ".yml", ".toml"}:
        raise SpecError(
            f"spec file {str(path)!r}: unknown extension {suffix!r}; "
            "use .yaml, .yml or .toml."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file {str(path)!r} does not exist; check the path."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"spec file {str(path)!r} cannot be read: {exc}.") from None
    fmt: Literal["yaml", "toml"] = "toml" if suffix == ".toml" else "yaml"
    spec = parse_spec_text(text, str(path), fmt)
    _resolve_csv_paths(spec, path.parent)
    return spec, text


def _resolve_csv_paths(spec: Spec, base: Path) -> None:
    items = spec.input if isinstance(spec.input, list) else [spec.input]
    for item in [*items, spec.target]:
        if isinstance(item, CsvSamples) and not Path(item.path).is_absolute():
            item.path = str((base / item.path).resolve())


def spec_hash(text: str) -> str:
    """Short SHA-256 of the spec text, printed in netlist headers."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_csv_samples(path: str, field: str, channels: int) -> np.ndarray:
    """Read a CSV of samples: a header, a time column, then `channels` columns.

    Returns
    -------
    ndarray, shape (n, 1 + channels)

    Raises
    ------
    SpecError
        If the file is missing, not numeric, has the wrong number of columns,
        or its times do not increase strictly.
    """
    where = f"{field}.path = {path!r}"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise SpecError(f"{where}: file not found; check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{where}: cannot be read ({exc}).") from None
    if len(rows) < 3:
        raise SpecError(
            f"{where}: needs a header line and at least two rows of samples."
        )
    body = rows[1:]
    try:
        data = np.array([[float(cell) for cell in row] for row in body], dtype=float)
    except ValueError as exc:
        raise SpecError(
            f"{where}: every cell after the header must be a number ({exc})."
        ) from None
    if data.ndim != 2 or data.shape[1] != 1 + channels:
        raise SpecError(
            f"{where}: expected {1 + channels} columns (t then {channels} channels), "
            f"got rows of lengths {sorted({len(r) for r in body})}."
        )
    if not np.all(np.isfinite(data)):
        raise SpecError(f"{where}: contains NaN or infinity.")
    if np.any(np.diff(data[:, 0]) <= 0):
        raise SpecError(f"{where}: the time column must increase strictly.")
    return data


def spec_to_json(spec: Spec) -> str:
    """Canonical JSON of a validated spec (sorted keys), for result files."""
    return json.dumps(spec.model_dump(mode="json"), sort_keys=True)


def is_finite_number(value: float) -> bool:
    return isinstance(value, float | int) and math.isfinite(value)
