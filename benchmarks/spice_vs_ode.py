"""ngspice against the ODE reference on the same network and simulated span.

Plastic two-layer teacher-student decks with 30 neurons per layer
(``k -> 30 -> 30``, tanh hidden, linear output, gamma 0, learning on) and the
default LagLine, each simulated for ``--t-stop`` model units by

- the ODE reference (:func:`vle_hw.reference.simulate_reference`, DOP853,
  rtol 1e-10, atol 1e-12: the settings ``verify`` uses), wall time in this
  process;
- ngspice (``ngspice -b`` on the deck ``verify`` writes), CPU time of the
  child; and, with ``--ngspice46 PATH``, ngspice 46 with KLU.

The ratio is ngspice time / ODE time (issue #6's goal: at most 30 for the
plastic 30-neuron decks).

    .venv/bin/python benchmarks/spice_vs_ode.py [--t-stop 20] [--ngspice46 PATH]

Writes ``benchmarks/results/spice_vs_ode.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from netlist_speed import spec_for  # noqa: E402
from ngspice_scaling import ngspice_engines, run  # noqa: E402

from vle_hw.network import build_network  # noqa: E402
from vle_hw.pipeline import build_deck  # noqa: E402
from vle_hw.reference import simulate_reference  # noqa: E402
from vle_hw.signals import build_inputs, build_targets  # noqa: E402
from vle_hw.spec import load_spec, parse_spec_text  # noqa: E402

HERE = Path(__file__).resolve().parent


def cases(t_stop: float):
    for k in (1, 5, 30):
        spec, text = spec_for(k, 30, 30, plastic=True, t_stop=t_stop)
        yield f"{k} -> 30 -> 30, plastic", spec, text
    spec, text = load_spec()
    text = text.replace("t_stop: 400.0", f"t_stop: {t_stop}")
    yield "LagLine (default)", parse_spec_text(text, "lagline", "yaml"), text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-stop", type=float, default=20.0)
    parser.add_argument("--ngspice46", default=None)
    args = parser.parse_args()
    engines = ngspice_engines(args.ngspice46, sparse_too=False)
    rows = []
    for label, spec, text in cases(args.t_stop):
        network = build_network(spec)
        started = time.perf_counter()
        simulate_reference(
            network,
            build_inputs(spec),
            spec.simulation.t_stop,
            spec.initial_state,
            build_targets(spec),
        )
        ode = time.perf_counter() - started
        deck = build_deck(spec, text).text
        row = {"case": label, "t_stop": spec.simulation.t_stop, "ode_sec": ode}
        for engine, binary, option, env in engines:
            text_e = deck.replace("\n.tran ", f"\n.options {option}\n.tran ", 1)
            result = run(binary, text_e if option else deck, env)
            row[engine] = result
            row[f"ratio {engine}"] = result["cpu_sec"] / ode
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = HERE / "results" / "spice_vs_ode.json"
    out.parent.mkdir(exist_ok=True)
    result = {"t_stop_model_units": args.t_stop, "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    names = [e[0] for e in engines]
    print("| case | ODE s | " + " | ".join(f"{n} s (ratio)" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for r in rows:
        cells = " | ".join(
            f"{r[n]['cpu_sec']:.2f} ({r[f'ratio {n}']:.2f})" for n in names
        )
        print(f"| {r['case']} | {r['ode_sec']:.2f} | {cells} |")


if __name__ == "__main__":
    main()
