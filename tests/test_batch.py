"""The fixed-step batched reference: against hand-written equations and the ODE."""

import numpy as np
import pytest

from tests.helpers import default_dict, spec_from
from vle_hw.batch import BatchStepper
from vle_hw.network import build_network
from vle_hw.reference import simulate_reference
from vle_hw.signals import build_inputs


def small_network(learn=True):
    data = default_dict()
    data["network"].update(
        inputs=3,
        layers=[
            {
                "size": 4,
                "phi": "tanh",
                "tau_m": [0.6, 1.2, 1.2, 0.6],
                "tau_r": [0.2, 0.2, 1.2, 0.2],
            },
            {"size": 2, "phi": "softplus", "tau_m": 1.0, "tau_r": 0.3},
        ],
        weights={"init": "random", "std": 0.7, "seed": 3},
        biases={"init": "random", "std": 0.2, "seed": 4},
        gamma=0.0,
        beta=0.5,
        eta=0.8 if learn else 0.0,
    )
    data["teacher"] = {"weights": {"init": "random", "std": 0.7, "seed": 5}}
    data["input"] = [
        {"kind": "sines", "amplitudes": [1.0], "omegas": [w]} for w in (0.3, 0.7, 1.1)
    ]
    spec, _ = spec_from(data)
    return build_network(spec)


def hand_written_step(net, state, x, y, dt):
    """DESIGN.md section 2 typed by hand (tanh, softplus), exponential Euler."""
    phis = {"tanh": np.tanh, "softplus": lambda z: np.log1p(np.exp(z))}
    slopes = {
        "tanh": lambda z: 1 - np.tanh(z) ** 2,
        "softplus": lambda z: 1 / (1 + np.exp(-z)),
    }
    u, v, w, b = state
    r, drive, up = [x], [], []
    for k, layer in enumerate(net.layers):
        kappa = layer.tau_r / layer.tau_m
        i_syn = r[-1] @ w[k].T + b[k]
        drive.append(i_syn)
        up.append((1 - kappa) * u[k] + kappa * i_syn)  # (F2)
        r.append(phis[layer.phi](up[-1]))  # (F3)
    e = [None] * len(net.layers)
    alpha = [None] * len(net.layers)
    for k in reversed(range(len(net.layers))):
        layer = net.layers[k]
        slope = slopes[layer.phi](up[k])
        if k == len(net.layers) - 1:
            alpha[k] = slope * net.beta * (y - r[-1])  # (B1), output
        else:
            alpha[k] = slope * (e[k + 1] @ w[k + 1])  # (B1), hidden
        rho = layer.tau_m / layer.tau_r
        e[k] = (1 - rho) * v[k] + rho * alpha[k]  # (B3)
    batch = x.shape[0]
    for k, layer in enumerate(net.layers):
        u[k] = u[k] + (1 - np.exp(-dt / layer.tau_m)) * (drive[k] - u[k])  # (F1)
        v[k] = v[k] + (1 - np.exp(-dt / layer.tau_r)) * (alpha[k] - v[k])  # (B2)
        w[k] = w[k] + dt * net.eta * (e[k].T @ r[k]) / batch
        b[k] = b[k] + dt * net.eta * e[k].sum(axis=0) / batch
    return r[-1]


def test_the_stepper_is_the_hand_written_equations():
    net = small_network()
    dt, batch, steps = 0.05, 5, 200
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps, batch, 3))
    y = rng.normal(size=(steps, batch, 2))
    stepper = BatchStepper(net, dt, batch)
    state = stepper.initial_state()
    _, out = stepper.run(state, x, y)
    hand = (
        [np.zeros((batch, layer.size)) for layer in net.layers],
        [np.zeros((batch, layer.size)) for layer in net.layers],
        [layer.weights.copy() for layer in net.layers],
        [layer.biases.copy() for layer in net.layers],
    )
    expected = np.stack(
        [hand_written_step(net, hand, x[n], y[n], dt) for n in range(steps)]
    )
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    for k in range(2):
        np.testing.assert_allclose(state.weights[k], hand[2][k], rtol=0, atol=1e-12)
        assert not np.allclose(state.weights[k], net.layers[k].weights)  # it learned


def test_the_stepper_converges_to_the_adaptive_reference_at_first_order():
    data = default_dict()
    data["network"]["gamma"] = 0.0
    data["simulation"]["t_stop"] = 8.0
    spec, _ = spec_from(data)
    net = build_network(spec)
    inputs = build_inputs(spec)
    t_stop = 8.0
    teacher_in = None
    errors = []
    for dt in (0.004, 0.002, 0.001):
        steps = int(round(t_stop / dt))
        t = np.arange(steps) * dt
        ref = simulate_reference(net, inputs, t_stop, "zero").trace(t)
        x = inputs[0](t)[:, None, None]
        y = ref.signals["y_n0"][:, None, None]
        teacher_in = y
        stepper = BatchStepper(net, dt, 1)
        _, out = stepper.run(stepper.initial_state(), x, teacher_in)
        errors.append(np.max(np.abs(out[:, 0, 0] - ref.signals["r_l2_n0"])))
    assert errors[-1] < 2e-2
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(1.6 < q < 2.4 for q in ratios), (errors, ratios)


def test_gamma_other_than_zero_is_refused_by_name():
    data = default_dict()  # LagLine: gamma 1
    spec, _ = spec_from(data)
    with pytest.raises(ValueError, match=r"network.layers\[0\].gamma = 1"):
        BatchStepper(build_network(spec), 0.1, 2)


def test_float32_follows_float64_and_the_network_is_not_touched():
    net = small_network()
    before = [layer.weights.copy() for layer in net.layers]
    dt, batch, steps = 0.05, 5, 200
    rng = np.random.default_rng(1)
    x = rng.normal(size=(steps, batch, 3))
    y = rng.normal(size=(steps, batch, 2))
    double = BatchStepper(net, dt, batch)
    single = BatchStepper(net, dt, batch, dtype="float32")
    state64, out64 = double.run(double.initial_state(), x, y)
    state32, out32 = single.run(single.initial_state(), x, y)
    assert out32.dtype == np.float32 and state32.weights[0].dtype == np.float32
    np.testing.assert_allclose(out32, out64, rtol=0, atol=1e-4)
    for w32, w64 in zip(state32.weights, state64.weights, strict=True):
        np.testing.assert_allclose(w32, w64, rtol=0, atol=1e-4)
    for layer, w in zip(net.layers, before, strict=True):
        np.testing.assert_array_equal(layer.weights, w)  # states own their copies


def test_a_step_returns_a_fresh_output_each_time():
    net = small_network(learn=False)
    stepper = BatchStepper(net, 0.05, 2)
    state = stepper.initial_state()
    first = stepper.step(state, np.ones((2, 3)), np.zeros((2, 2)))
    kept = first.copy()
    stepper.step(state, np.ones((2, 3)), np.zeros((2, 2)))
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("dtype", ["float16", "int64", "double"])
def test_an_unknown_dtype_is_refused_by_name(dtype):
    with pytest.raises(ValueError, match=rf"dtype = '{dtype}': use 'float64'"):
        BatchStepper(small_network(), 0.1, 2, dtype=dtype)
