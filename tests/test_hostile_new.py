"""Regressions from the adversarial review of the spec, op-amp and gradients
commands: each input once gave a traceback, a hang, a silently lost output,
non-finite JSON or a meaningless (NaN) result."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from helpers import default_dict

from vle_hw import gradients as G
from vle_hw.cli import main
from vle_hw.components import plan_components
from vle_hw.errors import SpecError
from vle_hw.network import build_network
from vle_hw.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


def _spec(tmp_path, mutate=None, name="spec.yaml"):
    data = default_dict()
    data["simulation"]["t_stop"] = 2.0
    if mutate:
        mutate(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _input_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- vle-hw spec ------------------------------------------------------------------


@pytest.mark.parametrize("second", ["a.out", "./a.out"])
def test_spec_refuses_two_formats_to_one_file(tmp_path, monkeypatch, second):
    # Once: both went into a dict keyed by path, so the CSV was silently lost
    # and the command exited 0 having written only the JSON.
    spec = _spec(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = _run("spec", spec, "--csv", "a.out", "--json", second)
    _input_error(result, "--csv", "--json", "a.out", "fix")
    assert not (tmp_path / "a.out").exists()


@pytest.mark.parametrize(
    ("section", "field", "value", "bound"),
    [
        ("components", "tracking_error_rel", 1e-320, ">= 1e-09"),
        ("process", "gm_over_id_per_volt", 1e-300, ">= 1"),
        ("process", "c_density_farad_per_m2", 1e-320, ">= 1e-09"),
        ("process", "r_sheet_ohm_per_sq", 1e-320, ">= 0.001"),
    ],
)
def test_spec_refuses_values_that_made_the_plan_infinite(
    tmp_path, section, field, value, bound
):
    # Once: exit 0 with "inf dB needed" and Infinity in the JSON plan.
    spec = _spec(tmp_path, lambda d: d.setdefault(section, {}).update({field: value}))
    out = tmp_path / "plan.json"
    result = _run("spec", spec, "--json", out)
    _input_error(result, f"{section}.{field}", bound, "fix")
    assert not out.exists()


def _tau_m1(value):
    def mutate(data):
        data["network"]["layers"][0]["tau_m"] = value

    return mutate


def test_spec_extreme_time_constant_is_an_input_error_not_a_traceback(tmp_path):
    # Once: ValueError "cannot round inf to a series value" as a traceback.
    # Since the spec ranges, the value is refused where it is read.
    def mutate(data):
        _tau_m1(1e300)(data)
        data["hardware"].update(c_mem_farad=1e-18, time_sec_per_unit=1e3)

    spec = _spec(tmp_path, mutate)
    _input_error(_run("spec", spec), "network.layers[0].tau_m", "<= 1e+09", "fix")


def test_spec_extremes_inside_the_ranges_give_a_finite_plan(tmp_path):
    # The far corners of the ranges still give a plan of finite numbers.
    def mutate(data):
        _tau_m1(1e9)(data)
        data["hardware"].update(c_mem_farad=1e-18, time_sec_per_unit=1e3)

    out = tmp_path / "plan.json"
    result = _run("spec", _spec(tmp_path, mutate), "--series", "exact", "--json", out)
    assert result.exit_code == 0, result.output
    json.loads(out.read_text(), parse_constant=_refuse_constant)


def _refuse_constant(constant):
    raise AssertionError(f"non-strict JSON constant {constant}")


@pytest.mark.filterwarnings("ignore::vle_hw.components.ComponentWarning")
@pytest.mark.parametrize("tau_m", [1e-300, 1e300])
def test_library_plan_with_infinite_numbers_is_refused_naming_the_part(tau_m):
    # Once (from the CLI, before the spec ranges): exit 0, "inf Hz needed" and
    # Infinity (invalid JSON) in --json. The ranges now refuse these values on
    # load; a caller that builds the network itself still meets this guard.
    spec = load_spec()[0]
    network = build_network(spec)
    layer = replace(
        network.layers[0], tau_m=np.full_like(network.layers[0].tau_m, tau_m)
    )
    network = replace(network, layers=(layer, *network.layers[1:]))
    exact = spec.components.model_copy(update={"series": "exact"})
    spec = spec.model_copy(update={"components": exact})
    with pytest.raises(SpecError, match="component plan.*l1_n0.*not a finite number"):
        plan_components(spec, network)


def test_spec_json_of_extreme_but_valid_values_is_strict_json(tmp_path):
    def mutate(data):
        data["components"] = {"tracking_error_rel": 1e-9}
        data["opamp"] = {"gbw_hz": 1e12}
        data["process"] = {
            "c_comp_farad": 1e-6,
            "supply_volt": 1e3,
            "gm_over_id_per_volt": 1,
            "c_density_farad_per_m2": 1e-9,
            "r_sheet_ohm_per_sq": 1e-3,
        }

    out = tmp_path / "plan.json"
    result = _run("spec", _spec(tmp_path, mutate), "--json", out)
    assert result.exit_code == 0, result.output

    data = json.loads(out.read_text(), parse_constant=_refuse_constant)
    assert math.isfinite(data["summary"]["power_watt"])


@pytest.mark.parametrize("command", ["spec", "gradients", "netlist"])
def test_empty_spec_path_names_the_problem(command):
    # Once: '' became '.', "spec file '.': unknown extension '(none)'".
    _input_error(_run(command, ""), "empty path", "fix")


# --- vle-hw gradients -------------------------------------------------------------


@pytest.mark.parametrize("omegas", ["1e-300", "1e-6", "0.01", "1000", "1e308"])
def test_omegas_that_would_run_for_hours_are_refused_at_once(tmp_path, omegas):
    # Once: 1e308 and 1e-6 each hung (> 200 s, no end in sight): the sine run
    # spans warm-up + 40 periods with no step or time limit.
    started = time.perf_counter()
    result = _run("gradients", "--window", "0", "1", "--omegas", omegas)
    _input_error(result, "--omegas", "outside [0.13, 205]", "fix")
    assert time.perf_counter() - started < 20  # before any integration


def test_too_many_omegas_are_refused():
    omegas = ",".join(str(0.2 + 0.01 * k) for k in range(65))
    result = _run("gradients", "--window", "0", "1", "--omegas", omegas)
    _input_error(result, "--omegas", "65", "64")


@pytest.mark.parametrize("option", [["--alignment"], ["--omegas", "1"]])
def test_alignment_with_beta_zero_is_an_input_error(tmp_path, option):
    # Once: exit 0 with cosine and norm ratio printed as nan (0/0).
    spec = _spec(tmp_path, lambda d: d["network"].update(beta=0.0))
    result = _run("gradients", spec, "--window", "0", "0.5", *option)
    _input_error(result, option[0], "network.beta = 0", "fix")


def test_library_alignment_refuses_beta_zero():
    network = build_network(load_spec()[0])
    with pytest.raises(SpecError, match="beta"):
        G.check_beta(replace(network, beta=0.0))
    with pytest.raises(SpecError, match="outside"):
        G.frequency_alignment([1e-6])


def test_sigint_exits_130_and_writes_nothing_before_the_gradient(tmp_path):
    spec = _spec(tmp_path, lambda d: d["simulation"].update(t_stop=60.0))
    out = tmp_path / "g.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vle_hw", "gradients", str(spec)]
        + ["--window", "0", "60", "--json", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job ignores SIGINT; give the child the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # wait until the forward pass has started (the header line is printed)
    first = proc.stdout.readline()
    assert first.startswith("gradients"), first
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; nothing written" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [spec]


# --- inputs are never outputs -----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["spec", "{spec}", "--csv", "{spec}", "--force"],
        ["netlist", "{spec}", "-o", "{spec}", "--force"],
        ["gradients", "{spec}", "--window", "0", "1", "--json", "{spec}", "--force"],
        ["verify", "{spec}", "--out", "{out}", "--json", "{spec}", "--force"],
        ["verify", "{spec}", "--out", "{out}", "--deck", "{spec}", "--force"],
        ["netlist", "{spec}", "-o", "{csv}", "--force"],
    ],
    ids=["spec", "netlist", "gradients", "verify-json", "verify-deck", "csv-target"],
)
def test_an_output_naming_an_input_is_refused_even_with_force(tmp_path, args):
    # Once: --force overwrote (verify: deleted first) the spec file itself.
    csv = tmp_path / "target.csv"
    csv.write_text("t,y\n0,0\n5,1\n", encoding="utf-8")

    def mutate(data):
        data["target"] = {"kind": "csv", "path": "target.csv"}

    spec = _spec(tmp_path, mutate)
    before = {p: p.read_bytes() for p in (spec, csv)}
    fill = {"spec": spec, "out": tmp_path / "out", "csv": csv}
    result = _run(*[a.format(**fill) for a in args])
    _input_error(result, "is an input of this run", "even with --force", "fix")
    assert {p: p.read_bytes() for p in (spec, csv)} == before
    assert not (tmp_path / "out").exists()
