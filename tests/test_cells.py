"""Every cell of circuits/: its transfer function checked symbolically against
the equation term it implements (sympy nodal analysis, tests/mna.py), and its
static and small-signal behaviour in real ngspice.
"""

import warnings

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner
from helpers import default_dict, spec_from
from mna import from_body, node, s, spice_expr

from vle_hw import cells
from vle_hw import derivation as d
from vle_hw import transistor as tr
from vle_hw.cli import main
from vle_hw.draw import cell_names, draw_cell
from vle_hw.errors import SpecError, VleLimitationWarning
from vle_hw.netlist import _library_lines, write_deck
from vle_hw.network import build_network
from vle_hw.signals import build_inputs, build_targets

X = sp.Symbol("X")  # the small-signal drive
u0 = sp.Symbol("u0", real=True)  # operating point, model units


def _pos(*names):
    return {n: sp.Symbol(n, positive=True) for n in names}


def _b_expr(cell, params):
    """The expression of a cell's single B-source (``b1 out 0 v = ...``)."""
    (line,) = [ln for ln in cell.body if ln.startswith("b1 ")]
    return spice_expr(line.split("=", 1)[1], params)


def _laplace_node(rate, state, drive):
    """X(s)/D(s) of dx/dt = rate(x, d) (the derivation's first-order node)."""
    xs, ds = sp.symbols("xs ds")
    return sp.solve(sp.Eq(s * xs, rate.subs({state: xs, drive: ds})), xs)[0] / ds


# --- the library files ----------------------------------------------------------------
def test_mos_library_file_is_current():
    assert tr.LIBRARY_PATH.read_text(encoding="utf-8") == tr.library_text()


def test_mos_library_passes_the_deck_writers_cell_definition_check():
    assert len(_library_lines(tr.library_text())) > 50


def test_slope_factor_matches_the_bsim3_card_formula_by_hand():
    # n = 1 + C_dep/C_ox by hand: phi_s = 2 U_T ln(3.9e23/1.45e16) = 0.8849 V,
    # X_dep = 5.416e-8 m, C_dep = 1.9127e-3, C_ox = 8.6328e-3 F/m^2.
    assert tr.N_SLOPE == pytest.approx(1 + 1.9127e-3 / 8.6328e-3, rel=2e-4)


# --- symbolic: behavioural cells ------------------------------------------------------
def test_leaky_integrator_is_the_first_order_node_of_the_derivation():
    p = _pos("tau_sec", "c_farad", "gain")
    mna = from_body(cells.leaky_integrator().body, p)
    mna.add("v", "vdrive", ("in", "0"), X)
    h = mna.solve()["V_out"] / X
    # (B2) tau_r dv/dt = -v + alpha, at tau_r = tau_sec, times the input gain
    node_h = _laplace_node(d.derive("linear").dv_dt, d.v, d.alpha)
    assert sp.simplify(h - p["gain"] * node_h.subs(d.tau_r, p["tau_sec"])) == 0


def test_prospective_readout_is_f2_and_after_its_integrator_the_forward_filter():
    p = _pos("tau_m", "tau_r")
    expr = _b_expr(cells.prospective_readout(), p)
    eq = d.derive("linear")
    f2 = eq.u_prosp.subs({d.gamma: 0, d.u: node("state"), d.I_syn: node("drive")})
    f2 = f2.subs({d.tau_m: p["tau_m"], d.tau_r: p["tau_r"]})
    assert sp.simplify(expr - f2) == 0
    # integrator tau_m, gain 1, then the readout: (1 + s tau_r) / (1 + s tau_m)
    h_int = 1 / (1 + s * p["tau_m"])
    h = expr.subs({node("state"): h_int * X, node("drive"): X}) / X
    assert sp.simplify(h - (1 + s * p["tau_r"]) / (1 + s * p["tau_m"])) == 0


def test_error_readout_is_b3_and_inverts_the_forward_filter():
    p = _pos("tau_m", "tau_r")
    expr = _b_expr(cells.error_readout(), p)
    eq = d.derive("linear")
    b3 = eq.e.subs({d.v: node("state"), d.alpha: node("drive")})
    assert sp.simplify(expr - b3.subs({d.tau_m: p["tau_m"], d.tau_r: p["tau_r"]})) == 0
    h_int = 1 / (1 + s * p["tau_r"])
    h = expr.subs({node("state"): h_int * X, node("drive"): X}) / X
    forward = (1 + s * p["tau_r"]) / (1 + s * p["tau_m"])
    assert sp.simplify(h * forward - 1) == 0


@pytest.mark.parametrize("name", d.PHI_NAMES)
def test_phi_cells_are_phi_and_phi_prime_of_the_derivation(name):
    p = _pos("s_volt")
    eq = d.derive(name)
    u = sp.Symbol("u", real=True)
    phi = _b_expr(cells.phi_cell(name), p).subs(node("in"), p["s_volt"] * u)
    dphi = _b_expr(cells.phi_cell(name, True), p).subs(node("in"), p["s_volt"] * u)
    for got, want in ((phi / p["s_volt"], eq.phi), (dphi, eq.phi_prime)):
        want = want.subs(d.u_prosp, u)
        diff = sp.simplify(got - want)
        # simplify may not close log/exp forms: then check at points
        values = [complex(diff.subs(u, x)).real for x in (-3.0, -0.5, 0.0, 1.7)]
        assert diff == 0 or np.allclose(values, 0, atol=1e-12)


def test_plastic_synapse_injects_w_times_r_the_term_w_r_pre_of_f1():
    p = _pos("g_siemens")
    (line,) = cells.plastic_synapse().body
    current = spice_expr(line.split("=", 1)[1], p)
    # its small-signal transconductance from the presynaptic rate is g * w
    assert sp.simplify(sp.diff(current, node("pre")) - p["g_siemens"] * node("w")) == 0
    assert sp.simplify(current - p["g_siemens"] * node("w") * node("pre")) == 0


def test_weight_store_integrates_the_plasticity_rule():
    p = _pos("c_farad", "s_w", "s_t", "eta", "s_err", "s_sig")
    (line,) = [ln for ln in cells.weight_store().body if ln.startswith("b1")]
    current = spice_expr(line.split("=", 1)[1], p)
    # C dV/dt = i: in model units dW/dt = i s_t / (C s_w), which is the rule
    rate = current * p["s_t"] / (p["c_farad"] * p["s_w"])
    rule = d.derive("linear").dW_dt.subs(
        {
            d.eta: p["eta"],
            d.e: node("e") / p["s_err"],
            d.r_pre: node("pre") / p["s_sig"],
        }
    )
    assert sp.simplify(rate - rule) == 0


# --- symbolic: MOS cells in weak-inversion small signal ------------------------------
def _mos_params(cell):
    return {k: sp.Symbol(k, positive=True) for k in [*cell.params, "u_t"]}


def _body(cell):
    """The cell body with the thermal voltage as the symbol u_t."""
    return tuple(line.replace(repr(tr.U_T_VOLT), "u_t") for line in cell.body)


def _gm(current, p):
    """Weak inversion: gm = I_D / (n U_T)."""
    return current / (p["n_slope"] * p["u_t"])


def _slope(mna, port="out"):
    mna.add("v", "vdrive", ("in", "0"), X)
    return mna.solve()[f"V_{port}"] / X


def test_tanh_pair_small_signal_slope_is_one_minus_tanh_squared():
    cell = tr.phi_tanh_cell()
    p = _mos_params(cell)
    t = sp.tanh(u0)
    gm = {
        "m1p": _gm(p["i_bias_amp"] * (1 + t) / 2, p),
        "m1n": _gm(p["i_bias_amp"] * (1 - t) / 2, p),
    }
    slope = _slope(from_body(_body(cell), p, gm))
    # d v(out) / d v(in) = s_volt phi'(u0) / s_volt = phi'(u0)
    want = d.derive("tanh").phi_prime.subs(d.u_prosp, u0)
    assert sp.simplify(slope - want) == 0


def test_softplus_cell_small_signal_slope_is_the_logistic_phi_prime():
    cell = tr.phi_softplus_cell()
    p = _mos_params(cell)
    i_u = p["i_unit_amp"]
    gm = {
        "mb": _gm(i_u, p),
        "m1": _gm(i_u * sp.exp(u0), p),
        "ms": _gm(i_u * (1 + sp.exp(u0)), p),
    }
    slope = _slope(from_body(_body(cell), p, gm))
    want = d.derive("softplus").phi_prime.subs(d.u_prosp, u0)
    assert sp.simplify(slope - want) == 0


def test_logistic_branch_small_signal_slope_is_phi_second_of_softplus():
    cell = tr.dphi_softplus_cell()
    p = _mos_params(cell)
    sig = 1 / (1 + sp.exp(-u0))
    gm = {
        "m1p": _gm(p["i_bias_amp"] * sig, p),
        "m1n": _gm(p["i_bias_amp"] * (1 - sig), p),
    }
    slope = _slope(from_body(_body(cell), p, gm))
    # v(out) = phi'(v(in)/s_volt) volts: slope phi''(u0) / s_volt
    want = d.derive("softplus").phi_second.subs(d.u_prosp, u0) / p["s_volt"]
    assert sp.simplify(slope - want) == 0


def test_transconductor_small_signal_is_its_weight_conductance():
    cell = tr.ota_cell()
    p = _mos_params(cell)
    gm = {"m1p": _gm(p["i_bias_amp"] / 2, p), "m1n": _gm(p["i_bias_amp"] / 2, p)}
    mna = from_body(_body(cell), p, gm)
    mna.add("v", "vout", ("out", "0"), 0)
    mna.add("v", "vdrive", ("in", "0"), X)
    g = mna.solve()["I_vout"] / X
    assert sp.simplify(g - p["g_siemens"]) == 0


def test_gilbert_small_signal_in_a_is_k_times_b_the_term_w_r():
    cell = tr.gilbert_cell()
    p = _mos_params(cell)
    x_b = sp.Symbol("x_b", positive=True)  # lower-pair drive, x_fs v(b) / b_fs
    i5 = p["i_bias_amp"] * (1 + sp.tanh(x_b)) / 2
    i6 = p["i_bias_amp"] * (1 - sp.tanh(x_b)) / 2
    gm = {
        "m1": _gm(i5 / 2, p),
        "m2": _gm(i5 / 2, p),
        "m3": _gm(i6 / 2, p),
        "m4": _gm(i6 / 2, p),
        "m5": _gm(i5, p),
        "m6": _gm(i6, p),
    }
    mna = from_body(_body(cell), p, gm)
    mna.add("v", "vout", ("out", "0"), 0)
    mna.add("v", "vb", ("b", "0"), 0)
    mna.add("v", "va", ("a", "0"), X)
    di_da = mna.solve()["I_vout"] / X
    v_b = x_b * p["b_fs_volt"] / p["x_fs"]
    # d(k a b)/da = k b, times the pair's compression tanh(x_b)/x_b
    assert sp.simplify(di_da - p["k_amp_per_volt2"] * v_b * sp.tanh(x_b) / x_b) == 0
    assert sp.limit(di_da / v_b, x_b, 0) == p["k_amp_per_volt2"]


# --- SPICE: behavioural cells, static and small-step ---------------------------------
def test_behavioural_cells_static_transfer_in_ngspice(tmp_path):
    statics = [c for c in cells.all_cells() if c.name.startswith("vle_phi")]
    instances = [(f"x{k}", (f"o{k}", "in"), c.name) for k, c in enumerate(statics)]
    instances += [
        ("xp", ("op", "st", "in"), "vle_prospective_readout tau_m=2.0 tau_r=0.1"),
        ("xe", ("oe", "st", "in"), "vle_error_readout tau_m=2.0 tau_r=0.1"),
        ("xs", ("osyn", "w", "in"), "vle_plastic_synapse g_siemens=0.001"),
        ("rs", ("osyn", "0"), "1000.0"),
    ]
    probes = ["in", "op", "oe", "osyn"] + [f"o{k}" for k in range(len(statics))]
    sig, _ = tr.sweep_cells(
        "behavioural_static",
        [*statics, *cells.all_cells()[1:3], cells.plastic_synapse()],
        instances,
        {"in": (-0.3, 0.3), "st": 0.05, "w": 0.7},
        probes,
        tmp_path,
        points=61,
    )
    v_in, u = sig["in"], sig["in"] / 0.1
    for k, c in enumerate(statics):
        name = c.name.removeprefix("vle_phi_")
        derivative = name.startswith("d")
        eq = d.derive(name[1:] if derivative else name)
        expr = eq.phi_prime if derivative else eq.phi * 0.1
        want = np.broadcast_to(sp.lambdify(d.u_prosp, expr, "numpy")(u), u.shape)
        # ngspice converges node voltages to vntol = 1e-6 V
        np.testing.assert_allclose(
            sig[f"o{k}"], want, atol=1e-6, rtol=0, err_msg=c.name
        )
    np.testing.assert_allclose(sig["op"], 0.95 * 0.05 + 0.05 * v_in, atol=1e-6, rtol=0)
    np.testing.assert_allclose(sig["oe"], -19 * 0.05 + 20 * v_in, atol=1e-6, rtol=0)
    np.testing.assert_allclose(sig["osyn"], 0.7 * v_in, atol=1e-6, rtol=0)


def test_leaky_integrator_and_weight_store_small_step_in_ngspice(tmp_path):
    tau = 1e-5
    sig, t = tr.sweep_cells(
        "behavioural_step",
        [cells.leaky_integrator(), cells.weight_store()],
        [
            ("xi", ("o", "in"), "vle_leaky_integrator tau_sec=1e-05 gain=2.0"),
            ("xw", ("w", "e", "pre"), "vle_weight_store s_t=1e-05 eta=0.5"),
        ],
        {"in": "pwl(0 0 1e-06 0 1.001e-06 0.01)", "e": 0.2, "pre": 0.1},
        ["o", "w"],
        tmp_path,
        stop_sec=6e-5,
        points=601,
        initial={"w": 0.0},
    )
    after = t > 1.1e-6
    # step of 10 mV, gain 2: 20 mV (1 - exp(-(t - t0)/tau)), to 1e-3 of the step
    want = 0.02 * (1 - np.exp(-(t[after] - 1.0005e-6) / tau))
    np.testing.assert_allclose(sig["o"][after], want, atol=2e-5)
    # weight store: dW/dt = eta e r = 0.5 * 0.2 * 1 per model time unit (10 us)
    slope = np.polyfit(t, sig["w"], 1)[0] * 1e-5
    assert slope == pytest.approx(0.1, rel=1e-6)


# --- SPICE: MOS cells -----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("phi", ["tanh", "softplus"])
def test_mos_phi_cells_reach_the_issue_accuracy_in_ngspice(tmp_path, phi):
    result = tr.characterise_phi(phi, tmp_path)
    # issue #4: tanh within 0.5 % of full scale, its slope within 2 % of peak
    assert result.phi_error_pct_fs < 0.5
    assert result.dphi_error_pct_peak < 2.0
    assert len(result.u) > 100


@pytest.mark.slow
def test_gilbert_multiplier_is_linear_over_its_full_scale_in_ngspice(tmp_path):
    result = tr.characterise_multiplier(tmp_path, swept="a")
    # x_fs = 0.15: tanh(x)/x departs by 1 % at x = 0.174, 1.16 full scales
    assert result.linear_range_volt / result.fs_volt > 1.0
    assert abs(result.small_signal_gain_error_pct) < 3.0


def test_mos_cells_small_step_settle_to_the_static_slope_in_ngspice(tmp_path):
    step = 1e-3  # 10 mV step of u = 0.01 model units at s_volt = 0.1
    sig, t = tr.sweep_cells(
        "mos_step",
        [tr.phi_tanh_cell(), tr.phi_softplus_cell(), tr.ota_cell()],
        [
            ("xt", ("ot", "in"), "vle_mos_phi_tanh"),
            ("xs", ("os", "in"), "vle_mos_phi_softplus"),
            ("xo", ("oo", "in"), "vle_mos_ota g_siemens=1e-06 in_fs_volt=0.4"),
            ("ro", ("oo", "0"), "1000000.0"),
        ],
        {"in": f"pwl(0 0 1e-06 0 1.001e-06 {step!r})"},
        ["ot", "os", "oo"],
        tmp_path,
        stop_sec=2e-5,
        points=401,
    )
    before, end = t < 0.9e-6, -1
    # small-signal gains: tanh'(0) = 1, softplus'(0) = 1/2, ota g R = 1
    # (tolerance 1 %: the slope factor of the devices at their current)
    for name, gain in (("ot", 1.0), ("os", 0.5), ("oo", 1.0)):
        delta = sig[name][end] - sig[name][before][-1]
        assert delta / step == pytest.approx(gain, rel=1e-2), name
    # settled: the last 10 us move by less than 1e-3 of the step
    late = t > 1e-5
    assert np.ptp(sig["os"][late]) < 1e-3 * step * 10


# --- the transistor-level plan ---------------------------------------------------
def _lagline_parts(time_sec_per_unit=1e-3, phi=None):
    data = default_dict()
    data["hardware"]["time_sec_per_unit"] = time_sec_per_unit
    data["simulation"]["t_stop"] = 2.0
    if phi:
        for layer in data["network"]["layers"]:
            layer["phi"] = phi
    spec, _ = spec_from(data)
    return spec, build_network(spec), build_inputs(spec), build_targets(spec)


def test_transistor_plan_replaces_phi_multipliers_and_transconductors():
    spec, net, inputs, targets = _lagline_parts()
    plan = tr.plan_transistor(spec, net, inputs, targets, {"spec_hash": "0"})
    text = write_deck(plan).text
    names = [el.name for _, els in plan.sections for el in els]
    assert {"xr_l1_n0", "xr_l2_n0", "xdphi_l1_n0", "xdphi_l2_n0"} <= set(names)
    assert {"xsyn_l1_i0_j0", "xback_l2_i0_j0", "xw_l2_i0_j0"} <= set(names)
    assert {"xtsyn_l1_i0_j0", "xtr_l2_n0"} <= set(names)
    assert not any(n.startswith(("bsyn", "bback", "bw_", "br_", "btr_")) for n in names)
    assert "* level: transistor" in text and ".model vle_nch nmos level=8" in text
    assert "gmin=1e-15" in text


def test_transistor_plan_warns_when_the_cells_lag_at_10_us_per_unit():
    spec, net, inputs, targets = _lagline_parts(1e-5)
    with pytest.warns(VleLimitationWarning, match="time_sec_per_unit"):
        tr.plan_transistor(spec, net, inputs, targets, {})
    spec, net, inputs, targets = _lagline_parts(1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VleLimitationWarning)
        tr.plan_transistor(spec, net, inputs, targets, {})


def test_transistor_plan_rejects_a_phi_without_a_mos_cell():
    spec, net, inputs, targets = _lagline_parts(phi="sigmoid")
    with pytest.raises(SpecError, match="no MOS cell"):
        tr.plan_transistor(spec, net, inputs, targets, {})


# --- drawings -------------------------------------------------------------------------
@pytest.mark.parametrize("name", cell_names())
def test_every_cell_draws_as_svg(name):
    import xml.etree.ElementTree as ET

    root = ET.fromstring(draw_cell(name, "svg"))
    assert root.tag.endswith("svg")


def test_draw_command_writes_png_and_refuses_unknown_cells_and_overwrites(tmp_path):
    out = tmp_path / "g.png"
    runner = CliRunner()
    ok = runner.invoke(main, ["draw", "vle_mos_gilbert", "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = runner.invoke(main, ["draw", "vle_mos_gilbert", "-o", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    bad = runner.invoke(main, ["draw", "nope", "-o", str(tmp_path / "x.svg")])
    assert bad.exit_code == 2 and "vle_mos_gilbert" in bad.output
    suffix = runner.invoke(main, ["draw", "vle_mos_ota", "-o", str(tmp_path / "x.pdf")])
    assert suffix.exit_code == 2 and ".svg or .png" in suffix.output


@pytest.mark.slow
def test_verify_level_transistor_runs_and_reports_cells_apart(tmp_path):
    import json

    data = default_dict()
    data["hardware"]["time_sec_per_unit"] = 1e-3
    data["simulation"]["t_stop"] = 2.0
    spec_path = tmp_path / "lagline_t.yaml"
    import yaml

    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["verify", str(spec_path), "--level", "transistor", "--out", str(out)]
    )
    assert result.exit_code in (0, 1), result.output
    info = json.loads((out / "result.json").read_text())
    assert info["level"] == "transistor"
    assert info["cells"]["phi_softplus"]["phi_error_pct_fs"] < 0.5
    assert info["tolerances"]["nrmse"] == tr.NRMSE_TOL
    assert "r_l2_n0" in {row["name"] for row in info["signals"]}
    assert "cell vle_mos_phi_softplus" in result.output


def test_runner_names_the_time_ngspice_reached_from_its_log():
    from vle_hw.runner import _time_reached

    captured = [  # ngspice 39, the transistor deck of LagLine at 10 us per unit
        "stderr doAnalyses: TRAN:  Timestep too small; time = 1.66667e-10, "
        'timestep = 2.08333e-20: trouble with node "isyn_l1_n0"',
        "stderr run simulation(s) aborted",
    ]
    assert _time_reached(captured) == "1.66667e-10"
    assert _time_reached(["stdout No. of Data Rows : 808"]) is None


def test_a_real_non_convergence_names_deck_time_causes_and_keeps_the_log(tmp_path):
    """The transistor deck of LagLine at 10 us per unit does not converge in
    ngspice 39 (measured); the error must say where, when and why, exit 3."""
    import yaml

    data = default_dict()
    data["simulation"]["t_stop"] = 2.0
    spec_path = tmp_path / "lagline_fast.yaml"
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VleLimitationWarning)
        result = CliRunner().invoke(
            main, ["verify", str(spec_path), "--level", "transistor", "--out", str(out)]
        )
    assert result.exit_code == 3, result.output
    message = " ".join(result.output.split())
    assert f"ngspice failed on {out / 'lagline.cir'} at t = " in message
    assert "MOS cells too slow for the time scale" in message
    log = out / "ngspice" / "ngspice.log"
    assert f"Full log: {log}" in message
    assert "timestep too small" in log.read_text().lower()
    assert not (out / "result.json").exists()
