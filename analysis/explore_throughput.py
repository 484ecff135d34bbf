"""Parallel efficiency of vle-hw explore: a 40-run Monte Carlo of LagLine.

Runs the same study (LagLine, behavioural level, 1 % R and C mismatch, 40
samples, 100 model time units each, learning metrics) on a local Dask cluster
of 1 worker and of N workers (default: all cores), and reports runs per minute
and the parallel efficiency (rate at N) / (N x rate at 1). Writes
``analysis/explore_throughput.json``.

    .venv/bin/python analysis/explore_throughput.py [--workers N] [--samples 40]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from vle_hw.explore import run_study
from vle_hw.study import load_study

HERE = Path(__file__).resolve().parent


def study_file(folder: Path, samples: int) -> Path:
    data = {
        "name": "throughput",
        "base": str(HERE.parent / "examples" / "lagline.yaml"),
        "fixed": {
            "simulation.t_stop": 100.0,
            "mismatch.r_rel": 0.01,
            "mismatch.c_rel": 0.01,
        },
        "monte_carlo": {"samples": samples},
        "metrics": ["learning"],
    }
    path = folder / "throughput.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def measure(workers: int, samples: int, folder: Path) -> dict:
    study = load_study(study_file(folder, samples))
    started = time.perf_counter()
    outcome = run_study(
        study, folder / f"out_{workers}", workers=workers, figures=False
    )
    wall = time.perf_counter() - started
    return {
        "workers": workers,
        "runs": len(outcome.rows),
        "failed": outcome.failed,
        "wall_sec": wall,
        "runs_per_minute": 60.0 * len(outcome.rows) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = measure(1, args.samples, Path(tmp))
        many = measure(args.workers, args.samples, Path(tmp))
    efficiency = many["runs_per_minute"] / (args.workers * one["runs_per_minute"])
    result = {
        "study": "LagLine, behavioural, 1 % R/C mismatch, 100 units per run",
        "cores": os.cpu_count(),
        "one_worker": one,
        "n_workers": many,
        "parallel_efficiency": efficiency,
    }
    (HERE / "explore_throughput.json").write_text(
        json.dumps(result, indent=2) + "\n", encoding="utf-8"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
