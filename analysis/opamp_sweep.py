"""Op-amp level on LagLine: error against GBW and A0, measured and predicted.

For each op-amp (GBW sweep 1 MHz..1 GHz at A0 = 100 dB, A0 sweep 60..120 dB
at GBW = 100 MHz) this runs ``verify --level opamp`` on LagLine at the default
time scale (10 us per model unit) with a short t_stop, exact part values
(``components.series: exact``, so only the op-amp departs from the ideal) and
compares, per op-amp output signal (u, u_prosp, v, e of student and teacher),
the measured NRMSE with the first-order prediction of
:func:`vle_hw.components.predicted_errors` computed from the ODE traces (each
stage's -(1/A0 + s/w_t) NG(s) times its ideal output, propagated through the
later stages and, linearised, through phi, alpha, the synaptic sums and the
weights).

Writes analysis/opamp_sweep.csv (one row per point and signal) and
analysis/opamp_sweep.png. Run: ``nice python analysis/opamp_sweep.py``
(about 4 minutes on an idle core).
"""

from __future__ import annotations

import csv
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from vle_hw import VerifyPaths, build_network, verify  # noqa: E402
from vle_hw.components import (  # noqa: E402
    cell_error_model,
    network_stages,
    predicted_errors,
)
from vle_hw.spec import default_spec_text, parse_spec_text  # noqa: E402
from vle_hw.trace import load_traces  # noqa: E402

HERE = Path(__file__).resolve().parent
T_STOP = 20.0  # model units: five input periods
GBW_POINTS = [1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9]
A0_POINTS = [60.0, 70.0, 80.0, 90.0, 100.0, 110.0, 120.0]
STAGE_CLASSES = ("u", "u_prosp", "v", "e")


def _spec(a0_db: float, gbw_hz: float):
    data = yaml.safe_load(default_spec_text())
    data["simulation"]["t_stop"] = T_STOP
    data["simulation"]["timeout_sec"] = 600.0
    data["components"] = {"series": "exact"}
    data["opamp"] = {"a0_db": a0_db, "gbw_hz": gbw_hz, "slew_volt_per_sec": 1e9}
    text = yaml.safe_dump(data, sort_keys=False)
    return parse_spec_text(text, "sweep", "yaml"), text


def _nrmse(err: np.ndarray, ref: np.ndarray, t: np.ndarray) -> float:
    scale = max(float(np.ptp(ref)), 1e-9)
    return float(np.sqrt(np.trapezoid((err / scale) ** 2, t) / (t[-1] - t[0])))


def run_point(a0_db: float, gbw_hz: float, work: Path) -> list[dict]:
    spec, text = _spec(a0_db, gbw_hz)
    out = work / f"a{a0_db:g}_g{gbw_hz:g}"
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = verify(spec, text, VerifyPaths.default(out, spec.name), level="opamp")
    wall = time.perf_counter() - started
    traces = load_traces(result.paths.traces)
    ode = traces["ode"]
    t_sec = ode.t * spec.hardware.time_sec_per_unit
    network = build_network(spec)
    stages = network_stages(spec, network)
    cells = cell_error_model(spec, network, ode.signals, ode.t)
    predicted = predicted_errors(
        stages, ode.signals, t_sec, 10 ** (a0_db / 20), gbw_hz, cells
    )
    tau_min = min(st.tau_sec for st in stages if st.kind == "integrator")
    rows = []
    for r in result.comparison.results:
        if r.name not in predicted:
            continue
        pred = _nrmse(predicted[r.name], ode.signals[r.name], ode.t)
        rows.append(
            {
                "a0_db": a0_db,
                "gbw_hz": gbw_hz,
                "gbw_tau_min": gbw_hz * tau_min,
                "signal": r.name,
                "measured_nrmse": r.nrmse,
                "predicted_nrmse": pred,
                "ratio_measured_over_predicted": r.nrmse / pred if pred else math.nan,
                "wall_sec": wall,
            }
        )
    return rows


def _crossing(xs, ys, level):
    """x (log-interpolated) where ys first falls below `level` going up in x."""
    for k in range(len(xs) - 1):
        (x0, y0), (x1, y1) = (xs[k], ys[k]), (xs[k + 1], ys[k + 1])
        if y0 > level >= y1:
            f = (math.log(level) - math.log(y0)) / (math.log(y1) - math.log(y0))
            return math.exp(math.log(x0) + f * (math.log(x1) - math.log(x0)))
    return math.nan


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gbw in GBW_POINTS:
            rows += run_point(100.0, gbw, Path(tmp))
            print(f"gbw {gbw:.0e}: done", flush=True)
        for a0 in A0_POINTS:
            if a0 == 100.0:  # the GBW sweep's 100 MHz point
                continue
            rows += run_point(a0, 1e8, Path(tmp))
            print(f"a0 {a0:g} dB: done", flush=True)
    with open(HERE / "opamp_sweep.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    def worst(key, value, other_key, other_value, field):
        sel = [r for r in rows if r[key] == value and r[other_key] == other_value]
        return max(r[field] for r in sel)

    gbw_meas = [
        worst("gbw_hz", g, "a0_db", 100.0, "measured_nrmse") for g in GBW_POINTS
    ]
    gbw_pred = [
        worst("gbw_hz", g, "a0_db", 100.0, "predicted_nrmse") for g in GBW_POINTS
    ]
    a0_meas = [worst("a0_db", a, "gbw_hz", 1e8, "measured_nrmse") for a in A0_POINTS]
    a0_pred = [worst("a0_db", a, "gbw_hz", 1e8, "predicted_nrmse") for a in A0_POINTS]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].loglog(GBW_POINTS, gbw_meas, "o-", label="measured (worst signal)")
    axes[0].loglog(GBW_POINTS, gbw_pred, "s--", label="first-order prediction")
    axes[0].set_xlabel("GBW (Hz), A0 = 100 dB")
    a0_lin = [10 ** (a / 20) for a in A0_POINTS]
    axes[1].loglog(a0_lin, a0_meas, "o-", label="measured (worst signal)")
    axes[1].loglog(a0_lin, a0_pred, "s--", label="first-order prediction")
    axes[1].set_xlabel("A0 (V/V), GBW = 100 MHz")
    for ax in axes:
        ax.axhline(1e-2, color="gray", lw=0.8)
        ax.axhline(1e-1, color="gray", lw=0.8, ls=":")
        ax.set_ylabel("NRMSE against the ODE")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("LagLine, op-amp level, 10 us per model unit, exact R and C")
    fig.tight_layout()
    fig.savefig(HERE / "opamp_sweep.png", dpi=120)

    print("GBW sweep (A0 100 dB): worst measured / predicted")
    for g, m, p in zip(GBW_POINTS, gbw_meas, gbw_pred, strict=True):
        print(f"  {g:8.0e} Hz  {m:.3e}  {p:.3e}  ratio {m / p:.2f}")
    print("A0 sweep (GBW 100 MHz):")
    for a, m, p in zip(A0_POINTS, a0_meas, a0_pred, strict=True):
        print(f"  {a:5.0f} dB  {m:.3e}  {p:.3e}  ratio {m / p:.2f}")
    for level in (1e-1, 1e-2):
        print(
            f"error crosses {level:g}: GBW {_crossing(GBW_POINTS, gbw_meas, level):.3g}"
            f" Hz; A0 {_crossing(a0_lin, a0_meas, level):.3g} V/V"
        )
    fast = [r for r in rows if r["gbw_tau_min"] >= 10]
    ratios = [r["ratio_measured_over_predicted"] for r in fast]
    inside = sum(0.5 <= q <= 2.0 for q in ratios)
    print(
        f"points with GBW tau_min >= 10: per-signal ratio measured/predicted "
        f"{min(ratios):.2f} .. {max(ratios):.2f}; {inside} of {len(ratios)} "
        "signal-points within a factor of 2"
    )
    for r in fast:
        q = r["ratio_measured_over_predicted"]
        if not 0.5 <= q <= 2.0:
            print(
                f"  outside: A0 {r['a0_db']:g} dB GBW {r['gbw_hz']:.0e} "
                f"{r['signal']} ratio {q:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
