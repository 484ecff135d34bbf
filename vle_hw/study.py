"""Study files: which knobs a tradeoff study varies, validated, and its runs.

A study names a base spec, the knobs held fixed, the sweep axes and an
optional Monte Carlo sample count (see ``analysis/*.yaml``)::

    name: opamp_gbw
    base: ../examples/lagline.yaml      # relative to the study file
    level: opamp
    fixed: {simulation.t_stop: 100.0}
    sweep:                              # axes are crossed; knobs in one axis zip
      - {opamp.gbw_hz: [1.0e6, 1.0e7, 1.0e8]}
      - {opamp.a0_db: [60.0, 100.0]}
    monte_carlo: {samples: 20}
    figures:
      - {kind: sweep, x: opamp.gbw_hz, y: [nrmse_worst], series: opamp.a0_db}

A knob is either a spec field by its dotted path (``opamp.gbw_hz``,
``hardware.time_sec_per_unit``, ``network.eta``, ``network.layers[0].tau_m``),
set in the base spec before validation, or a circuit knob of
:data:`CIRCUIT_KNOBS`, applied to the circuit by :mod:`vle_hw.perturb`.

Runs are numbered in a fixed order (the first axis varies slowest, the Monte
Carlo sample fastest). Sample ``s`` draws its mismatch and noise from a seed
made of the study seed and ``s`` alone, so every sweep point sees the same
circuits (common random numbers): "before" and "after learning" compare the
same mismatched parts. Every run's spec is validated here, before any run
starts, so a bad knob fails the whole study at once with the knob's name.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vle_hw.compare import SIGNAL_CLASSES
from vle_hw.errors import SpecError
from vle_hw.perturb import Perturbation
from vle_hw.spec import (
    IDENTIFIER_PATTERN,
    Spec,
    _parse_text,
    _resolve_csv_paths,
    default_spec_text,
    printable,
    read_user_file,
    validate_spec_data,
)

Level = Literal["behavioural", "opamp", "transistor"]
MetricGroup = Literal["fidelity", "learning", "area_power", "alignment"]
# The columns each metric group adds to a run's row (vle_hw.explore); fidelity
# also adds nrmse_<class> for each signal class (vle_hw.compare.SIGNAL_CLASSES,
# with and without teacher_).
METRIC_COLUMNS: dict[str, tuple[str, ...]] = {
    "fidelity": ("nrmse_worst",),
    "learning": ("output_error_rel", "final_loss", "teacher_distance"),
    "area_power": ("area_m2", "power_watt", "ktc_noise_model_units"),
    "alignment": ("alignment_cosine", "alignment_norm_ratio"),
}
KnobValue = bool | int | float | str
MAX_RUNS = 100_000
MAX_AXIS_VALUES = 10_000

# Circuit knobs: study name -> (Perturbation field, allowed Python types).
CIRCUIT_KNOBS: dict[str, tuple[str, tuple[type, ...]]] = {
    "mismatch.r_rel": ("r_mismatch_rel", (float, int)),
    "mismatch.c_rel": ("c_mismatch_rel", (float, int)),
    "mismatch.g_rel": ("g_mismatch_rel", (float, int)),
    "mismatch.opamp_offset_volt": ("opamp_offset_sigma_volt", (float, int)),
    "weights.leak_ohm": ("weight_leak_ohm", (float, int)),
    "weights.bits": ("weight_bits", (int,)),
    "weights.full_scale": ("weight_full_scale", (float, int)),
    "noise.thermal": ("thermal_noise", (bool,)),
    "noise.temperature_kelvin": ("temperature_kelvin", (float, int)),
    "corner": ("", (str,)),
}

# Process corners: global relative shifts of every student R, C and G, and of
# the op-amp GBW. Illustrative +-10 % (R, C) and +-20 % (GBW) values, not a
# foundry's; a study may define its own under ``corners:``.
DEFAULT_CORNERS: dict[str, dict[str, float]] = {
    "tt": {},
    "ss": {"r_rel": 0.10, "c_rel": 0.10, "gbw_rel": -0.20},
    "ff": {"r_rel": -0.10, "c_rel": -0.10, "gbw_rel": 0.20},
}

_PATH_PART = re.compile(r"^([a-z][a-z0-9_]*)(?:\[(\d{1,4})\])?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class MonteCarloSpec(_Model):
    samples: Annotated[int, Field(ge=1, le=10_000)] = Field(
        description="Monte Carlo samples per sweep point"
    )


class CornerSpec(_Model):
    r_rel: Annotated[float, Field(gt=-0.9, lt=10)] = 0.0
    c_rel: Annotated[float, Field(gt=-0.9, lt=10)] = 0.0
    g_rel: Annotated[float, Field(gt=-0.9, lt=10)] = 0.0
    gbw_rel: Annotated[float, Field(gt=-0.9, lt=10)] = 0.0


class SweepFigure(_Model):
    kind: Literal["sweep"]
    x: str = Field(description="the knob on the x axis")
    y: Annotated[list[str], Field(min_length=1, max_length=16)]
    series: str | None = Field(None, description="a knob: one line per value")
    log_x: bool | None = None
    log_y: bool = True


class ParetoFigure(_Model):
    kind: Literal["pareto"]
    x: str = Field(description="a metric to minimise")
    y: str = Field(description="a metric to minimise")
    color: str | None = Field(None, description="a knob that colours the points")


class HistogramFigure(_Model):
    kind: Literal["histogram"]
    metric: str
    group: list[str] = Field(default_factory=list, description="knobs")
    threshold: Annotated[float, Field(gt=0)] = Field(
        description="the yield counts runs with metric <= threshold"
    )


class YieldSpec(_Model):
    metric: str
    max: Annotated[float, Field(gt=0)]
    group: list[str] = Field(default_factory=list)


class StudyFile(_Model):
    name: Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64)]
    base: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None, description="the base spec, relative to the study file"
    )
    level: Level = "behavioural"
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    fixed: dict[str, KnobValue] = Field(default_factory=dict)
    sweep: Annotated[
        list[dict[str, Annotated[list[KnobValue], Field(min_length=1)]]],
        Field(max_length=8),
    ] = Field(default_factory=list)
    monte_carlo: MonteCarloSpec | None = None
    corners: (
        dict[
            Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64)], CornerSpec
        ]
        | None
    ) = None
    metrics: Annotated[list[MetricGroup], Field(min_length=1)] = Field(
        default_factory=lambda: ["fidelity", "learning", "area_power"]
    )
    output_window: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="model time units at the end of each run over which the "
        "output error and loss are taken (default: the last 10 %)",
    )
    run_timeout_sec: Annotated[float, Field(ge=1, le=86_400)] | None = None
    yields: list[YieldSpec] = Field(default_factory=list)
    figures: list[
        Annotated[
            SweepFigure | ParetoFigure | HistogramFigure, Field(discriminator="kind")
        ]
    ] = Field(default_factory=list)


@dataclass(frozen=True)
class RunTask:
    """One run of a study: a validated spec, its circuit knobs and what to measure."""

    run_id: int
    knobs: dict[str, KnobValue]  # every knob of this run, fixed and swept
    sample: int | None
    spec: Spec
    perturbation: Perturbation
    level: str
    metrics: tuple[str, ...]
    output_window: float
    timeout_sec: float
    reference_key: str  # equal for runs whose ideal (ODE) trace is the same


@dataclass
class Study:
    """A loaded study: its file, base spec and expanded runs."""

    file: StudyFile
    source: str
    base_source: str
    study_hash: str
    runs: list[RunTask] = field(default_factory=list)

    @property
    def knob_names(self) -> list[str]:
        names = list(self.file.fixed)
        for axis in self.file.sweep:
            names += [k for k in axis if k not in names]
        return names

    @property
    def swept_names(self) -> list[str]:
        return [k for axis in self.file.sweep for k in axis]


def load_study(path: str | Path) -> Study:
    """Load, validate and expand a study file.

    Parameters
    ----------
    path : str or Path
        A ``.yaml``, ``.yml`` or ``.toml`` study file.

    Returns
    -------
    Study

    Raises
    ------
    SpecError
        For a bad study file, an unknown knob, or a knob value that makes the
        spec invalid; the message names the knob (or field), the value and
        the fix.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "s.yaml").write_text(
    ...     "name: demo\\nfixed: {simulation.t_stop: 5.0}\\n"
    ...     "sweep:\\n  - {network.eta: [0.0, 10.0]}\\n"
    ...     "monte_carlo: {samples: 2}\\n")
    >>> study = load_study(folder / "s.yaml")
    >>> [(r.run_id, r.knobs["network.eta"], r.sample) for r in study.runs]
    [(0, 0.0, 0), (1, 0.0, 1), (2, 10.0, 0), (3, 10.0, 1)]
    """
    text, fmt = read_user_file(path, "study file", "see analysis/*.yaml")
    source = str(path)
    data = _parse_text(text, source, fmt)
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: a study must be a mapping of fields (name: ..., sweep: "
            "...); fix: write it as the studies in analysis/*.yaml."
        )
    try:
        study_file = StudyFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_study_errors(exc, source, data)) from None

    # --- the base spec ---------------------------------------------------------
    base_dir = Path(path).resolve().parent
    if study_file.base is None:
        base_text, base_source, base_fmt = default_spec_text(), "(default)", "yaml"
    else:
        base_path = base_dir / study_file.base
        base_text, base_fmt = read_user_file(
            base_path, "study base spec", "leave base out for the built-in LagLine"
        )
        base_source = str(base_path)
    label = f"{source}: base {base_source}"  # errors name the study's base field
    base_data = _parse_text(base_text, label, base_fmt)
    validate_spec_data(copy.deepcopy(base_data), label)  # the base alone

    digest = hashlib.sha256(
        json.dumps([text, base_text], sort_keys=True).encode("utf-8")
    ).hexdigest()[:16]
    study = Study(study_file, source, base_source, digest)
    _check_knobs(study_file, source)
    study.runs = _expand(study_file, source, base_data, base_source, base_dir)
    tables = _csv_digests(study.runs)
    if tables:  # a changed CSV is another study: --resume must not mix them
        study.study_hash = hashlib.sha256(
            json.dumps([digest, tables]).encode("utf-8")
        ).hexdigest()[:16]
    return study


def _csv_digests(runs: list[RunTask]) -> list[str]:
    """The sha256 of every CSV file the runs read, in path order (the digests
    alone: a checkout moved to another folder is still the same study)."""
    from vle_hw.outputs import spec_inputs

    paths = {str(p) for task in runs for p in spec_inputs(None, task.spec)}
    return [_file_digest(path) for path in sorted(paths)]


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise SpecError(
            f"{path}: cannot be read ({exc.strerror or exc}); fix: make the CSV "
            "file readable."
        ) from None


_SCALAR_TYPES = {"bool_type", "int_type", "float_type", "string_type"}


def _study_errors(exc: ValidationError, source: str, data: Any) -> str:
    """One line per problem: field path, value, requirement and fix."""
    errors = exc.errors()
    by_place: dict[str, list[dict]] = {}
    for error in errors:
        where = printable(".".join(_user_path(error["loc"]))) or "(top level)"
        by_place.setdefault(where, []).append(error)
    lines = []
    for error in errors:
        where = printable(".".join(_user_path(error["loc"]))) or "(top level)"
        value = error.get("input")
        shown = repr(value) if not isinstance(value, dict) else "a mapping"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        kind = error["type"]
        # A knob value is bool | int | float | str: pydantic reports one error
        # per member. Say the one that helps: not finite, or not a plain value.
        kinds = {e["type"] for e in by_place[where]}
        if len(by_place[where]) > 1 and kinds <= _SCALAR_TYPES | {"finite_number"}:
            if "finite_number" in kinds:
                requirement, fix = "must be a finite number", "a finite number"
            else:
                requirement = "must be one plain value (a number, true/false or text)"
                fix = "one value here (lists of values go under sweep:)"
            lines.append(f"{source}: {where} = {shown} {requirement}; fix: give {fix}.")
        elif kind == "extra_forbidden":
            known = _known_fields(error["loc"][:-1])
            hint = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else f"known: {known}"
            lines.append(f"{source}: {where} is not a study field; fix: {fix}")
        elif kind == "missing":
            lines.append(f"{source}: {where} is missing; fix: add it.")
        else:
            lines.append(
                f"{source}: {where} = {shown}: {error['msg'].lower()}; fix: give "
                "a value of that form (see analysis/*.yaml)."
            )
    return "\n".join(dict.fromkeys(lines))


_UNION_TAGS = {"bool", "int", "float", "str", "list[union[bool,int,float,str]]"}


def _user_path(loc: tuple) -> list[str]:
    """The error location without pydantic's union-member tags."""
    parts = [str(part) for part in loc if str(part) not in _UNION_TAGS]
    if len(parts) >= 3 and parts[0] == "figures":  # drop the figure kind tag
        del parts[2]
    return parts


def _known_fields(loc: tuple) -> list[str]:
    model: type[BaseModel] = StudyFile
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(str(part))
        if info is None:
            break
        inner = _models_of(info.annotation)
        if not inner:
            break
        model = inner[0]
    return sorted(model.model_fields)


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """Every section model an annotation may hold (each member of a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found += [m for m in _models_of(arg) if m not in found]
    return found


# --- knobs ---------------------------------------------------------------------


def _check_knobs(study: StudyFile, source: str) -> None:
    """Every knob is known, has values of its type and appears once."""
    seen: dict[str, str] = {}
    places = [("fixed", study.fixed)] + [
        (f"sweep[{i}]", axis) for i, axis in enumerate(study.sweep)
    ]
    for place, knobs in places:
        if place != "fixed" and not knobs:
            raise SpecError(
                f"{source}: {place} is an empty axis ({{}}); fix: give it knobs "
                "with their values, e.g. {network.eta: [0.0, 1.0]}, or remove it."
            )
        lengths = {len(v) for v in knobs.values()} if place != "fixed" else set()
        if len(lengths) > 1:
            raise SpecError(
                f"{source}: {place} zips knobs with different numbers of values "
                f"({', '.join(f'{k}: {len(v)}' for k, v in knobs.items())}); fix: "
                "give every knob of one axis the same number of values, or put "
                "them on separate axes to cross them."
            )
        if lengths and max(lengths) > MAX_AXIS_VALUES:
            raise SpecError(
                f"{source}: {place} has {max(lengths)} values, above "
                f"{MAX_AXIS_VALUES}; fix: fewer values."
            )
        for name, value in knobs.items():
            if name in seen:
                raise SpecError(
                    f"{source}: knob {name!r} is set in both {seen[name]} and "
                    f"{place}; fix: set each knob in one place."
                )
            seen[name] = place
            values = value if place != "fixed" else [value]
            _check_knob(name, values, f"{place}.{printable(name)}", source, study)
    _check_references(study, source)


def _check_knob(name: str, values: list, where: str, source: str, study) -> None:
    if name in CIRCUIT_KNOBS:
        _, types = CIRCUIT_KNOBS[name]
        for value in values:
            if (
                isinstance(value, bool)
                and bool not in types
                or not isinstance(value, types)
            ):
                kinds = " or ".join(t.__name__ for t in types)
                raise SpecError(
                    f"{source}: {where} = {value!r} is not a {kinds}; fix: give "
                    f"{name} as a {kinds}."
                )
            if name == "corner":
                corners = (
                    study.corners if study.corners is not None else (DEFAULT_CORNERS)
                )
                if value not in corners:
                    raise SpecError(
                        f"{source}: {where} = {value!r} is not a defined corner; "
                        f"fix: one of {sorted(corners)}, or define it under "
                        "corners:."
                    )
        return
    parts = name.split(".")
    if not all(_PATH_PART.fullmatch(part) for part in parts):
        raise SpecError(
            f"{source}: {where}: {name!r} is not a knob name; fix: a spec field "
            "path such as opamp.gbw_hz or network.layers[0].tau_m, or one of "
            f"{sorted(CIRCUIT_KNOBS)}."
        )
    problem = _spec_path_problem(parts)
    if problem:
        raise SpecError(f"{source}: {where}: {problem}")


def _spec_path_problem(parts: list[str]) -> str | None:
    """Why a dotted path is not a field of the spec schema, or None.

    A union section (the input's kinds) accepts a field any of its members has;
    the run's own validation then checks it against the kind the spec uses.
    """
    models: list[type[BaseModel]] = [Spec]
    walked = []
    for depth, part in enumerate(parts):
        key, index = _PATH_PART.fullmatch(part).groups()
        if not models:
            return (
                f"{'.'.join(walked)} is a value, not a section; fix: end the knob "
                f"name at {'.'.join(walked)}."
            )
        having = [m for m in models if key in m.model_fields]
        if not having:
            choices = sorted({f for m in models for f in m.model_fields})
            hint = difflib.get_close_matches(key, choices, n=1)
            near = f"did you mean {hint[0]!r}? " if hint else ""
            scope = ".".join(walked) or "the spec"
            circuit = (
                f" or a circuit knob ({', '.join(sorted(CIRCUIT_KNOBS))})"
                if depth == 0
                else ""
            )
            return (
                f"{key!r} is not a field of {scope}; fix: {near}a field of "
                f"{scope} ({', '.join(choices)}){circuit}."
            )
        walked.append(part)
        models = []
        for model in having:
            models += [
                m
                for m in _models_of(model.model_fields[key].annotation)
                if m not in models
            ]
        if index is not None and not models:
            return f"{key} is not a list of sections; fix: drop [{index}]."
    return None


def _known_metrics(study: StudyFile) -> set[str]:
    """The metric columns the study's metric groups produce."""
    names = {"spice_points"}
    for group in study.metrics:
        names.update(METRIC_COLUMNS[group])
    if "fidelity" in study.metrics:
        names.update(
            f"nrmse_{prefix}{cls}"
            for prefix in ("", "teacher_")
            for cls in SIGNAL_CLASSES
        )
    return names


def _check_references(study: StudyFile, source: str) -> None:
    """Every knob a figure or yield names is a knob of the study, and every
    metric one names is a column that the study's metric groups produce (metric
    names end up in figure file names, so nothing else may pass)."""
    knobs = set(study.fixed) | {k for axis in study.sweep for k in axis}
    metrics = _known_metrics(study)
    refs: list[tuple[str, str, str]] = []  # (field path, value, "knob" or "metric")
    for i, figure in enumerate(study.figures):
        at = f"figures[{i}]"
        if isinstance(figure, SweepFigure):
            refs.append((f"{at}.x", figure.x, "knob"))
            if figure.series is not None:
                refs.append((f"{at}.series", figure.series, "knob"))
            refs += [(f"{at}.y[{j}]", y, "metric") for j, y in enumerate(figure.y)]
        elif isinstance(figure, ParetoFigure):
            refs += [(f"{at}.x", figure.x, "metric"), (f"{at}.y", figure.y, "metric")]
            if figure.color is not None:
                refs.append((f"{at}.color", figure.color, "knob"))
        elif isinstance(figure, HistogramFigure):
            refs.append((f"{at}.metric", figure.metric, "metric"))
            refs += [
                (f"{at}.group[{j}]", g, "knob") for j, g in enumerate(figure.group)
            ]
    for i, entry in enumerate(study.yields):
        refs.append((f"yields[{i}].metric", entry.metric, "metric"))
        refs += [
            (f"yields[{i}].group[{j}]", g, "knob") for j, g in enumerate(entry.group)
        ]
    for where, name, kind in refs:
        if kind == "knob" and name not in knobs:
            raise SpecError(
                f"{source}: {where} = {name!r} is not a knob of this study (its "
                "knobs are the keys of fixed and sweep); fix: one of "
                f"{sorted(knobs) or '(none: add a sweep)'}."
            )
        if kind == "metric" and name not in metrics:
            groups = ", ".join(study.metrics)
            hint = difflib.get_close_matches(name, sorted(metrics), n=1)
            near = f"did you mean {hint[0]!r}? " if hint else ""
            raise SpecError(
                f"{source}: {where} = {name!r} is not a metric of this study "
                f"(metrics: {groups}); fix: {near}one of "
                f"{', '.join(sorted(metrics))}, or add the group that measures "
                f"it to metrics ({', '.join(METRIC_COLUMNS)})."
            )


def _set_path(data: dict, parts: list[str], value: KnobValue, where: str) -> None:
    node: Any = data
    for depth, part in enumerate(parts):
        key, index = _PATH_PART.fullmatch(part).groups()
        last = depth == len(parts) - 1
        if index is None:
            if last:
                node[key] = value
                return
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
            continue
        items = node.get(key)
        if not isinstance(items, list) or int(index) >= len(items):
            count = len(items) if isinstance(items, list) else 0
            fix = (
                f"an index below {count}"
                if count
                else f"write {key} out in the base spec first (the knob can only "
                "change an entry that is there)"
            )
            raise SpecError(
                f"{where}: the base spec's {key} has {count} entries, so "
                f"[{index}] does not exist; fix: {fix}."
            )
        if last:
            items[int(index)] = value
            return
        node = items[int(index)]


# --- expansion -------------------------------------------------------------------


def _points(study: StudyFile) -> list[dict[str, KnobValue]]:
    axes = []
    for axis in study.sweep:
        names = list(axis)
        count = len(axis[names[0]])
        axes.append([{n: axis[n][i] for n in names} for i in range(count)])
    points = []
    for combo in itertools.product(*axes):
        point = dict(study.fixed)
        for part in combo:
            point.update(part)
        points.append(point)
    return points


def sample_seed(study_seed: int, sample: int | None) -> int:
    """The mismatch and noise seed of Monte Carlo sample `sample`.

    Examples
    --------
    >>> sample_seed(0, 3) == sample_seed(0, 3) != sample_seed(0, 4)
    True
    """
    if sample is None:
        return study_seed
    state = np.random.SeedSequence([study_seed, sample]).generate_state(1)
    return int(state[0]) % (2**31 - 1)  # within Perturbation.seed (ngspice) range


def _expand(
    study: StudyFile, source: str, base_data: dict, base_source: str, base_dir: Path
) -> list[RunTask]:
    samples = study.monte_carlo.samples if study.monte_carlo else None
    # Count before expanding: a few long axes cross to billions of points.
    n_points = math.prod(len(next(iter(axis.values()))) for axis in study.sweep)
    count = n_points * (samples or 1)
    if count > MAX_RUNS:
        raise SpecError(
            f"{source}: the study expands to {count} runs ({n_points} sweep "
            f"point(s) x monte_carlo.samples = {samples or 1}), above {MAX_RUNS}; "
            "fix: fewer sweep values or Monte Carlo samples."
        )
    points = _points(study)
    corners = (
        study.corners
        if study.corners is not None
        else {k: CornerSpec(**v) for k, v in DEFAULT_CORNERS.items()}
    )
    specs: dict[str, tuple[Spec, str]] = {}
    runs = []
    for point in points:
        spec_knobs = {k: v for k, v in point.items() if k not in CIRCUIT_KNOBS}
        corner = corners[point["corner"]] if "corner" in point else CornerSpec()
        key = json.dumps(sorted(spec_knobs.items())) + repr(corner.gbw_rel)
        if key not in specs:
            specs[key] = _run_spec(
                base_data, spec_knobs, corner, source, base_source, base_dir
            )
        spec, ref_key = specs[key]
        window = study.output_window or 0.1 * spec.simulation.t_stop
        if window > spec.simulation.t_stop:
            raise SpecError(
                f"{source}: output_window = {window:g} is longer than the run "
                f"(simulation.t_stop = {spec.simulation.t_stop:g}); fix: a shorter "
                "window."
            )
        for sample in range(samples) if samples else [None]:
            perturbation = _perturbation(point, corner, study, sample, source)
            if perturbation.opamp_offset_sigma_volt > 0 and study.level != "opamp":
                raise SpecError(
                    f"{source}: knob mismatch.opamp_offset_volt = "
                    f"{point.get('mismatch.opamp_offset_volt')!r} needs op-amps, but "
                    f"level = {study.level}; fix: set level: opamp, or leave the "
                    "knob out."
                )
            runs.append(
                RunTask(
                    run_id=len(runs),
                    knobs=dict(point),
                    sample=sample,
                    spec=spec,
                    perturbation=perturbation,
                    level=study.level,
                    metrics=tuple(study.metrics),
                    output_window=window,
                    timeout_sec=study.run_timeout_sec or spec.simulation.timeout_sec,
                    reference_key=ref_key,
                )
            )
    return runs


def _run_spec(base_data, spec_knobs, corner, source, base_source, base_dir):
    data = copy.deepcopy(base_data)
    for name, value in spec_knobs.items():
        _set_path(data, name.split("."), value, f"{source}: knob {name}")
    if corner.gbw_rel:
        opamp = data.setdefault("opamp", {})
        gbw = opamp.get("gbw_hz", Spec.model_fields["opamp"].default.gbw_hz)
        if isinstance(gbw, int | float) and not isinstance(gbw, bool):
            opamp["gbw_hz"] = float(gbw) * (1.0 + corner.gbw_rel)
    shown = ", ".join(f"{k} = {v!r}" for k, v in spec_knobs.items()) or "no knobs"
    where = f"{source} (base {base_source} with {shown})"
    spec = validate_spec_data(data, where)
    _resolve_csv_paths(spec, base_dir, base_source)
    _check_runnable(spec, where)
    return spec, reference_key(spec)


def _check_runnable(spec: Spec, where: str) -> None:
    """Refuse, before the first run, a spec whose every run would fail the same way."""
    from vle_hw.circuit import check_step_budget, check_tau_m_fixed
    from vle_hw.network import build_network
    from vle_hw.signals import build_inputs

    try:
        check_tau_m_fixed(spec.network.eta_tau)
        check_step_budget(spec, build_network(spec), build_inputs(spec))
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def reference_key(spec: Spec) -> str:
    """Hash of what the ideal ODE trace depends on (not hardware nor op-amp).

    Examples
    --------
    >>> from vle_hw.spec import load_spec
    >>> spec, _ = load_spec()
    >>> faster = spec.model_copy(update={"hardware": spec.hardware.model_copy(
    ...     update={"time_sec_per_unit": 1e-6})})
    >>> reference_key(spec) == reference_key(faster)
    True
    """
    data = spec.model_dump(mode="json")
    model = {
        key: data[key]
        for key in ("network", "teacher", "input", "target", "initial_state", "seed")
    }
    model["t_stop"] = data["simulation"]["t_stop"]
    from vle_hw.outputs import spec_inputs

    tables = [_file_digest(str(p)) for p in spec_inputs(None, spec)]
    if tables:  # the trace follows the CSV's contents, not only its path
        model["csv_sha256"] = tables
    text = json.dumps(model, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _perturbation(point, corner, study, sample, source) -> Perturbation:
    values: dict[str, Any] = {
        "r_shift_rel": corner.r_rel,
        "c_shift_rel": corner.c_rel,
        "g_shift_rel": corner.g_rel,
        "seed": sample_seed(study.seed, sample),
    }
    for name, value in point.items():
        if name in CIRCUIT_KNOBS and name != "corner":
            target = CIRCUIT_KNOBS[name][0]
            values[target] = (
                float(value)
                if isinstance(value, int)
                and not (isinstance(value, bool) or target == "weight_bits")
                else value
            )
    try:
        return Perturbation(**values)
    except ValueError as exc:
        knob = next(
            (k for k, (f, _) in CIRCUIT_KNOBS.items() if f and f in str(exc)), None
        )
        shown = f"knob {knob} = {point.get(knob)!r}" if knob else "a circuit knob"
        raise SpecError(f"{source}: {shown}: {exc}") from None
