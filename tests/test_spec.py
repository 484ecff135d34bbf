"""Spec loading and validation: every bad input gives one clear SpecError.

The bad specs are the default LagLine spec with one field changed, dumped to a
YAML file. Each error must name the field path, the value found and a hint of
the fix on its first line. ``test_cli_bad_input.py`` reuses these cases.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from vle_hw.errors import SpecError
from vle_hw.spec import (
    IDENTIFIER_PATTERN,
    Spec,
    default_spec_text,
    load_spec,
    parse_spec_text,
    read_csv_samples,
)

# --- bad specs (shared with test_cli_bad_input.py) ------------------------------

DELETE = object()  # as a case's value: remove the field

LAYER0 = ("network", "layers", 0)
LAYER1 = ("network", "layers", 1)

# (id, path, new value, fragments of the error's first line)
FIELD_CASES: list[tuple[str, tuple, Any, list[str]]] = [
    # missing and unknown fields
    ("missing_name", ("name",), DELETE, ["name is missing", "add it"]),
    (
        "missing_tau_m",
        (*LAYER0, "tau_m"),
        DELETE,
        ["network.layers[0].tau_m is missing", "add it", "membrane time constant"],
    ),
    ("missing_network", ("network",), DELETE, ["network is missing", "add it"]),
    (
        "missing_weights",
        ("network", "weights"),
        DELETE,
        ["network.weights is missing", "one matrix per layer"],
    ),
    (
        "unknown_top_level_field",
        ("colour",),
        "blue",
        ["colour is not a known field", "'blue'", "remove it or correct its spelling"],
    ),
    (
        "unknown_layer_field",
        (*LAYER0, "tau"),
        1.0,
        ["network.layers[0].tau is not a known field", "did you mean", "tau_m"],
    ),
    (
        "unknown_hardware_field",
        ("hardware", "vdd"),
        1.8,
        ["hardware.vdd is not a known field", "fields allowed here: c_mem_farad"],
    ),
    (
        "unknown_input_field",
        ("input", "amplitude"),
        1.0,
        ["input.amplitude is not a known field", "fields allowed here: delay"],
    ),
    # time constants
    (
        "negative_tau_m",
        (*LAYER0, "tau_m"),
        -1.0,
        [
            "network.layers[0].tau_m must be >= 1e-09",
            "got -1.0",
            "use a number >= 1e-09",
        ],
    ),
    (
        "zero_tau_m",
        (*LAYER0, "tau_m"),
        0.0,
        [
            "network.layers[0].tau_m must be >= 1e-09",
            "got 0.0",
            "use a number >= 1e-09",
        ],
    ),
    (
        "zero_int_tau_r",
        (*LAYER1, "tau_r"),
        0,
        ["network.layers[1].tau_r must be >= 1e-09", "got 0", "use a number >= 1e-09"],
    ),
    (
        "negative_tau_in_per_neuron_list",
        (*LAYER0, "tau_m"),
        [-2.0],
        ["network.layers[0].tau_m[0] must be >= 1e-09", "got -2.0"],
    ),
    (
        "quoted_tau_m",
        (*LAYER0, "tau_m"),
        "1.0",
        ["network.layers[0].tau_m must be a number", "'1.0'", "remove the quotes"],
    ),
    (
        "nan_tau_m",
        (*LAYER0, "tau_m"),
        float("nan"),
        ["network.layers[0].tau_m must be a finite number", "got nan"],
    ),
    (
        "null_tau_m",
        (*LAYER0, "tau_m"),
        None,
        ["network.layers[0].tau_m must be a number or a list", "got None"],
    ),
    (
        "per_neuron_tau_m_list_too_long",
        (*LAYER0, "tau_m"),
        [1.0, 2.0],
        ["network.layers[0].tau_m has 2 values", "[1.0, 2.0]", "exactly 1"],
    ),
    (
        "per_neuron_tau_r_list_empty",
        (*LAYER1, "tau_r"),
        [],
        ["network.layers[1].tau_r has 0 values", "one number for the whole layer"],
    ),
    (
        "teacher_negative_tau_m",
        ("teacher", "layers"),
        [{"tau_m": -0.5}, {}],
        ["teacher.layers[0].tau_m must be >= 1e-09", "got -0.5"],
    ),
    (
        "teacher_tau_r_list_wrong_length",
        ("teacher", "layers"),
        [{}, {"tau_r": [0.1, 0.1, 0.1]}],
        ["teacher.layers[1].tau_r has 3 values", "exactly 1"],
    ),
    (
        "teacher_layers_count",
        ("teacher", "layers"),
        [{}],
        ["teacher.layers has 1 entries for 2 network layers", "one (possibly empty"],
    ),
    # weights: values
    (
        "text_weight",
        ("network", "weights"),
        [[["abc"]], [[0.5]]],
        ["network.weights[0][0][0] must be a number", "'abc'", "plain number"],
    ),
    (
        "quoted_number_weight",
        ("network", "weights"),
        [[[0.5]], [["1.0"]]],
        ["network.weights[1][0][0] must be a number", "'1.0'", "remove the quotes"],
    ),
    (
        "nan_weight",
        ("network", "weights"),
        [[[float("nan")]], [[0.5]]],
        ["network.weights[0][0][0] must be a finite number", "got nan"],
    ),
    (
        "infinite_teacher_weight",
        ("teacher", "weights"),
        [[[1.0]], [[float("-inf")]]],
        ["teacher.weights[1][0][0] must be a finite number", "got -inf"],
    ),
    (
        "weights_as_text",
        ("network", "weights"),
        "random",
        ["network.weights must be a list or a mapping", "'random'", "{init: random"],
    ),
    (
        "weights_random_init_negative_std",
        ("network", "weights"),
        {"init": "random", "std": -1.0},
        ["network.weights.std must be >= 0", "got -1.0"],
    ),
    (
        "weights_random_init_misspelt",
        ("network", "weights"),
        {"init": "rand"},
        ["network.weights.init must be 'random'", "'rand'", "did you mean 'random'"],
    ),
    # weights: shapes
    (
        "weight_matrix_too_wide",
        ("network", "weights"),
        [[[0.5, 0.5]], [[0.5]]],
        ["network.weights[0] must be 1 x 1", "[[0.5, 0.5]]", "1 rows of 1 numbers"],
    ),
    (
        "weight_matrix_too_tall",
        ("network", "weights"),
        [[[0.5]], [[0.5], [0.5]]],
        ["network.weights[1] must be 1 x 1", "got 2 rows", "1 rows of 1 numbers"],
    ),
    (
        "one_weight_matrix_for_two_layers",
        ("network", "weights"),
        [[[0.5]]],
        ["network.weights has 1 matrices for 2 layers", "one matrix per layer"],
    ),
    (
        "weights_two_dimensional",
        ("network", "weights"),
        [[0.5], [[0.5]]],
        ["network.weights[0][0] must be a list", "got 0.5", "one matrix per layer"],
    ),
    (
        "teacher_weight_matrix_wrong_shape",
        ("teacher", "weights"),
        [[[1.0], [1.0]], [[2.0]]],
        ["teacher.weights[0] must be 1 x 1", "got 2 rows", "1 rows of 1 numbers"],
    ),
    (
        "teacher_weight_count",
        ("teacher", "weights"),
        [[[1.0]], [[2.0]], [[3.0]]],
        ["teacher.weights has 3 matrices for 2 layers", "one matrix per layer"],
    ),
    (
        "bias_vector_too_long",
        ("network", "biases"),
        [[0.0, 0.0], [0.0]],
        ["network.biases[0] must have 1 values", "[0.0, 0.0]", "one bias per neuron"],
    ),
    (
        "biases_misspelt",
        ("network", "biases"),
        "zeros",
        ["network.biases must be 'none' or 'zero'", "'zeros'", "did you mean 'zero'"],
    ),
    # activation, sizes, other numbers
    (
        "unknown_phi",
        (*LAYER1, "phi"),
        "relu",
        ["network.layers[1].phi must be 'softplus'", "'relu'", "use one of these"],
    ),
    (
        "teacher_unknown_phi",
        ("teacher", "layers"),
        [{"phi": "ReLU"}, {}],
        ["teacher.layers[0].phi must be 'softplus'", "'ReLU'", "use one of these"],
    ),
    (
        "layer_of_size_zero",
        (*LAYER0, "size"),
        0,
        ["network.layers[0].size must be >= 1", "got 0", "use a number >= 1"],
    ),
    (
        "fractional_layer_size",
        (*LAYER0, "size"),
        1.5,
        ["network.layers[0].size must be a whole number", "got 1.5"],
    ),
    (
        "zero_inputs",
        ("network", "inputs"),
        0,
        ["network.inputs must be >= 1", "got 0"],
    ),
    (
        "no_layers",
        ("network", "layers"),
        [],
        ["network.layers must have at least 1 entries", "got []", "add entries"],
    ),
    (
        "infinite_eta",
        ("network", "eta"),
        float("inf"),
        ["network.eta must be a finite number", "got inf"],
    ),
    (
        "negative_beta",
        ("network", "beta"),
        -0.01,
        ["network.beta must be >= 0", "got -0.01"],
    ),
    (
        "quoted_seed",
        ("seed",),
        "0",
        ["seed must be a whole number, not text", "'0'", "remove the quotes"],
    ),
    (
        "quoted_t_stop",
        ("simulation", "t_stop"),
        "400",
        ["simulation.t_stop must be a number, not text", "'400'", "write 400"],
    ),
    (
        "max_step_not_below_t_stop",
        ("simulation", "max_step"),
        400.0,
        ["simulation.max_step = 400.0 must be smaller than", "lower max_step"],
    ),
    (
        "network_is_null",
        ("network",),
        None,
        ["network must be a mapping of fields", "got None"],
    ),
    # inputs and targets
    (
        "unknown_input_kind",
        ("input", "kind"),
        "sawtooth",
        ["input.kind must be one of csv, ou, sines, smoothed_square", "'sawtooth'"],
    ),
    (
        "input_without_kind",
        ("input", "kind"),
        DELETE,
        ["input.kind is missing", "add kind: one of"],
    ),
    (
        "input_as_text",
        ("input",),
        "square",
        ["input must be a mapping with a 'kind'", "'square'", "kind: smoothed_square"],
    ),
    (
        "square_edges_too_wide",
        ("input", "sigma"),
        0.9,
        ["input.sigma must be <= 0.25", "got 0.9", "smaller sigma"],
    ),
    (
        "unknown_target_kind",
        ("target", "kind"),
        "teachr",
        ["target.kind must be one of csv, teacher", "'teachr'", "did you mean"],
    ),
    (
        "csv_target_without_path",
        ("target",),
        {"kind": "csv"},
        ["target.path is missing", "CSV file"],
    ),
    (
        "teacher_target_without_teacher",
        ("teacher",),
        DELETE,
        ["target.kind is 'teacher' but the spec has no 'teacher'", "add a teacher"],
    ),
    (
        "ou_input_with_too_many_samples",
        ("input",),
        {"kind": "ou", "dt": 1e-5},
        ["input.dt = 1e-05 gives 40000001 samples", "raise dt"],
    ),
]

BAD_NAMES = [
    "Lagline",
    "1net",
    "lag-line",
    "lag line",
    "lag\nline",
    "lagline\n",
    "lägline",
    ".control",
    "x\n.include /etc/passwd",
    "",
    "a" * 65,
]


def field_case_params() -> list:
    return [
        pytest.param(path, value, frags, id=name)
        for name, path, value, frags in FIELD_CASES
    ]


def default_data() -> dict:
    """The default LagLine spec as a plain dict (a fresh copy)."""
    return yaml.safe_load(default_spec_text())


def mutated(path: tuple, value: Any) -> dict:
    """The default spec with the field at `path` set to `value` (or deleted)."""
    data = default_data()
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(value)
    return data


def write_yaml(folder: Path, data: Any, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# Whole files that are not a spec at all: (id, file name, content, fragments).
FILE_CASES: list[tuple[str, str, str | bytes, list[str]]] = [
    (
        "yaml_syntax_error",
        "bad.yaml",
        "name: lagline\nnetwork: [inputs: 1\nseed: 0\n",
        ["not valid YAML: line 3", "fix:"],
    ),
    (
        "yaml_tab_indent",
        "tab.yaml",
        "name: lagline\nnetwork:\n\tinputs: 1\n",
        ["not valid YAML: line 3", "indent with spaces"],
    ),
    (
        "yaml_repeated_key",
        "twice.yaml",
        "name: lagline\nname: other\n",
        ["found the key 'name' twice", "keep one of the two"],
    ),
    (
        "yaml_python_tag",
        "tag.yaml",
        "name: !!python/object/apply:os.system ['true']\n",
        ["not valid YAML", "remove the !! tag"],
    ),
    (
        "yaml_impossible_date",
        "date.yaml",
        "name: lagline\nseed: 2024-13-45\n",
        ["YAML value cannot be read", "month must be in 1..12", "quote it"],
    ),
    (
        "yaml_nested_too_deeply",
        "deep.yaml",
        "name: " + "[" * 5000 + "]" * 5000 + "\n",
        ["nested too deeply"],
    ),
    (
        "toml_syntax_error",
        "bad.toml",
        'name = "lagline"\nseed = \n',
        ["not valid TOML", "line 2", "fix:"],
    ),
    (
        "toml_unquoted_text",
        "text.toml",
        "name = lagline\n",
        ["not valid TOML", "line 1", "text needs quotes"],
    ),
    (
        "top_level_list",
        "list.yaml",
        "- name: lagline\n- seed: 0\n",
        ["must be a mapping of fields at the top level", "got a list"],
    ),
    (
        "top_level_number",
        "number.yaml",
        "42\n",
        ["must be a mapping of fields at the top level", "got a single number"],
    ),
    (
        "empty_file",
        "empty.yaml",
        "",
        ["must be a mapping of fields at the top level", "got an empty file"],
    ),
    (
        "unknown_extension",
        "spec.json",
        '{"name": "lagline"}',
        ["unknown extension '.json'", "name it .yaml, .yml or .toml"],
    ),
    (
        "no_extension",
        "spec",
        "name: lagline\n",
        ["unknown extension '(none)'", ".yaml, .yml or .toml"],
    ),
    (
        "not_utf8",
        "latin1.yaml",
        "name: l\xe4gline\n".encode("latin-1"),
        ["is not UTF-8 text", "save it as UTF-8"],
    ),
]


def file_case_params() -> list:
    return [pytest.param(*case[1:], id=case[0]) for case in FILE_CASES]


def write_file(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- helpers --------------------------------------------------------------------


def _error_of(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return str(info.value)


def _assert_clear(message: str, fragments: list[str]) -> None:
    """The first line names every fragment; no traceback or raw pydantic text."""
    first = message.splitlines()[0]
    for fragment in fragments:
        assert fragment in first, f"{fragment!r} not in {first!r}"
    assert "Traceback" not in message
    assert "pydantic" not in message
    assert "constrained-" not in message and "tagged-union" not in message


# --- field cases ----------------------------------------------------------------


@pytest.mark.parametrize(("path", "value", "fragments"), field_case_params())
def test_bad_field_gives_one_line_naming_field_value_and_fix(
    tmp_path: Path, path: tuple, value: Any, fragments: list[str]
) -> None:
    spec_file = write_yaml(tmp_path, mutated(path, value))

    message = _error_of(spec_file)

    _assert_clear(message, [f"{spec_file}: ", *fragments, "fix: "])
    assert len(message.splitlines()) == 1, message


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_name_that_is_not_a_plain_identifier_is_rejected(
    tmp_path: Path, name: str
) -> None:
    spec_file = write_yaml(tmp_path, mutated(("name",), name))

    message = _error_of(spec_file)

    reason = (
        "at most 64 characters" if len(name) > 64 else "plain lower-case identifier"
    )
    _assert_clear(message, ["name must", reason, "fix: "])
    # The value is quoted with its escapes, so no raw line of it can reach a deck.
    assert repr(name)[:40] in message
    assert "\n.include" not in message and "\n." not in message


@pytest.mark.parametrize("name", ["Hidden", "hidden-1", "hidden\n"], ids=repr)
def test_layer_name_that_is_not_a_plain_identifier_is_rejected(
    tmp_path: Path, name: str
) -> None:
    spec_file = write_yaml(tmp_path, mutated((*LAYER0, "name"), name))

    message = _error_of(spec_file)

    _assert_clear(
        message,
        ["network.layers[0].name must be a plain lower-case identifier", repr(name)],
    )


def test_parse_spec_text_reports_the_same_errors_as_load_spec() -> None:
    text = yaml.safe_dump(mutated((*LAYER0, "tau_m"), -1.0))

    with pytest.raises(
        SpecError, match=r"^text: network\.layers\[0\]\.tau_m must be >= 1e-09"
    ):
        parse_spec_text(text, "text", "yaml")


def test_union_field_reports_only_the_member_matching_the_value() -> None:
    # tau_m is `number | list`; a bad number must not also say "should be a list".
    text = yaml.safe_dump(mutated((*LAYER0, "tau_m"), -1.0))

    with pytest.raises(SpecError) as info:
        parse_spec_text(text, "s.yaml", "yaml")

    assert "list" not in str(info.value).split("fix:")[0]


def test_several_problems_are_listed_one_per_line_first_field_first() -> None:
    data = mutated(("name",), "Bad Name")
    data["network"]["layers"][0].update(tau_m=-1.0, phi="relu")

    with pytest.raises(SpecError) as info:
        parse_spec_text(yaml.safe_dump(data, sort_keys=False), "s.yaml", "yaml")

    lines = str(info.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("s.yaml: name must be a plain lower-case identifier")
    assert any("network.layers[0].phi" in line for line in lines)
    assert any("network.layers[0].tau_m must be >= 1e-09" in line for line in lines)


def test_many_problems_are_cut_to_a_short_list() -> None:
    data = default_data()
    data.update({f"unknown_{k}": k for k in range(20)})

    with pytest.raises(SpecError) as info:
        parse_spec_text(yaml.safe_dump(data), "s.yaml", "yaml")

    lines = str(info.value).splitlines()
    assert len(lines) <= 9
    assert lines[-1] == "s.yaml: ... and 12 more problem(s)."


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="name is missing"):
        parse_spec_text("seed: 0\n", "s.yaml", "yaml")


# --- file cases -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "content", "fragments"), file_case_params())
def test_file_that_is_not_a_spec_gives_one_clear_error(
    tmp_path: Path, name: str, content: str | bytes, fragments: list[str]
) -> None:
    spec_file = write_file(tmp_path, name, content)

    message = _error_of(spec_file)

    _assert_clear(message, [*fragments, "fix: "])
    assert len(message.splitlines()) == 1, message


def test_missing_spec_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(SpecError, match=r"nope\.yaml' does not exist; fix: check"):
        load_spec(missing)


def test_folder_given_as_spec_file_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "spec.yaml"
    folder.mkdir()

    with pytest.raises(SpecError, match="is a folder; fix: give the spec file"):
        load_spec(folder)


@pytest.mark.parametrize("field", ["input", "target"])
def test_csv_path_that_does_not_exist_is_rejected_at_load(
    tmp_path: Path, field: str
) -> None:
    spec_file = write_yaml(
        tmp_path, mutated((field,), {"kind": "csv", "path": "x.csv"})
    )

    message = _error_of(spec_file)

    _assert_clear(
        message,
        [f"{field}.path = 'x.csv' does not exist", str(tmp_path / "x.csv"), "fix: "],
    )


def test_csv_path_is_resolved_against_the_spec_folder(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "target.csv").write_text("t,y\n0,0\n500,1\n")
    spec_file = write_yaml(
        tmp_path, mutated(("target",), {"kind": "csv", "path": "data/target.csv"})
    )

    spec, _ = load_spec(spec_file)

    assert spec.target.path == str(tmp_path / "data" / "target.csv")


# --- CSV contents (read when the deck is built) ---------------------------------

CSV_CASES = [
    pytest.param("t,x\n0,1\n", ["at least two rows of samples"], id="too_short"),
    pytest.param(
        "t,x\n0,1\n1,abc\n", ["line 3, column 2: 'abc' is not a number"], id="text"
    ),
    pytest.param("t,x\n0,1\n1,2,3\n", ["line 3 has 3 columns, expected 2"], id="width"),
    pytest.param("t,x\n0,1\n1,nan\n", ["line 3 holds NaN or infinity"], id="nan"),
    pytest.param(
        "t,x\n0,1\n2,1\n1,1\n", ["line 4: the time column must increase"], id="time"
    ),
    pytest.param(
        "t,x\n0,0\n1,1e300\n2,0\n",
        ["line 3, column 2: 1e+300 is beyond the range of a value (|x| <= 1e+06)"],
        id="huge_value",
    ),
    pytest.param(
        "t,x\n0,0\n1e12,1\n", ["line 3, column 1", "range of a time"], id="huge_time"
    ),
    pytest.param(
        "t,x\n0,0\n1e-300,1\n",
        ["line 3: the time column must increase strictly, by at least 1e-09"],
        id="subnormal_step",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), CSV_CASES)
def test_csv_samples_are_checked_line_by_line(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(text)

    with pytest.raises(SpecError) as info:
        read_csv_samples(str(path), "input", 1)

    _assert_clear(str(info.value), [f"input.path = {str(path)!r}", *fragments, "fix: "])


def test_csv_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("t,x\n0,1\n\n1,2\n\n")

    data = read_csv_samples(str(path), "input", 1)

    assert data.tolist() == [[0.0, 1.0], [1.0, 2.0]]


# --- valid specs ----------------------------------------------------------------

DEFAULT_AS_TOML = """\
# LagLine, the default spec, written by hand in TOML.
name = "lagline"
seed = 0
initial_state = "zero"

[network]
inputs = 1
gamma = 1.0
beta = 0.01
eta = 10.0
cost = "mse"
weights = [[[0.5]], [[0.5]]]
biases = "none"
layers = [
  { size = 1, phi = "softplus", tau_m = 1.0, tau_r = 0.1 },
  { size = 1, phi = "softplus", tau_m = 2.0, tau_r = 0.1 },
]

[teacher]
weights = [[[1.0]], [[2.0]]]

[input]
kind = "smoothed_square"
period = 4.0
duty = 0.5
low = -1.0
high = 1.0
sigma = 0.05

[target]
kind = "teacher"

[simulation]
t_stop = 400.0

[hardware]
time_sec_per_unit = 1.0e-5
signal_volt_per_unit = 0.1
error_volt_per_unit = 10.0
weight_volt_per_unit = 1.0

[tolerances]
nrmse = 1.0e-4
weight_rel = 1.0e-3
"""


def test_default_spec_loads() -> None:
    spec, text = load_spec()

    assert spec.name == "lagline"
    assert text == default_spec_text()


def test_toml_spec_equals_the_default_yaml_spec(tmp_path: Path) -> None:
    toml_file = tmp_path / "lagline.toml"
    toml_file.write_text(DEFAULT_AS_TOML, encoding="utf-8")

    from_toml, _ = load_spec(toml_file)

    assert from_toml.model_dump() == load_spec()[0].model_dump()


def test_toml_spec_errors_name_the_field(tmp_path: Path) -> None:
    toml_file = tmp_path / "bad.toml"
    toml_file.write_text(DEFAULT_AS_TOML.replace("tau_m = 2.0", "tau_m = -2.0"))

    with pytest.raises(SpecError, match=r"layers\[1\]\.tau_m must be >= 1e-09"):
        load_spec(toml_file)


def test_yaml_exponent_without_a_dot_is_read_as_a_number() -> None:
    # YAML 1.1 reads 1e-1 as text; the spec loader reads it as 0.1.
    text = default_spec_text().replace("tau_r: 0.1}", "tau_r: 1e-1}")

    spec = parse_spec_text(text, "s.yaml", "yaml")

    assert [layer.tau_r for layer in spec.network.layers] == [0.1, 0.1]


def test_yml_extension_and_whole_number_time_constants_are_accepted(
    tmp_path: Path,
) -> None:
    spec_file = write_yaml(tmp_path, mutated((*LAYER0, "tau_m"), 3), "spec.yml")

    spec, _ = load_spec(spec_file)

    assert spec.network.layers[0].tau_m == 3.0


def test_per_neuron_time_constants_of_the_right_length_are_accepted(
    tmp_path: Path,
) -> None:
    data = mutated((*LAYER0, "tau_m"), [1.5, 2.5])
    data["network"]["layers"][0]["size"] = 2
    data["network"]["weights"] = [[[0.5], [0.5]], [[0.5, 0.5]]]
    data["teacher"]["weights"] = [[[1.0], [1.0]], [[2.0, 2.0]]]

    spec, _ = load_spec(write_yaml(tmp_path, data))

    assert spec.network.layers[0].tau_m == [1.5, 2.5]


def test_every_text_field_of_the_schema_is_checked_before_use() -> None:
    """A spec string is a pattern-checked name, one of a fixed list, or a path."""
    schema = Spec.model_json_schema()
    unchecked = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "string" and not (
                {"pattern", "enum", "const"} & node.keys()
            ):
                unchecked.append(where)
            for key, child in node.items():
                visit(child, f"{where}.{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                visit(child, f"{where}[{index}]")

    visit(schema, "")

    assert unchecked == [".$defs.CsvSamples.properties.path"]
    assert schema["properties"]["name"]["pattern"] == IDENTIFIER_PATTERN


def test_networks_beyond_the_verify_limits_are_rejected_before_building():
    from helpers import default_dict, spec_from

    data = default_dict()
    data["network"]["layers"][0]["size"] = 100_000
    data["network"]["weights"] = {"init": "random"}
    data["teacher"]["weights"] = {"init": "random"}
    with pytest.raises(SpecError, match=r"network.layers: 200002 neurons .* fix: use"):
        spec_from(data)


def test_the_ou_dt_hint_is_enough_when_followed():
    import re

    from helpers import default_dict, spec_from

    data = default_dict()
    data["simulation"]["t_stop"] = 777.0
    data["input"] = {"kind": "ou", "dt": 1e-5}
    with pytest.raises(SpecError) as info:
        spec_from(data)
    hint = re.search(r"raise dt to at least ([0-9.e+-]+)", str(info.value)).group(1)
    data["input"]["dt"] = float(hint)
    spec_from(data)  # accepted
