"""Regressions from the adversarial review of `vle-hw train` and `vle-hw draw`:
each input once gave a traceback, an hours-long silent run, a lost input file, a
misleading message or left files behind."""

import json
import math
import warnings
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import default_dict

import vle_hw.learning as L
from vle_hw.cli import main
from vle_hw.errors import SpecError
from vle_hw.gradients import train_windowed_adjoint
from vle_hw.network import build_network
from vle_hw.signals import build_inputs, build_targets
from vle_hw.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
LAGLINE = str(ROOT / "examples" / "lagline.yaml")


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _input_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def _csv_target_spec(tmp_path, csv_name):
    data = default_dict()
    data["simulation"]["t_stop"] = 1.0
    del data["teacher"]
    data["target"] = {"kind": "csv", "path": csv_name}
    rows = ["t,y"] + [f"{0.01 * i:.2f},{math.sin(0.01 * i):.6f}" for i in range(201)]
    (tmp_path / csv_name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return spec


# --- train: run length and adjoint windows ------------------------------------------


@pytest.mark.parametrize(
    ("t_stop", "fragments"),
    [
        ("1e300", ["simulation.t_stop must be <= 1e+09", "fix"]),
        ("1e9", ["loss samples", "at most 4e+04"]),
        ("1e5", ["loss samples", "at most 4e+04"]),
    ],
)
def test_train_refuses_a_run_too_long_to_hold(tmp_path, t_stop, fragments):
    # Once: 1e300 died in numpy.linspace with a traceback ("Maximum allowed size
    # exceeded"); 1e5 asked for 5e6 loss samples and days of ODE. 1e300 is now
    # outside the spec's range; 1e9, its top, is still too long for train.
    out = tmp_path / "out"
    result = _run("train", LAGLINE, "--t-stop", t_stop, "--out", out)
    _input_error(result, "--t-stop", *fragments)
    assert not out.exists()


def test_train_refuses_millions_of_adjoint_windows_up_front(tmp_path):
    # Once: --adjoint-window 1e-6 over 2 units ran the ODE, then 2e6 adjoint
    # windows with an ETA of 8 hours.
    out = tmp_path / "out"
    result = _run(
        "train", LAGLINE, "--t-stop", "2", "--adjoint-window", "1e-6", "--out", out
    )
    _input_error(result, "--adjoint-window = 1e-06", "2000000 adjoint windows", "fix")
    assert not out.exists()


def test_windowed_adjoint_library_refuses_too_many_windows():
    spec, _ = load_spec(LAGLINE)
    network = build_network(spec)
    with pytest.raises(SpecError, match="window = 1e-06 makes 400000000 adjoint"):
        train_windowed_adjoint(
            network, build_inputs(spec), build_targets(spec), 400.0, 1e-6
        )


# --- train: inputs are never outputs --------------------------------------------------


def test_train_never_overwrites_a_csv_it_reads_even_with_force(tmp_path):
    # Once: a target CSV named learning.json in the --out folder was deleted as a
    # "stale output" and replaced by the curves, exit 0.
    spec = _csv_target_spec(tmp_path, "learning.json")
    before = (tmp_path / "learning.json").read_bytes()
    result = _run("train", spec, "--out", tmp_path, "--force")
    _input_error(result, "learning.json", "is an input of this run")
    assert (tmp_path / "learning.json").read_bytes() == before
    assert not (tmp_path / "learning.png").exists()


def test_train_library_refuses_to_write_over_its_csv(tmp_path):
    spec_path = _csv_target_spec(tmp_path, "learning.png")
    spec, text = load_spec(str(spec_path))
    with pytest.raises(Exception, match="is an input of this run"):
        L.train(spec, text, tmp_path, force=True)
    assert (tmp_path / "learning.png").read_text().startswith("t,y")


def test_train_without_teacher_draws_without_an_empty_legend_warning(tmp_path):
    # Once: a CSV target (no teacher distance) printed matplotlib's "No artists
    # with labels found to put in legend" on every run.
    spec, text = load_spec(str(_csv_target_spec(tmp_path, "target.csv")))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = L.train(spec, text, tmp_path / "out")
    assert result.complete and (tmp_path / "out" / "learning.png").exists()
    assert not [w for w in caught if "legend" in str(w.message)]


# --- train: stopping ---------------------------------------------------------------


def test_interrupt_before_the_first_window_says_no_curves(tmp_path, monkeypatch):
    # Once: "interrupted at t = None: the partial curves are in learning.json and
    # learning.png", and learning.png did not exist.
    real = L.train
    monkeypatch.setattr(
        L, "train", lambda *a, **k: real(*a, **{**k, "should_stop": lambda: True})
    )
    out = tmp_path / "out"
    result = _run("train", LAGLINE, "--t-stop", "2", "--out", out)
    assert result.exit_code == 130, result.output
    assert "before the first window finished" in result.stderr
    assert "t = None" not in result.stderr
    assert json.loads((out / "learning.json").read_text())["complete"] is False
    assert not (out / "learning.png").exists()


def test_stopping_a_spice_run_leaves_no_worker_handoff_files(tmp_path):
    # Once: a stop after ngspice had finished left ngspice/status.json and a 4 MB
    # ngspice/vectors.npz (the worker's internal hand-off) beside the outputs.
    spec, text = load_spec(LAGLINE)
    out = tmp_path / "out"
    status = out / "ngspice" / "status.json"
    result = L.train(
        spec, text, out, t_stop=20.0, spice=True, should_stop=status.exists
    )
    assert result.complete is False
    assert sorted(p.name for p in (out / "ngspice").iterdir()) == ["ngspice.log"]
    assert json.loads((out / "learning.json").read_text())["complete"] is False


# --- draw and output paths --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shown"), [("x.pdf", "'.pdf'"), ("x", "'(none)'"), (".svg", "'(none)'")]
)
def test_draw_wrong_suffix_names_the_option_and_the_fix(tmp_path, name, shown):
    result = _run("draw", "vle_phi_tanh", "-o", tmp_path / name)
    _input_error(result, "-o/--output", shown, "fix: end the file name in .svg")
    assert list(tmp_path.iterdir()) == []


def test_draw_unwritable_folder_is_said_once(tmp_path):
    # Once: "cannot write a/x.svg: cannot write a/x.svg: a is not a writable folder".
    (tmp_path / "a").write_text("a file", encoding="utf-8")
    result = _run("draw", "vle_phi_tanh", "-o", tmp_path / "a" / "x.svg")
    _input_error(result, "is not a writable folder")
    assert result.stderr.count("cannot write") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["draw", "vle_phi_tanh", "-o", "a\nb.svg"],
        ["draw", "vle_phi_tanh", "-o", "a\x1b[2Jb.svg"],
        ["train", LAGLINE, "--t-stop", "1", "--out", "out\x1b[31m"],
    ],
)
def test_output_paths_with_control_characters_are_refused(tmp_path, monkeypatch, args):
    # Once: draw wrote a file named "a<newline>b.svg" and echoed the raw name.
    monkeypatch.chdir(tmp_path)
    result = _run(*args)
    assert result.exit_code == 2, result.output
    assert "contains control characters" in result.output
    assert list(tmp_path.iterdir()) == []
