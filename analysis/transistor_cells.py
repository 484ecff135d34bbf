"""Measure the MOS cells and LagLine at the transistor level (issue #4).

Writes analysis/out/transistor_cells.json (and the decks, logs and traces under
analysis/out/) and prints a summary. Run from the project root:

    nice python analysis/transistor_cells.py [--t-stop 400]

1. Per cell, static sweeps in ngspice: phi = tanh and softplus against the
   ideal (max error, % of full scale), phi' against the ideal (% of peak), the
   Gilbert multiplier on each input and the transconductor (linear range to 1 %,
   gain error).
2. LagLine (examples/lagline.yaml) at the transistor level with the time scale
   raised to 1 ms per model unit (the cells, biased at about 1 nA, lag by about
   0.9 us: at the spec's 10 us per unit that is as slow as tau_r), and a short
   run at the spec's 10 us per unit to show that lag (it does not converge:
   recorded as an error): NRMSE per signal class against the ODE, wall time,
   final weights.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import yaml

from vle_hw.errors import NgspiceRunError
from vle_hw.pipeline import VerifyPaths, verify
from vle_hw.spec import parse_spec_text
from vle_hw.transistor import characterise_multiplier, characterise_phi

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "analysis" / "out"


def _lagline(name: str, time_sec_per_unit: float, t_stop: float):
    data = yaml.safe_load((ROOT / "examples" / "lagline.yaml").read_text())
    data["name"] = name
    data["hardware"]["time_sec_per_unit"] = time_sec_per_unit
    data["simulation"]["t_stop"] = t_stop
    data["simulation"]["timeout_sec"] = 7200
    text = yaml.safe_dump(data, sort_keys=False)
    return parse_spec_text(text, name, "yaml"), text


def _run_lagline(
    name: str, time_sec_per_unit: float, t_stop: float, reuse: bool
) -> dict:
    """Verify LagLine at the transistor level; summarise its result.json.

    With `reuse`, an existing result.json of the same run is summarised
    instead of running again (its deck header names the spec hash).
    """
    spec, text = _lagline(name, time_sec_per_unit, t_stop)
    paths = VerifyPaths.default(OUT / name, name)
    row: dict = {"time_sec_per_unit": time_sec_per_unit, "t_stop": t_stop}
    if not (reuse and paths.json.exists()):
        started = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                verify(spec, text, paths, force=True, level="transistor")
        except NgspiceRunError as exc:
            row["error"] = str(exc)
            row["wall_sec"] = time.perf_counter() - started
            return row
        row["warnings"] = [str(w.message) for w in caught]
    else:
        row["reused"] = str(paths.json.relative_to(ROOT))
    info = json.loads(paths.json.read_text(encoding="utf-8"))
    row.update(
        {
            "timings": info["timings"],
            "ok_at_level_tolerance": info["ok"],
            "tolerances": info["tolerances"],
            "nrmse_by_class": {
                cls: r["nrmse_max"] for cls, r in sorted(info["by_class"].items())
            },
            "learning": info["learning"],
            "cells": info.get("cells", {}),
        }
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-stop", type=float, default=400.0)
    parser.add_argument("--short-t-stop", type=float, default=40.0)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="summarise LagLine runs whose result.json exists instead of rerunning",
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict = {"cells": {}, "lagline": {}}

    # --- 1: the cells on their own --------------------------------------------------
    t0 = time.perf_counter()
    for phi in ("tanh", "softplus"):
        results["cells"][f"phi_{phi}"] = characterise_phi(phi, OUT / "cells").to_dict()
    for swept in ("a", "b", "ota"):
        results["cells"][f"mult_{swept}"] = characterise_multiplier(
            OUT / "cells", swept=swept
        ).to_dict()
    results["cells_wall_sec"] = time.perf_counter() - t0
    print(json.dumps(results["cells"], indent=1))

    # --- 2: LagLine at the transistor level -------------------------------------------
    results["lagline"]["ms_per_unit"] = _run_lagline(
        "lagline_transistor_1ms", 1e-3, args.t_stop, args.reuse
    )
    print(json.dumps(results["lagline"]["ms_per_unit"], indent=1))
    results["lagline"]["10us_per_unit"] = _run_lagline(
        "lagline_transistor_10us", 1e-5, args.short_t_stop, args.reuse
    )
    print(json.dumps(results["lagline"]["10us_per_unit"], indent=1))
    (OUT / "transistor_cells.json").write_text(
        json.dumps(results, indent=2, sort_keys=True), encoding="utf-8"
    )
    print(f"wrote {OUT / 'transistor_cells.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
