"""The ODE reference against closed forms, DESIGN.md invariants and an
independent hand-written implementation of the LagLine equations."""

import copy
import math

import numpy as np
import pytest
from helpers import default_dict, single_neuron, spec_from
from scipy.integrate import solve_ivp
from scipy.special import erf

from vle_hw.network import build_network
from vle_hw.reference import NetworkModel, simulate_reference
from vle_hw.signals import build_inputs, build_targets


def _run(data, t, **kwargs):
    spec, _ = spec_from(data)
    net = build_network(spec)
    inputs = build_inputs(spec)
    ref = simulate_reference(
        net,
        inputs,
        spec.simulation.t_stop,
        spec.initial_state,
        build_targets(spec),
        **kwargs,
    )
    return ref.trace(np.asarray(t, dtype=float))


def test_linear_neuron_step_response_matches_the_closed_form():
    tau_m, tau_r, w = 1.5, 0.3, 2.0
    t = np.linspace(0, 8, 161)
    tr = _run(single_neuron(tau_m=tau_m, tau_r=tau_r, weight=w, t_stop=8.0), t)
    u = w * (1 - np.exp(-t / tau_m))
    u_prosp = u + tau_r * (w / tau_m) * np.exp(-t / tau_m)
    # DOP853 at rtol 1e-10: agreement to 1e-9 of the unit signal
    assert np.max(np.abs(tr.signals["u_l1_n0"] - u)) < 1e-9
    assert np.max(np.abs(tr.signals["u_prosp_l1_n0"] - u_prosp)) < 1e-9
    assert np.max(np.abs(tr.signals["r_l1_n0"] - u_prosp)) < 1e-9


def test_sine_response_follows_the_forward_filter_gain_and_phase():
    tau_m, tau_r, w, omega = 2.0, 0.2, 1.0, 1.3
    data = single_neuron(
        tau_m=tau_m,
        tau_r=tau_r,
        weight=w,
        t_stop=40.0,
        input_={"kind": "sines", "amplitudes": [1.0], "omegas": [omega]},
    )
    t = np.linspace(30, 40, 2001)  # after 15 tau_m the transient is < 1e-6
    tr = _run(data, t)
    h = (1 + 1j * omega * tau_r) / (1 + 1j * omega * tau_m)
    expected = w * np.abs(h) * np.sin(omega * t + np.angle(h))
    assert np.max(np.abs(tr.signals["u_prosp_l1_n0"] - expected)) < 1e-6


def test_zero_beta_makes_every_error_and_update_vanish():
    data = copy.deepcopy(default_dict())
    data["network"]["beta"] = 0.0
    data["simulation"]["t_stop"] = 10.0
    tr = _run(data, np.linspace(0, 10, 501))
    for name, values in tr.signals.items():
        if name.startswith(("e_", "v_")):
            assert np.max(np.abs(values)) == 0.0, name
        if name.startswith("w_"):
            assert np.ptp(values) == 0.0, name


def test_steady_initial_state_starts_at_rest():
    data = single_neuron(phi="softplus", initial_state="steady", eta=0.0)
    tr = _run(data, np.linspace(0, 5, 51))
    # constant input: the steady state stays where it is (u = u_prosp = W x)
    assert np.max(np.abs(tr.signals["u_l1_n0"] - 2.0)) < 1e-9
    assert np.max(np.abs(tr.signals["u_prosp_l1_n0"] - 2.0)) < 1e-9


def test_algebraic_loop_solution_satisfies_every_equation():
    spec, _ = spec_from(default_dict())
    model = NetworkModel(build_network(spec))
    rng = np.random.default_rng(3)
    state = rng.normal(size=(7, model.n_state)) * 0.5
    x = rng.normal(size=(7, 1))
    z, _, _ = model.solve_loop(state, x, model.target(0.0, state, x))
    res, _, _, _ = model._loop_terms(state, x, model.target(0.0, state, x), z)
    assert np.max(np.abs(res)) < 1e-12


def _lagline_by_hand(t_stop, t_eval):
    """LagLine written out by hand with scalars (independent of the package):
    Newton on the 4-variable loop (u_prosp_1, u_prosp_2, e_1, e_2)."""
    period, sigma, tr_, beta, gamma, eta = 4.0, 0.05, 0.1, 0.01, 1.0, 10.0
    s2 = math.sqrt(2) * sigma

    def x_in(t):
        ph = t % period
        return -1.0 + sum(
            erf((ph - k * period) / s2) - erf((ph - 2 - k * period) / s2)
            for k in (-1, 0, 1)
        )

    def sp_(z):
        return math.log1p(math.exp(z))

    def sg(z):
        return 1 / (1 + math.exp(-z))

    k1, k2, r1, r2 = tr_ / 1.0, tr_ / 2.0, 1.0 / tr_, 2.0 / tr_

    def rhs(t, s):
        u1, u2, v1, v2, w1, w2, U1, U2 = s
        x = x_in(t)
        y = sp_((1 - k2) * U2 + k2 * 2.0 * sp_((1 - k1) * U1 + k1 * 1.0 * x))
        p1, p2, e1, e2 = (1 - k1) * u1 + k1 * w1 * x, u2, v1, v2
        for _ in range(50):
            a2 = sg(p2) * beta * (y - sp_(p2))
            a1 = sg(p1) * w2 * e2
            f = np.array(
                [
                    p1 - ((1 - k1) * u1 + k1 * (w1 * x + gamma * e1)),
                    p2 - ((1 - k2) * u2 + k2 * (w2 * sp_(p1) + gamma * e2)),
                    e1 - ((1 - r1) * v1 + r1 * a1),
                    e2 - ((1 - r2) * v2 + r2 * a2),
                ]
            )
            d1, d2 = sg(p1), sg(p2)
            jac = np.array(
                [
                    [1, 0, -k1 * gamma, 0],
                    [-k2 * w2 * d1, 1, 0, -k2 * gamma],
                    [-r1 * d1 * (1 - d1) * w2 * e2, 0, 1, -r1 * d1 * w2],
                    [0, -r2 * beta * (d2 * (1 - d2) * (y - sp_(p2)) - d2 * d2), 0, 1],
                ]
            )
            dz = np.linalg.solve(jac, -f)
            p1, p2, e1, e2 = p1 + dz[0], p2 + dz[1], e1 + dz[2], e2 + dz[3]
            if np.max(np.abs(dz)) < 1e-14:
                break
        a1 = sg(p1) * w2 * e2
        a2 = sg(p2) * beta * (y - sp_(p2))
        r1_ = sp_(p1)
        U1p = (1 - k1) * U1 + k1 * x
        return [
            (-u1 + w1 * x + gamma * e1) / 1.0,
            (-u2 + w2 * r1_ + gamma * e2) / 2.0,
            (-v1 + a1) / tr_,
            (-v2 + a2) / tr_,
            eta * e1 * x,
            eta * e2 * r1_,
            (-U1 + x) / 1.0,
            (-U2 + 2.0 * sp_(U1p)) / 2.0,
        ]

    sol = solve_ivp(
        rhs,
        (0, t_stop),
        [0, 0, 0, 0, 0.5, 0.5, 0, 0],
        method="DOP853",
        rtol=1e-10,
        atol=1e-12,
        t_eval=t_eval,
    )
    return sol.y


def test_lagline_reference_matches_an_independent_hand_written_model():
    t = np.linspace(0, 12, 61)
    data = copy.deepcopy(default_dict())
    data["simulation"]["t_stop"] = 12.0
    tr = _run(data, t)
    by_hand = _lagline_by_hand(12.0, t)
    names = [
        "u_l1_n0",
        "u_l2_n0",
        "v_l1_n0",
        "v_l2_n0",
        "w_l1_i0_j0",
        "w_l2_i0_j0",
        "teacher_u_l1_n0",
        "teacher_u_l2_n0",
    ]
    for k, name in enumerate(names):
        # both at DOP853 rtol 1e-10: agreement well below 1e-7
        assert np.max(np.abs(tr.signals[name] - by_hand[k])) < 1e-7, name


def test_tighter_tolerance_changes_the_reference_by_less_than_1e_8():
    data = copy.deepcopy(default_dict())
    data["simulation"]["t_stop"] = 8.0
    t = np.linspace(0, 8, 401)
    loose = _run(data, t, rtol=1e-10)
    tight = _run(data, t, rtol=1e-12, atol=1e-14)
    for name in loose.signals:
        scale = max(np.ptp(tight.signals[name]), 1e-3)
        diff = np.max(np.abs(loose.signals[name] - tight.signals[name])) / scale
        assert diff < 1e-8, name


@pytest.mark.slow
def test_lagline_student_reaches_the_teacher_within_one_percent():
    spec_data = default_dict()  # eta = 10, t_stop = 400 as shipped
    tr = _run(spec_data, [spec_data["simulation"]["t_stop"]])
    assert tr.signals["w_l1_i0_j0"][-1] == pytest.approx(1.0, rel=1e-2)
    assert tr.signals["w_l2_i0_j0"][-1] == pytest.approx(2.0, rel=1e-2)


def test_window_restart_continues_the_same_trajectory():
    """[0, 6] then [6, 12] from the saved state equals one run on [0, 12]."""
    spec, _ = spec_from(default_dict())
    network = build_network(spec)
    inputs = build_inputs(spec)
    whole = simulate_reference(network, inputs, 12.0)
    first = simulate_reference(network, inputs, 6.0)
    second = simulate_reference(
        network, inputs, 12.0, t_start=6.0, state0=first.states(np.array([6.0]))[0]
    )
    t = np.array([6.5, 9.0, 12.0])
    np.testing.assert_allclose(second.states(t), whole.states(t), rtol=0, atol=1e-8)


def test_an_overflow_is_one_error_with_the_values_that_drive_it():
    import warnings

    from vle_hw.errors import ReferenceSolveError

    data = default_dict()
    data["network"]["weights"] = [[[1e5]], [[0.5]]]
    data["simulation"]["t_stop"] = 20.0
    spec, _ = spec_from(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning on the way
        with pytest.raises(ReferenceSolveError) as caught:
            simulate_reference(build_network(spec), build_inputs(spec), 20.0)
    message = str(caught.value)
    assert "overflowed" in message and "largest |weight| 1e+05" in message
    assert "fix: scale down network.weights" in message
