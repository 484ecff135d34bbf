"""Netlist generation speed: deck elements written per second against network size.

Networks ``k -> h -> o`` (tanh hidden, linear output, teacher-student) whose
student has about 10 to 5 000 synapses (10 to 10 000 counting the teacher's,
the most ``verify`` accepts), with plastic and with fixed weights. The time is
that of :func:`vle_hw.pipeline.build_deck` on a parsed spec (plan, cell
library and deck text), best of ``--repeat`` runs; the element count is that
of the plan (one deck line each, subcircuit definitions not counted).

    .venv/bin/python benchmarks/netlist_speed.py [--repeat 3]

Writes ``benchmarks/results/netlist_speed.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import yaml

from vle_hw.circuit import plan_behavioural
from vle_hw.network import build_network
from vle_hw.pipeline import build_deck
from vle_hw.signals import build_inputs, build_targets
from vle_hw.spec import default_spec_text, parse_spec_text

HERE = Path(__file__).resolve().parent
# (inputs, hidden, outputs): student synapses k*h + h*o
SIZES = [(2, 2, 1), (5, 5, 2), (10, 10, 5), (20, 20, 10), (40, 40, 20), (50, 80, 12)]


def spec_for(k: int, h: int, o: int, plastic: bool, t_stop: float = 10.0):
    data = yaml.safe_load(default_spec_text())
    data["name"] = f"bench_{k}_{h}_{o}"
    layers = [
        {"size": h, "phi": "tanh", "tau_m": 1.0, "tau_r": 0.5, "gamma": 0.0},
        {"size": o, "phi": "linear", "tau_m": 1.0, "tau_r": 1.0, "gamma": 0.0},
    ]
    weights = {"init": "random", "std": 0.3, "seed": 1}
    data["network"] = {
        "inputs": k,
        "layers": layers,
        "beta": 0.1,
        "eta": 1.0 if plastic else 0.0,
        "weights": weights,
        "biases": "none",
    }
    data["teacher"] = {"weights": dict(weights, seed=2)}
    data["input"] = [
        {"kind": "sines", "amplitudes": [1.0], "omegas": [0.5 + 0.1 * c]}
        for c in range(k)
    ]
    data["simulation"] = {"t_stop": t_stop}
    text = yaml.safe_dump(copy.deepcopy(data), sort_keys=False)
    return parse_spec_text(text, "bench", "yaml"), text


def measure(k: int, h: int, o: int, plastic: bool, repeat: int) -> dict:
    spec, text = spec_for(k, h, o, plastic)
    network = build_network(spec)
    plan = plan_behavioural(
        spec, network, build_inputs(spec), build_targets(spec), {"bench": "0"}
    )
    elements = plan.element_count()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        deck = build_deck(spec, text)
        best = min(best, time.perf_counter() - started)
    return {
        "network": f"{k} -> {h} -> {o}",
        "plastic": plastic,
        "synapses": 2 * (k * h + h * o),
        "elements": elements,
        "deck_bytes": len(deck.text.encode()),
        "seconds": best,
        "elements_per_sec": elements / best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [
        measure(k, h, o, plastic, args.repeat)
        for plastic in (False, True)
        for k, h, o in SIZES
    ]
    out = HERE / "results" / "netlist_speed.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print("| network | plastic | synapses (with teacher) | elements | s | elements/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['network']} | {r['plastic']} | {r['synapses']} | {r['elements']} "
            f"| {r['seconds']:.3f} | {r['elements_per_sec']:.0f} |"
        )


if __name__ == "__main__":
    main()
