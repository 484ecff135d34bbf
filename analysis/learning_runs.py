"""Measure the learning numbers of issue #3 (``vle-hw train``) and print them.

Runs, each through the public API (:func:`vle_hw.train`):

1. LagLine with tau_m learning (examples/lagline_tau.yaml): when the weights
   settle within 1 % and tau_m within 5 % of the teacher's (1, 2);
2. LagLine (examples/lagline.yaml) in the ODE reference and in the behavioural
   circuit (``spice=True``): when the ODE weights settle within 1 % of the
   teacher's (1, 2); run length, wall time, final SPICE weights, their
   distance to the teacher, and the largest deviation of the SPICE weights
   from the ODE student's over the run;
3. LagNet (examples/lagnet.yaml) with the local rule over a longer run: the
   learning curve of W_1 toward [[-0.5], [1]].

Usage (from the repository root; a few minutes on a 2-core machine)::

    python analysis/learning_runs.py [--out vle_hw_out/learning_runs] [--only NAME]

Each run's curves and figure land in <out>/<name>/; the numbers are printed and
merged into <out>/summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vle_hw import load_spec, train

ROOT = Path(__file__).resolve().parent.parent
RUNS = {
    "lagline_tau_ode": ("examples/lagline_tau.yaml", {}),
    "lagline_spice": ("examples/lagline.yaml", {"spice": True}),
    "lagnet_ode": ("examples/lagnet.yaml", {"t_stop": 400.0}),
}


def _lagnet_points(curves: dict, times: list[float]) -> list[dict]:
    """W_1 and the teacher distance at a few times along the curve."""
    t = curves["t"]
    out = []
    for when in times:
        k = min(range(len(t)), key=lambda i: abs(t[i] - when))
        out.append(
            {
                "t": t[k],
                "W1": curves["weights"]["W1"][k],
                "teacher_distance": curves["teacher_distance"][k],
                "loss": curves["loss"][k],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="vle_hw_out/learning_runs")
    parser.add_argument("--only", choices=sorted(RUNS), action="append")
    args = parser.parse_args()
    out = Path(args.out)
    summary_path = out / "summary.json"
    for name, (spec_path, options) in RUNS.items():
        if args.only and name not in args.only:
            continue
        spec, text = load_spec(ROOT / spec_path)
        started = time.perf_counter()
        result = train(spec, text, out / name, force=True, **options)
        wall = time.perf_counter() - started
        row = {
            "spec": spec_path,
            "t_stop": result.settings["t_stop"],
            "eta": result.settings["eta"],
            "eta_tau": result.settings["eta_tau"],
            "wall_sec": wall,
            "timings": result.timings,
            "summary": result.summary,
        }
        if result.comparison:
            row["comparison"] = result.comparison
        if name.startswith("lagnet"):
            t_end = result.settings["t_stop"]
            row["W1_along_the_run"] = _lagnet_points(
                result.curves["ode"], [0, t_end / 8, t_end / 4, t_end / 2, t_end]
            )
        print(json.dumps({name: row}, indent=1), flush=True)
        # merged at write time: runs started separately (--only) keep each other's
        summary = {}
        if summary_path.exists():
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        summary[name] = row
        out.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
