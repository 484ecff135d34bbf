"""The batched ODE reference on the MNIST-1D-sized GLE network (DESIGN.md 5.3).

Network 1 -> 53 x 5 -> 10: five hidden layers of 53 tanh units whose
(tau_m, tau_r) cycle through (0.6, 0.2), (1.2, 0.2), (1.2, 1.2), a linear output
layer of 10 with tau_m = tau_r = 1.2 (an assumption: DESIGN.md names only the
hidden mix), gamma 0, learning on. dt = 0.2, batch 100, one input per step,
synthetic inputs and one-hot targets (the speed does not depend on the data,
so the mnist1d package is not needed here).

Measures, in one run:
- steps/s of :class:`vle_hw.batch.BatchStepper` (equations lambdified from
  the sympy derivation);
- the same in float32, and how far its outputs and weights drift from float64;
- steps/s of a straightforward per-step numpy implementation of the same
  equations, typed by hand (fresh arrays every step), and that both agree;
- the BLAS floor: the time of one step's matrix products alone, issued as
  the stepper issues them (forward, backward, update), which bounds any
  implementation made of numpy calls;
- the machine's limits: streaming memory bandwidth (a numpy copy of two
  256 MiB arrays, bytes read + written per second) and matrix-multiply
  throughput (a 2000 x 2000 float64 matmul), from which the per-step bounds
  follow: weight traffic / bandwidth and floating-point work / matmul rate.

    .venv/bin/python benchmarks/ode_batch.py [--steps 1000] [--repeat 3]

Writes ``benchmarks/results/ode_batch.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from vle_hw.batch import BatchStepper
from vle_hw.network import Layer, Network

HERE = Path(__file__).resolve().parent
PAIRS = [(0.6, 0.2), (1.2, 0.2), (1.2, 1.2)]
HIDDEN, DEPTH, OUTPUTS = 53, 5, 10


def mnist1d_network() -> Network:
    """The network as plain data (a spec would hit verify's size limits, which
    exist for the adaptive reference and the deck, not for this stepper)."""
    rng = np.random.default_rng(1)
    tau_m = np.array([PAIRS[k % 3][0] for k in range(HIDDEN)])
    tau_r = np.array([PAIRS[k % 3][1] for k in range(HIDDEN)])
    sizes = [1] + [HIDDEN] * DEPTH + [OUTPUTS]
    layers = []
    for index in range(1, len(sizes)):
        hidden = index <= DEPTH
        size, fan_in = sizes[index], sizes[index - 1]
        layers.append(
            Layer(
                index=index,
                size=size,
                phi="tanh" if hidden else "linear",
                tau_m=tau_m.copy() if hidden else np.full(size, 1.2),
                tau_r=tau_r.copy() if hidden else np.full(size, 1.2),
                gamma=0.0,
                plastic=True,
                weights=rng.normal(0, 1 / np.sqrt(fan_in), (size, fan_in)),
                biases=np.zeros(size),
            )
        )
    return Network("mnist1d_gle", 1, tuple(layers), beta=0.1, eta=0.01, teacher=None)


def straightforward(net, dt, batch):
    """The same equations typed by hand, one plain numpy step at a time."""
    w = [layer.weights.copy() for layer in net.layers]
    b = [layer.biases.copy() for layer in net.layers]
    u = [np.zeros((batch, layer.size)) for layer in net.layers]
    v = [np.zeros((batch, layer.size)) for layer in net.layers]

    def phi(layer, z):
        return np.tanh(z) if layer.phi == "tanh" else z

    def slope(layer, z):
        return 1 - np.tanh(z) ** 2 if layer.phi == "tanh" else np.ones_like(z)

    def step(x, y):
        r, drive, up = [x], [], []
        for k, layer in enumerate(net.layers):
            kappa = layer.tau_r / layer.tau_m
            i_syn = r[-1] @ w[k].T + b[k]
            drive.append(i_syn)
            up.append((1 - kappa) * u[k] + kappa * i_syn)
            r.append(phi(layer, up[-1]))
        n = len(net.layers)
        e, alpha = [None] * n, [None] * n
        for k in reversed(range(n)):
            layer = net.layers[k]
            if k == n - 1:
                alpha[k] = slope(layer, up[k]) * net.beta * (y - r[-1])
            else:
                alpha[k] = slope(layer, up[k]) * (e[k + 1] @ w[k + 1])
            rho = layer.tau_m / layer.tau_r
            e[k] = (1 - rho) * v[k] + rho * alpha[k]
        for k, layer in enumerate(net.layers):
            u[k] = u[k] + (1 - np.exp(-dt / layer.tau_m)) * (drive[k] - u[k])
            v[k] = v[k] + (1 - np.exp(-dt / layer.tau_r)) * (alpha[k] - v[k])
            w[k] = w[k] + dt * net.eta * (e[k].T @ r[k]) / batch
            b[k] = b[k] + dt * net.eta * e[k].sum(axis=0) / batch
        return r[-1]

    return step, w


def blas_floor_sec(net: Network, batch: int, repeat: int) -> float:
    """Seconds per step of the step's matrix products alone, float64."""
    rng = np.random.default_rng(2)
    shapes = [layer.weights.shape for layer in net.layers]
    w = [rng.normal(size=shape) for shape in shapes]
    rates = [rng.normal(size=(batch, shape[1])) for shape in shapes]
    errors = [rng.normal(size=(batch, shape[0])) for shape in shapes]
    drives = [np.empty((batch, shape[0])) for shape in shapes]
    feedback = [np.empty((batch, shape[1])) for shape in shapes]
    grads = [np.empty(shape) for shape in shapes]

    def one_step():
        for k in range(len(w)):  # forward
            np.matmul(rates[k], w[k].T, out=drives[k])
        for k in range(1, len(w)):  # backward, into the layer below
            np.matmul(errors[k], w[k], out=feedback[k])
        for k in range(len(w)):  # the update's outer products
            np.matmul(errors[k].T, rates[k], out=grads[k])

    def hundred():
        for _ in range(100):
            one_step()

    hundred()
    return min(_timed(hundred) for _ in range(repeat)) / 100


def bandwidth_bytes_per_sec(repeat: int) -> float:
    n = 256 * 2**20 // 8
    src, dst = np.random.default_rng(0).random(n), np.empty(n)
    np.copyto(dst, src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeat))
    return 2 * n * 8 / best


def matmul_flops_per_sec(repeat: int) -> float:
    a = np.random.default_rng(1).random((2000, 2000))
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeat))
    return 2 * 2000**3 / best


def _timed(call) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dt, batch, steps = 0.2, args.batch, args.steps
    net = mnist1d_network()
    rng = np.random.default_rng(7)
    x = rng.normal(size=(steps, batch, 1))
    y = np.eye(OUTPUTS)[rng.integers(0, OUTPUTS, size=(steps, batch))]

    stepper = BatchStepper(net, dt, batch)
    single = BatchStepper(net, dt, batch, dtype="float32")
    fast_times, slow_times, single_times = [], [], []
    for _ in range(args.repeat):
        state = stepper.initial_state()
        t0 = time.perf_counter()
        _, out_fast = stepper.run(state, x, y)
        fast_times.append(time.perf_counter() - t0)
        state32 = single.initial_state()
        t0 = time.perf_counter()
        _, out_single = single.run(state32, x, y)
        single_times.append(time.perf_counter() - t0)
        step, weights = straightforward(net, dt, batch)
        out_slow = np.empty_like(out_fast)
        t0 = time.perf_counter()
        for n in range(steps):
            out_slow[n] = step(x[n], y[n])
        slow_times.append(time.perf_counter() - t0)
    agree = float(np.max(np.abs(out_fast - out_slow)))
    weight_diff = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(state.weights, weights, strict=True)
    )

    single_diff = float(np.max(np.abs(out_single - out_fast)))
    single_weight_diff = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(state32.weights, state.weights, strict=True)
    )
    floor = blas_floor_sec(net, batch, args.repeat)

    n_weights = sum(layer.weights.size for layer in net.layers)
    # per step: W read forward, W read backward (hidden alphas), W read + written
    # by the update; the biases are negligible
    traffic = 4 * n_weights * 8
    flops = 3 * 2 * batch * n_weights  # forward, backward and update products
    bandwidth = bandwidth_bytes_per_sec(args.repeat)
    matmul = matmul_flops_per_sec(args.repeat)
    bound_bw = bandwidth / traffic
    bound_flops = matmul / flops
    fast = steps / min(fast_times)
    slow = steps / min(slow_times)
    result = {
        "network": f"1 -> {HIDDEN} x {DEPTH} -> {OUTPUTS}, {n_weights} weights",
        "dt": dt,
        "batch": batch,
        "steps": steps,
        "threads": os.environ.get("OPENBLAS_NUM_THREADS", "numpy default"),
        "batch_stepper_steps_per_sec": fast,
        "straightforward_steps_per_sec": slow,
        "speedup": fast / slow,
        "batch_stepper_float32_steps_per_sec": steps / min(single_times),
        "float32_speedup": steps / min(single_times) / slow,
        "float32_max_output_difference": single_diff,
        "float32_max_weight_difference": single_weight_diff,
        "blas_floor_steps_per_sec": 1 / floor,
        "fraction_of_blas_floor": fast / (1 / floor),
        "max_output_difference": agree,
        "max_weight_difference": weight_diff,
        "memory_bandwidth_bytes_per_sec": bandwidth,
        "weight_traffic_bytes_per_step": traffic,
        "bandwidth_bound_steps_per_sec": bound_bw,
        "matmul_flops_per_sec": matmul,
        "flops_per_step": flops,
        "compute_bound_steps_per_sec": bound_flops,
        "fraction_of_bandwidth_bound": fast / bound_bw,
        "fraction_of_compute_bound": fast / bound_flops,
    }
    out = HERE / "results" / "ode_batch.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("| quantity | value |\n|---|---|")
    for key, value in result.items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        print(f"| {key} | {shown} |")


if __name__ == "__main__":
    main()
