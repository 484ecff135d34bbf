"""The op-amp level: the macromodel cell, the stages built from it, and LagLine.

Each check of a formula has an independent counterpart: sympy nodal analysis
of the circuit as drawn, and real ngspice (operating point, AC, transient).
"""

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp
import yaml
from click.testing import CliRunner
from helpers import default_dict, spec_from

from vle_hw.cli import main
from vle_hw.components import (
    ComponentWarning,
    design_amplifier,
    design_integrator,
    stage_error_symbolic,
)
from vle_hw.errors import SpecError
from vle_hw.netlist import _library_lines
from vle_hw.opamp import (
    LIBRARY_PATH,
    OPAMP_CELL,
    library_text,
    macromodel_params,
    macromodel_text,
    stage_elements,
)
from vle_hw.pipeline import build_deck
from vle_hw.spec import OpAmpSpec


def _ngspice(tmp_path, body: list[str], control: list[str], op=None) -> dict:
    """Run a small deck with the macromodel; return the values echoed as 'val k v'."""
    ngspice = shutil.which("ngspice")
    assert ngspice, "ngspice is not installed: sudo apt-get install ngspice"
    params = macromodel_params(op or OpAmpSpec())
    deck = ["opamp test", macromodel_text(params), *body, ".control", *control]
    deck += ["quit 0", ".endc", ".end", ""]
    (tmp_path / "t.cir").write_text("\n".join(deck))
    proc = subprocess.run(
        [ngspice, "-b", "t.cir"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = {}
    for line in proc.stdout.splitlines():
        if line.startswith("val "):
            _, key, value = line.split()
            values[key] = float(value)
    return values


def _echo(name: str, expr: str) -> list[str]:
    return [f"let {name} = {expr}", f'echo "val {name} $&{name}"']


# --- the macromodel cell -------------------------------------------------------


def test_library_file_is_generated_from_the_code_and_is_a_clean_cell():
    assert LIBRARY_PATH.read_text(encoding="utf-8") == library_text(), (
        "circuits/opamp.lib is stale: run python scripts/regenerate.py"
    )
    assert _library_lines(macromodel_text())  # accepted as a deck cell block


def test_macromodel_open_loop_gain_symbolic_is_single_pole():
    # nodal analysis of the linearised cell: gm into R1 || C1, unity buffer
    a0, gbw, s = sp.symbols("a0 gbw s", positive=True)
    r1 = sp.Integer(10) ** 6
    c1 = a0 / (2 * sp.pi * gbw * r1)
    gm = a0 / r1
    vd, n1 = sp.symbols("vd n1")
    sol = sp.solve(gm * vd - n1 / r1 - s * c1 * n1, n1)[0]
    gain = sp.simplify(sol / vd)
    expected = a0 / (1 + s * a0 / (2 * sp.pi * gbw))
    assert sp.simplify(gain - expected) == 0
    # GBW: |A(j w)| w / (2 pi) -> gbw for w >> w_p
    w = sp.Symbol("w", positive=True)
    hf = sp.limit(sp.Abs(gain.subs(s, sp.I * w)) * w / (2 * sp.pi), w, sp.oo)
    assert sp.simplify(hf - gbw) == 0


def test_macromodel_in_ngspice_dc_gain_gbw_offset_swing_and_slew(tmp_path):
    op = OpAmpSpec(a0_db=80.0, gbw_hz=1e7, offset_volt=1e-3, slew_volt_per_sec=1e6)
    # open loop: dc gain with a load, AC gain well above the pole, offset
    values = _ngspice(
        tmp_path,
        [
            "vin inp 0 dc 0 ac 1",
            "x1 inp 0 out vle_opamp vos_volt=0",
            "rl out 0 1e4",
            # follower: output = offset (loop gain 1e4)
            "x2 0 f f vle_opamp",
            # saturated comparator: output at the swing
            "vbig big 0 dc 0.1",
            "x3 big 0 sat vle_opamp",
            # slew: follower driven by a 1 V step
            "vstep st 0 pulse(0 1 1e-7 1e-10 1e-10 1 2)",
            "x4 st fs fs vle_opamp",
        ],
        [
            "op",
            *_echo("vf", "v(f)"),
            *_echo("vsat", "v(sat)"),
            "ac lin 1 1e5 1e5",
            *_echo("mag", "mag(v(out))"),
            *_echo("ph", "ph(v(out))"),
            "tran 1e-9 1.2e-6",
            "linearize v(fs)",
            *_echo("v3", "v(fs)[400]"),
            *_echo("v5", "v(fs)[600]"),
        ],
        op,
    )
    a0 = 1e4
    # follower output = vos * A0/(1 + A0) (rout with no load: no drop)
    assert values["vf"] == pytest.approx(1e-3 * a0 / (1 + a0), rel=1e-3)
    assert values["vsat"] == pytest.approx(2.5, abs=0.06)
    # |A(j 2 pi 1e5)| = a0 / |1 + j f a0 / gbw| (f a0 / gbw = 100), load 1e4 + 50
    expected = a0 / abs(1 + 1j * 1e5 * a0 / 1e7) * 1e4 / (1e4 + 50)
    assert values["mag"] == pytest.approx(expected, rel=1e-3)
    assert values["ph"] == pytest.approx(-math.atan(100), abs=1e-3)
    # slew-limited ramp: 1e6 V/s over 200 ns between samples 400 and 600 (1 ns)
    assert (values["v5"] - values["v3"]) / 200e-9 == pytest.approx(1e6, rel=0.05)


# --- stages built from the macromodel --------------------------------------------


def _integrator():
    return design_integrator(
        "mem", "neuron", "u", "out", 1e-5, {"a": 1.0, "b": 0.5}, 1e-9, "E96"
    )


def _amplifier():
    return design_amplifier("ro", "err", "e", "out", {"a": -9.0, "b": 10.0}, 1e4, "E96")


def _stage_deck(stage, sources: dict[str, str]) -> list[str]:
    lines = [f"v{node} {node} 0 {src}" for node, src in sources.items()]
    for element in stage_elements(stage):
        lines.append(" ".join([element.name, *element.nodes, element.value]))
    return lines


@pytest.mark.parametrize("kind", ["integrator", "amplifier"])
def test_stage_first_order_error_matches_exact_nodal_analysis(kind):
    exact, first = stage_error_symbolic(kind, 2)
    a = sp.Symbol("A", positive=True)
    values = {s: 1e-4 for s in exact.free_symbols if s.name.startswith("G")} | {
        sp.Symbol("s"): 1e4j
    }
    values.update({s: 1e-9 for s in exact.free_symbols if s.name == "C_f"})
    for big in (1e4, 1e6):
        e_exact = complex(exact.subs(values).subs(a, big))
        e_first = complex(first.subs(values).subs(a, big))
        assert abs(e_exact - e_first) <= 10 * abs(e_first) ** 2
    # the noise gain: 1 + sum G / (G_f + s C_f) (integrator), 1 + sum G / G_f
    g1, g2, gf, cf = sp.symbols("G_1 G_2 G_f C_f", positive=True)
    s = sp.Symbol("s")
    y_f = gf + s * cf if kind == "integrator" else gf
    hand = -(1 + (g1 + g2) / y_f) / a
    assert sp.simplify(first - hand) == 0


def test_integrator_stage_in_ngspice_dc_gains_and_ac_error(tmp_path):
    stage = _integrator()
    op = OpAmpSpec(a0_db=60.0, gbw_hz=1e6)
    values = _ngspice(
        tmp_path,
        _stage_deck(stage, {"a": "dc 0.1 ac 1", "b": "dc 0.2"}),
        [
            "op",
            *_echo("dc", "v(out)"),
            "ac lin 1 1e4 1e4",
            *_echo("re", "real(v(out))"),
            *_echo("im", "imag(v(out))"),
        ],  # fmt: skip
        op,
    )
    a0, w_t = 1e3, 2 * math.pi * 1e6
    k = stage.realised
    r_f = next(p.value for p in stage.parts if p.role.startswith("R_f"))
    c_f = next(p.value for p in stage.parts if p.kind == "c")
    g_sum = sum(1 / p.value for p in stage.parts if p.role.startswith("R_in"))
    # static: -(k_a 0.1 + k_b 0.2) / (1 + NG_dc / A0), NG_dc = 1 + R_f sum G
    ng_dc = 1 + r_f * g_sum
    ideal_dc = -(k["a"] * 0.1 + k["b"] * 0.2)
    assert values["dc"] == pytest.approx(ideal_dc / (1 + ng_dc / a0), rel=2e-3)
    # small signal at 10 kHz: exact single-pole nodal result against ngspice
    s = 2j * math.pi * 1e4
    inv_a = 1 / a0 + s / w_t  # 1 / A(s) with A = A0 / (1 + s A0 / w_t)
    y_f = 1 / r_f + s * c_f
    ideal = -k["a"] / (r_f * y_f)
    predicted = ideal / (1 + inv_a * (1 + g_sum / y_f))
    got = values["re"] + 1j * values["im"]
    assert abs(got / predicted - 1) < 2e-3
    assert abs(got / ideal - 1) > 1e-2  # the op-amp error is visible here


def test_amplifier_stage_in_ngspice_gain_rho_and_weight_one_minus_rho(tmp_path):
    stage = _amplifier()
    assert stage.noise_gain_dc == pytest.approx(10.0)
    op = OpAmpSpec(a0_db=60.0, gbw_hz=1e6)
    values = _ngspice(
        tmp_path,
        _stage_deck(stage, {"a": "dc 0.01 ac 1", "b": "dc 0.02"}),
        [
            "op",
            *_echo("dc", "v(out)"),
            "ac lin 1 2e4 2e4",
            *_echo("re", "real(v(out))"),
            *_echo("im", "imag(v(out))"),
        ],  # fmt: skip
        op,
    )
    k = stage.realised
    assert k["a"] == pytest.approx(-9.0, rel=0.02) and k["b"] == pytest.approx(
        10, rel=0.02
    )
    ideal_dc = k["a"] * 0.01 + k["b"] * 0.02
    assert values["dc"] == pytest.approx(ideal_dc / (1 + 10 / 1e3), rel=2e-3)
    s = 2j * math.pi * 2e4
    inv_a = 1 / 1e3 + s / (2 * math.pi * 1e6)
    predicted = k["a"] / (1 + 10 * inv_a)
    got = values["re"] + 1j * values["im"]
    assert abs(got / predicted - 1) < 2e-3


@pytest.mark.parametrize("which", ["integrator", "amplifier"])
def test_offset_shift_matches_the_noise_gain_prediction(tmp_path, which):
    stage = _integrator() if which == "integrator" else _amplifier()
    vos = 2e-3
    op = OpAmpSpec(offset_volt=vos)
    values = _ngspice(
        tmp_path,
        _stage_deck(stage, {"a": "dc 0", "b": "dc 0"}),
        ["op", *_echo("dc", "v(out)")],
        op,  # fmt: skip
    )
    # all inputs at 0 V: output = vos * NG_dc (offset in series with the + input)
    # / (1 + NG_dc / A0); NG of the rounded parts, nominal within 1 %
    ng = stage.noise_gain_realised
    assert ng == pytest.approx(stage.noise_gain_dc, rel=1e-2)
    predicted = vos * ng / (1 + ng / 1e5)
    assert values["dc"] == pytest.approx(predicted, rel=0.05)
    assert values["dc"] == pytest.approx(predicted, rel=1e-4)  # it is exact


# --- the op-amp level deck and LagLine ------------------------------------------


def test_opamp_deck_is_standalone_deterministic_and_says_what_stays_behavioural():
    spec, text = spec_from(default_dict())
    deck = build_deck(spec, text, "opamp")
    assert deck.text == build_deck(spec, text, "opamp").text
    lines = deck.text.splitlines()
    assert lines[0] == "vle_hw opamp deck lagline"
    assert "* level: opamp" in lines
    assert any(line.startswith("* behavioural_cells: phi") for line in lines)
    assert f".subckt {OPAMP_CELL} inp inn out params: a0=100000.0" in deck.text
    # every membrane and error unit is an op-amp stage: 12 instances
    assert sum(line.startswith("x") for line in lines) == 12
    # real series values only: every resistor of a stage is an E96 number
    from vle_hw.components import E96

    for line in lines:
        if line.startswith(("rmem_", "ruprosp_", "reout_", "rerr_")):
            value = float(line.split()[-1])
            mantissa = value / 10 ** math.floor(math.log10(value))
            assert min(abs(mantissa - m) for m in E96) < 1e-9, line


def test_bad_opamp_values_are_spec_errors_naming_the_field():
    data = default_dict()
    data["opamp"] = {"gbw_hz": 0.0}
    with pytest.raises(SpecError, match=r"opamp\.gbw_hz"):
        spec_from(data)
    data["opamp"] = {"a0_db": "high"}
    with pytest.raises(SpecError, match=r"opamp\.a0_db"):
        spec_from(data)
    data = default_dict()
    data["tolerances"] = {"opamp": {"nrmse": -1.0, "weight_rel": 0.1}}
    with pytest.raises(SpecError, match=r"tolerances\.opamp\.nrmse"):
        spec_from(data)


def test_level_tolerances_default_to_1e_2_for_the_opamp_level():
    spec, _ = spec_from(default_dict())
    assert spec.tolerances.for_level("opamp") == (1e-2, 5e-2)
    assert spec.tolerances.for_level("behavioural") == (1e-4, 1e-3)


def _lagline(tmp_path, t_stop, **opamp):
    data = default_dict()
    data["simulation"]["t_stop"] = t_stop
    if opamp:
        data["opamp"] = opamp
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow
def test_lagline_opamp_level_every_signal_within_1e_2_at_100db_100mhz(tmp_path):
    spec = _lagline(tmp_path, 20.0)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["verify", str(spec), "--level", "opamp", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "result.json").read_text())
    assert data["level"] == "opamp"
    assert data["tolerances"]["nrmse"] == 1e-2
    worst = max(s["nrmse"] for s in data["signals"])
    assert worst <= 1e-2
    assert worst > 1e-5  # the op-amp and E96 errors are really there
    assert (out / "lagline.cir").read_text().startswith("vle_hw opamp deck")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::vle_hw.components.ComponentWarning")  # read below
def test_lagline_opamp_level_fails_at_1_mhz_gbw_and_warns_near_the_swing(tmp_path):
    spec = _lagline(tmp_path, 10.0, gbw_hz=1e6, swing_volt=0.15)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["verify", str(spec), "--level", "opamp", "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    data = json.loads((out / "result.json").read_text())
    assert any("swing +-0.15 V" in w for w in data["level_warnings"])
    assert any("uprosp" in w for w in data["level_warnings"])


def test_component_warning_is_a_user_warning():
    assert issubclass(ComponentWarning, UserWarning)
    assert np.isfinite(macromodel_params(OpAmpSpec())["a0"])


def test_non_convergence_message_names_op_amp_causes_and_the_time_reached():
    from vle_hw.runner import _diagnose, _last_time_reported

    spec, text = spec_from(default_dict())
    deck = build_deck(spec, text, "opamp")
    log = ["doAnalyses: TRAN:  Timestep too small; time = 1.25e-05, timestep = 1e-20"]
    message = _diagnose(log, deck.text)
    assert "op-amp stage stuck at its rails" in message
    assert "opamp.swing_volt" in message
    assert "op-amp" not in _diagnose(log, build_deck(spec, text).text)
    assert _last_time_reported(log) == "Last time ngspice reported: 1.25e-05 s. "


@pytest.mark.slow
def test_network_offset_shift_matches_the_noise_gain_prediction(tmp_path):
    # teacher neuron 1 of LagLine, constant input, steady start: the offset of
    # every op-amp shifts -u by vos NG_int and u_prosp by vos NG_amp + w vos NG_int
    from vle_hw.components import network_stages
    from vle_hw.network import build_network
    from vle_hw.runner import run_deck

    vos = 5e-3
    shifts = {}
    for offset in (0.0, vos):
        data = default_dict()
        data["network"]["eta"] = 0.0
        data["input"] = {"kind": "sines", "amplitudes": [0.0], "omegas": [1.0],
                         "offset": 0.5}  # fmt: skip
        data["initial_state"] = "steady"
        data["simulation"]["t_stop"] = 1.0
        data["opamp"] = {"offset_volt": offset}
        spec, text = spec_from(data)
        deck = build_deck(spec, text, "opamp")
        trace = run_deck(deck, tmp_path / f"d{offset}.cir", tmp_path / f"n{offset}", 60)
        shifts[offset] = {k: v[-1] for k, v in trace.signals.items()}
    stages = {st.name: st for st in network_stages(spec, build_network(spec))}
    s_x = spec.hardware.signal_volt_per_unit
    ng_int = stages["tmem_l1_n0"].noise_gain_realised
    amp = stages["tuprosp_l1_n0"]
    d_un = vos * ng_int  # volts on un = -u s_x
    d_up = vos * amp.noise_gain_realised + amp.realised["tun_l1_n0"] * d_un
    measured_u = shifts[vos]["teacher_u_l1_n0"] - shifts[0.0]["teacher_u_l1_n0"]
    measured_up = (
        shifts[vos]["teacher_u_prosp_l1_n0"] - shifts[0.0]["teacher_u_prosp_l1_n0"]
    )
    assert measured_u == pytest.approx(-d_un / s_x, rel=0.05)
    assert measured_up == pytest.approx(d_up / s_x, rel=0.05)


def test_opamp_deck_warns_for_parts_outside_the_component_ranges():
    data = default_dict()
    data["components"] = {"r_max_ohm": 5e4}
    spec, text = spec_from(data)
    with pytest.warns(ComponentWarning) as record:  # all of them, none leaks
        build_deck(spec, text, "opamp")
    texts = [str(w.message) for w in record]
    assert any(re.search(r"rmem_l1_n0_e_l1_n0 .* = 1e\+06 ohm", t) for t in texts)
