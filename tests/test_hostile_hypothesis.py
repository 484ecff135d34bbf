"""Generated hostile specs and studies: each loads, or fails with a SpecError
that names the mutated field. Never another exception, never a file written.

The inputs are mutations (``hostile_mutations``) of ``examples/lagline.yaml``
and of a small valid study: a field replaced by a bad value (wrong type, NaN,
infinity, huge, negative, injection text), a required field deleted, an
unknown field added, control characters and unicode put into names and knob
names. Deterministic (``derandomize``), 200 examples in all.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import yaml
from hostile_mutations import INJECTIONS, apply, mutation, names_field, toml_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vle_hw.errors import SpecError
from vle_hw.spec import Spec, parse_spec_text
from vle_hw.study import Study, load_study

ROOT = Path(__file__).resolve().parent.parent
LAGLINE_PATH = ROOT / "examples" / "lagline.yaml"
LAGLINE = yaml.safe_load(LAGLINE_PATH.read_text(encoding="utf-8"))

STUDY = {
    "name": "small",
    "base": "base.yaml",
    "level": "behavioural",
    "seed": 3,
    "fixed": {"simulation.t_stop": 5.0, "mismatch.r_rel": 0.01},
    "sweep": [
        {"network.eta": [0.0, 1.0], "network.layers[0].tau_m": [1.0, 2.0]},
        {"corner": ["tt", "ss"]},
    ],
    "monte_carlo": {"samples": 2},
    "metrics": ["fidelity", "learning", "area_power"],
    "output_window": 1.0,
    "run_timeout_sec": 60.0,
    "yields": [{"metric": "nrmse_worst", "max": 1e-3, "group": ["network.eta"]}],
    "figures": [
        {"kind": "sweep", "x": "network.eta", "y": ["nrmse_worst"], "series": "corner"},
        {"kind": "pareto", "x": "area_m2", "y": "nrmse_worst", "color": "corner"},
        {
            "kind": "histogram",
            "metric": "nrmse_worst",
            "threshold": 1e-3,
            "group": ["corner"],
        },
    ],
}

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

# names with a hostile character put in: control characters, unicode, NUL
HOSTILE_CHARS = st.one_of(
    st.sampled_from(["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\u202e", "ä", "."]),
    st.characters(codec="utf-8", exclude_categories=["Cs"]),
)


@st.composite
def hostile_name(draw, base: str) -> str:
    at = draw(st.integers(0, len(base)))
    inserted = draw(st.text(HOSTILE_CHARS, min_size=1, max_size=4))
    return base[:at] + inserted + base[at:]


def _text(data: dict, fmt: str) -> tuple[str, str]:
    if fmt == "toml":
        text = toml_text(data)
        if text is not None:
            return text, "toml"
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "yaml"


def _check_spec(kind: str, path: tuple, value, fmt: str) -> None:
    data = apply(LAGLINE, kind, path, value)
    text, fmt = _text(data, fmt)
    try:
        spec = parse_spec_text(text, "hostile.yaml", fmt)
    except SpecError as exc:
        message = str(exc)
        assert message.startswith("hostile.yaml"), message
        assert names_field(message, kind, path, value), (kind, path, value, message)
        return
    assert isinstance(spec, Spec)


def _check_study(kind: str, path: tuple, value, fmt: str) -> None:
    data = apply(STUDY, kind, path, value)
    text, fmt = _text(data, fmt)
    with tempfile.TemporaryDirectory(prefix="vle_hostile_") as tmp:
        folder = Path(tmp)
        shutil.copy(LAGLINE_PATH, folder / "base.yaml")
        study_path = folder / f"study.{fmt}"
        study_path.write_text(text, encoding="utf-8")
        before = sorted(folder.rglob("*"))
        try:
            study = load_study(study_path)
        except SpecError as exc:
            message = str(exc)
            assert names_field(message, kind, path, value), (
                kind,
                path,
                value,
                message,
            )
        else:
            assert isinstance(study, Study) and study.runs
        assert sorted(folder.rglob("*")) == before  # loading writes nothing


@settings(max_examples=80, **SETTINGS)
@given(mutation(LAGLINE), st.sampled_from(["yaml", "toml"]))
def test_mutated_spec_loads_or_names_the_field(change, fmt):
    _check_spec(*change, fmt)


@settings(max_examples=20, **SETTINGS)
@given(
    st.sampled_from([("name",), ("network", "layers", 0, "name")]),
    hostile_name("lagline"),
    st.sampled_from(["yaml", "toml"]),
)
def test_spec_names_with_control_characters_load_or_name_the_field(path, name, fmt):
    _check_spec("replace", path, name, fmt)


@settings(max_examples=80, **SETTINGS)
@given(
    mutation(STUDY, keys=["network.eta", "mismatch.r_rel", "corner"]),
    st.sampled_from(["yaml", "toml"]),
)
def test_mutated_study_loads_or_names_the_field(change, fmt):
    _check_study(*change, fmt)


@settings(max_examples=20, **SETTINGS)
@given(
    st.one_of(
        st.tuples(st.just("replace"), st.just(("name",)), hostile_name("small")),
        st.tuples(
            st.just("add"),
            st.just(("fixed",)),
            st.tuples(
                st.one_of(hostile_name("network.eta"), st.sampled_from(INJECTIONS)),
                st.just(1.0),
            ),
        ),
        st.tuples(
            st.just("replace"),
            st.just(("figures", 0, "y", 0)),
            st.one_of(hostile_name("nrmse_worst"), st.sampled_from(INJECTIONS)),
        ),
    ),
    st.sampled_from(["yaml", "toml"]),
)
def test_study_names_and_knob_names_load_or_name_the_field(change, fmt):
    _check_study(*change, fmt)


def test_the_unmutated_inputs_are_valid():
    # Shows the failures above come from the mutations.
    _check_spec("replace", ("seed",), 0, "yaml")
    _check_spec("replace", ("seed",), 0, "toml")
    _check_study("replace", ("seed",), 3, "yaml")
    _check_study("replace", ("seed",), 3, "toml")
    assert copy.deepcopy(STUDY) == STUDY
