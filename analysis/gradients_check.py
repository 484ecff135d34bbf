"""Measure the exact-gradient numbers of issue #3 and write them to
analysis/gradients_check.json (and a PNG of LagNet learning).

1. Finite-difference agreement (max relative error per parameter class) on a
   window of LagLine (with per-neuron tau_r and biases), LagLine as shipped,
   and LagNet, with run times.
2. Alignment of the local updates with -dC/dtheta on a representative window
   of LagLine and LagNet, and the frequency alignment of a single linear neuron.
3. LagNet (DESIGN 5.2): W_1 learned by the local rule (the ODE reference with
   the spec's eta) and by the windowed exact adjoint over the same span.

Run: PYTHONPATH=$PWD nice python analysis/gradients_check.py [--span 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import numpy as np
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vle_hw import (  # noqa: E402
    build_network,
    load_spec,
    parse_spec_text,
    simulate_reference,
)
from vle_hw import gradients as G  # noqa: E402
from vle_hw.signals import build_inputs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "analysis"


def lagline_variant():
    data = yaml.safe_load((ROOT / "examples" / "lagline.yaml").read_text())
    data["name"] = "lagline_variant"
    data["network"]["layers"][1]["tau_r"] = 0.3
    data["network"]["biases"] = [[0.2], [-0.3]]
    data["teacher"]["biases"] = [[0.0], [0.0]]
    return parse_spec_text(yaml.safe_dump(data, sort_keys=False), "variant", "yaml")


def fd_agreement(spec, t0, t1):
    network, inputs = build_network(spec), build_inputs(spec)
    state0 = G.initial_state(network, inputs, None, t0, "zero", 0.0)
    started = time.perf_counter()
    exact = G.window_gradient(network, inputs, None, t0, t1, state0)
    exact_sec = time.perf_counter() - started
    started = time.perf_counter()
    fd = G.finite_difference_gradient(
        network, inputs, None, t0, t1, state0, rtol=1e-11, atol=1e-13
    )
    fd_sec = time.perf_counter() - started
    errors = G.relative_errors(exact.gradient, fd)
    by_class: dict[str, float] = {}
    for name, err in errors.items():
        kind = name.rstrip("0123456789")
        by_class[kind] = max(by_class.get(kind, 0.0), err)
    return {
        "window": [t0, t1],
        "parameters": len(errors),
        "entries": int(sum(v.size for v in fd.values())),
        "max_rel_err_by_class": by_class,
        "max_rel_err": max(errors.values()),
        "exact_sec": exact_sec,
        "forward_sec": exact.stats["forward_sec"],
        "adjoint_sec": exact.stats["adjoint_sec"],
        "fd_sec": fd_sec,
    }


def align(spec, t0, t1):
    network, inputs = build_network(spec), build_inputs(spec)
    state0 = G.initial_state(network, inputs, None, t0, "zero", 0.0)
    started = time.perf_counter()
    out = G.alignment(network, inputs, None, t0, t1, state0)
    out["wall_sec"] = time.perf_counter() - started
    return out


def local_rule_curves(spec, span, every):
    """The local rule (spec's eta, nudged ODE reference): same keys as the adjoint."""
    network, inputs = build_network(spec), build_inputs(spec)
    started = time.perf_counter()
    ref = simulate_reference(network, inputs, span, spec.initial_state)
    wall = time.perf_counter() - started
    fine = np.linspace(0.0, span, int(span * 50) + 1)
    trace = ref.trace(fine)
    out_layer = network.layers[-1]
    cost = 0.5 * sum(
        (trace.signals[f"y_n{i}"] - trace.signals[f"r_l{out_layer.index}_n{i}"]) ** 2
        for i in range(out_layer.size)
    )
    teacher = network.teacher[0].weights
    ends = np.arange(every, span + 1e-9, every)
    curves = {"t": [], "loss": [], "weights": {"W1": []}, "teacher_distance": []}
    for end in ends:
        inside = (fine >= end - every) & (fine <= end)
        curves["t"].append(float(end))
        curves["loss"].append(float(np.trapezoid(cost[inside], fine[inside]) / every))
        k = int(np.argmin(np.abs(fine - end)))
        w = np.array(
            [[trace.signals[f"w_l1_i{i}_j0"][k]] for i in range(network.layers[0].size)]
        )
        curves["weights"]["W1"].append(w.tolist())
        curves["teacher_distance"].append(float(np.linalg.norm(w - teacher)))
    curves["initial"] = {
        "t": 0.0,
        "weights": {"W1": network.layers[0].weights.tolist()},
        "teacher_distance": G.teacher_distance(network),
    }
    curves["wall_sec"] = wall
    return curves


def figure(runs, teacher, path):
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    styles = ["-", "--", ":", "-."]
    for (label, curves), style in zip(runs.items(), styles, strict=False):
        t = [curves["initial"]["t"], *curves["t"]]
        w = np.array([curves["initial"]["weights"]["W1"], *curves["weights"]["W1"]])
        for i in range(w.shape[1]):
            axes[0].plot(t, w[:, i, 0], style, label=f"{label} W1[{i}]")
        dist = [curves["initial"]["teacher_distance"], *curves["teacher_distance"]]
        axes[1].plot(t, dist, style, label=label)
        axes[2].semilogy(curves["t"], curves["loss"], style, label=label)
    for value in np.ravel(teacher):
        axes[0].axhline(value, color="grey", lw=0.6, ls=":")
    axes[0].set(xlabel="t (model units)", ylabel="W1", title="LagNet W1")
    axes[1].set(xlabel="t", ylabel="|W1 - W1_teacher|", title="teacher distance")
    axes[2].set(xlabel="t", ylabel="mean 1/2 (y - r)^2", title="loss per window")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--span", type=float, default=100.0)
    parser.add_argument("--windows", default="2,10")
    parser.add_argument("--skip-fd", action="store_true")
    args = parser.parse_args()
    lagline = load_spec(ROOT / "examples" / "lagline.yaml")[0]
    lagnet = load_spec(ROOT / "examples" / "lagnet.yaml")[0]
    results: dict = {}

    if not args.skip_fd:
        results["fd"] = {
            "lagline_variant": fd_agreement(lagline_variant(), 1.0, 3.0),
            "lagline": fd_agreement(lagline, 1.0, 3.0),
            "lagnet": fd_agreement(lagnet, 1.0, 3.0),
        }
        print(json.dumps(results["fd"], indent=1))

    results["alignment"] = {
        "lagline": align(lagline, 20.0, 60.0),
        "lagnet": align(lagnet, 20.0, 60.0),
    }
    print(json.dumps(results["alignment"], indent=1))
    started = time.perf_counter()
    results["frequency_alignment"] = G.frequency_alignment([0.3, 1.0, 3.0, 10.0])
    results["frequency_alignment_sec"] = time.perf_counter() - started
    print(json.dumps(results["frequency_alignment"], indent=1))

    network, inputs = build_network(lagnet), build_inputs(lagnet)
    windows = [float(w) for w in args.windows.split(",")]
    runs = {"local rule": local_rule_curves(lagnet, args.span, min(windows))}
    for window in windows:
        runs[f"adjoint, window {window:g}"] = G.train_windowed_adjoint(
            network, inputs, None, args.span, window, rtol=1e-9, atol=1e-11
        )
    results["lagnet_learning"] = runs
    for name, curves in runs.items():
        print(
            name,
            "W1 final",
            curves["weights"]["W1"][-1],
            "teacher distance",
            curves["initial"]["teacher_distance"],
            "->",
            curves["teacher_distance"][-1],
            "loss",
            curves["loss"][0],
            "->",
            curves["loss"][-1],
            f"wall {curves['wall_sec']:.1f} s",
        )
    (OUT / "gradients_check.json").write_text(json.dumps(results, indent=1))
    figure(runs, network.teacher[0].weights, OUT / "gradients_lagnet.png")


if __name__ == "__main__":
    main()
