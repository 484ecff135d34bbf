"""Regressions from the third adversarial review: each input once passed
validation and then failed (or misled) later, or was refused with a wrong fix."""

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import default_dict, spec_from

from vle_hw.cli import main
from vle_hw.errors import SpecError
from vle_hw.study import load_study

ROOT = Path(__file__).resolve().parent.parent


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _input_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _write(folder: Path, data: dict, name: str) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _stiff(data):
    # tau 1e-7 and 1e-8 are inside the ranges, but resolving them over 2 units
    # takes 1.2e10 steps.
    for layer in data["network"]["layers"]:
        layer.update(tau_m=1e-7, tau_r=1e-8)
    data["simulation"]["t_stop"] = 2.0


# --- spec -----------------------------------------------------------------------


def test_the_documented_top_frequency_is_accepted():
    # Once: omegas [1e9] was refused as "must be <= 1e+09" (the bound was 1 / 1e-9).
    data = default_dict()
    data["input"] = {"kind": "sines", "amplitudes": [1.0, 1.0], "omegas": [1e9, 1e-9]}
    spec, _ = spec_from(data)
    assert spec.input.omegas == [1e9, 1e-9]


def _layers(data, hidden):
    data["network"]["layers"][0]["size"] = hidden
    data["network"]["weights"] = {"init": "random", "std": 0.1}
    data["teacher"]["weights"] = {"init": "random", "std": 0.1}


def test_the_neuron_limit_counts_the_teacher():
    # Once: a 1 -> 295 -> 1 student with a teacher (592 neurons) was accepted,
    # and verify then spent minutes in the ODE reference.
    data = default_dict()
    _layers(data, 149)  # (149 + 1) x 2 = 300 neurons: at the limit
    spec_from(data)
    _layers(data, 150)
    with pytest.raises(SpecError, match="302 neurons .*student and teacher"):
        spec_from(data)
    del data["teacher"]
    data["target"] = {"kind": "csv", "path": "y.csv"}
    spec, _ = spec_from(data)  # the student alone fits
    assert spec.teacher is None


# --- explore: what would fail every run is refused up front ----------------------


@pytest.mark.parametrize(
    ("fixed", "fragments"),
    [
        ({"network.eta_tau": 1.0}, ["network.eta_tau = 1", "fix: set"]),
        ({"simulation.t_stop": 1.0e6}, ["6e+08 time steps", "fix: shorten"]),
    ],
)
def test_a_study_whose_every_run_would_fail_is_refused_before_any(
    tmp_path, fixed, fragments
):
    # Once: the study started, every run failed (after the ODE reference had run
    # up to the run timeout), and explore exited 0; --dry-run exited 0 too.
    study = _write(
        tmp_path,
        {"name": "s", "fixed": fixed, "sweep": [{"network.eta": [0.0, 1.0]}]},
        "s.yaml",
    )
    out = tmp_path / "out"
    for extra in (["--dry-run"], ["--out", out, "--workers", "1"]):
        _input_error(_run("explore", study, *extra), *fragments)
    assert not out.exists()


def test_a_knob_may_name_a_field_of_any_input_kind(tmp_path):
    # Once: "'offset' is not a field of input" on a sines base: the schema walk
    # followed only the first kind of the input union (the smoothed square).
    base = _write(
        tmp_path, yaml.safe_load((ROOT / "examples/lagnet.yaml").read_text()), "b.yaml"
    )
    study = _write(
        tmp_path,
        {
            "name": "s",
            "base": "b.yaml",
            "fixed": {"simulation.t_stop": 2.0},
            "sweep": [{"input.offset": [0.0, 0.5]}],
        },
        "s.yaml",
    )
    assert base.exists()
    assert [r.spec.input.offset for r in load_study(study).runs] == [0.0, 0.5]


def test_an_unknown_input_field_lists_the_fields_of_every_kind(tmp_path):
    study = _write(
        tmp_path, {"name": "s", "sweep": [{"input.offzet": [0.0, 0.5]}]}, "s.yaml"
    )
    with pytest.raises(SpecError) as info:
        load_study(study)
    text = str(info.value)
    assert "did you mean 'offset'" in text
    assert all(name in text for name in ("omegas", "period", "dt", "path"))


def test_a_knob_on_an_absent_list_says_to_write_the_list_out(tmp_path):
    # Once: "fix: an index below 0".
    study = _write(
        tmp_path, {"name": "s", "fixed": {"teacher.layers[0].tau_m": 2.0}}, "s.yaml"
    )
    with pytest.raises(SpecError) as info:
        load_study(study)
    assert "write layers out in the base spec" in str(info.value)
    assert "below 0" not in str(info.value)


# --- train and gradients: the same step budget as verify -------------------------


def test_train_refuses_a_stiff_spec_up_front(tmp_path):
    # Once: an estimate of 79 hours, no timeout; verify refused the same spec.
    data = default_dict()
    _stiff(data)
    out = tmp_path / "out"
    result = _run("train", _write(tmp_path, data, "stiff.yaml"), "--out", out)
    _input_error(result, "1.2e+10 time steps", "fix: shorten --t-stop")
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf"])
def test_train_names_the_adjoint_window_option(tmp_path, value):
    # Once: "adjoint_window = nan ... fix: give a adjoint_window".
    result = _run(
        "train", "--t-stop", "2", "--adjoint-window", value, "--out", tmp_path / "o"
    )
    _input_error(result, "--adjoint-window", "fix")
    assert "adjoint_window" not in result.stderr


def test_gradients_refuses_a_window_too_long_to_integrate(tmp_path):
    # Once: t_stop 1e9 and --window 0 1e9 sat at 0 % for minutes.
    data = default_dict()
    data["simulation"]["t_stop"] = 1e9
    spec = _write(tmp_path, data, "long.yaml")
    result = _run("gradients", spec, "--window", "0", "1e9")
    _input_error(result, "6e+11 time steps", "fix: shorten --window T1")


@pytest.mark.parametrize("t1", ["1e-300", "5e-324"])
def test_gradients_refuses_a_window_below_the_shortest_time(t1):
    # Once: exit 0 with nan cosines.
    result = _run("gradients", "--window", "0", t1, "--alignment")
    _input_error(result, "--window", "below 1e-09", "fix")
