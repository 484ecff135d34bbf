"""Input and target signals: exact values for the ODE reference, and the source
description the netlist writer turns into an ngspice source.

A signal is either analytic in both engines (a sum of sines: an ngspice
B-source of ``time``), or a piecewise-linear table. Tables are exact for sampled
signals (Ornstein-Uhlenbeck, CSV), where the ODE reference interpolates the same
table linearly. The smoothed square wave is analytic (erf edges) in the ODE;
ngspice has no erf, so the deck gets an adaptively sampled table whose linear
interpolation error is below ``PWL_TOLERANCE_REL`` of the amplitude, and the
largest error is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from vle_hw.errors import SpecError
from vle_hw.spec import (
    CsvSamples,
    OrnsteinUhlenbeck,
    Sines,
    SmoothedSquare,
    Spec,
    read_csv_samples,
)

PWL_TOLERANCE_REL = 1e-6
MAX_PWL_POINTS = 2_000_000


@dataclass(frozen=True)
class Pwl:
    """Piecewise-linear table (model units); repeats with `period` if given."""

    times: np.ndarray
    values: np.ndarray
    period: float | None = None
    max_interp_error: float = 0.0


@dataclass(frozen=True)
class SineSum:
    amplitudes: tuple[float, ...]
    omegas: tuple[float, ...]  # rad per model time unit
    phases: tuple[float, ...]
    offset: float


@dataclass(frozen=True)
class Signal:
    """One channel: exact values for the reference, a source for the netlist."""

    name: str
    source: Pwl | SineSum
    feature: float  # fastest feature, model time units (sets the max step)
    exact: object = None  # callable t -> value when the table is an approximation

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        if self.exact is not None:
            return self.exact(t)
        src = self.source
        if isinstance(src, SineSum):
            t = np.asarray(t, dtype=float)
            total = np.full_like(t, src.offset)
            for a, w, p in zip(src.amplitudes, src.omegas, src.phases, strict=True):
                total = total + a * np.sin(w * t + p)
            return total
        t = np.asarray(t, dtype=float)
        if src.period is not None:
            t = np.mod(t, src.period)
        return np.interp(t, src.times, src.values)


def _smoothed_square_exact(g: SmoothedSquare):
    rise = g.delay % g.period
    fall = rise + g.duty * g.period
    scale = math.sqrt(2.0) * g.sigma
    reach = int(math.ceil(8.0 * g.sigma / g.period)) + 1
    shifts = np.arange(-reach, reach + 2) * g.period

    def value(t):
        t = np.asarray(t, dtype=float)
        phase = np.mod(t - rise, g.period) + rise
        level = np.zeros_like(phase)
        for k in shifts:
            level = level + 0.5 * (
                erf((phase - rise - k) / scale) - erf((phase - fall - k) / scale)
            )
        return g.low + (g.high - g.low) * level

    return value


def _adaptive_table(func, t0: float, t1: float, h0: float, tol: float):
    """Sample `func` on [t0, t1] so that linear interpolation is within `tol`."""
    times = np.linspace(t0, t1, max(3, int(math.ceil((t1 - t0) / h0)) + 1))
    for _ in range(40):
        values = func(times)
        mids = 0.5 * (times[:-1] + times[1:])
        quarter = times[:-1] + 0.25 * np.diff(times)
        bad = np.zeros(len(mids), dtype=bool)
        for probe in (mids, quarter, times[:-1] + 0.75 * np.diff(times)):
            frac = (probe - times[:-1]) / np.diff(times)
            linear = values[:-1] + frac * np.diff(values)
            bad |= np.abs(func(probe) - linear) > tol
        if not bad.any():
            break
        times = np.sort(np.concatenate([times, mids[bad]]))
        if len(times) > MAX_PWL_POINTS:
            raise SpecError(
                f"input: the table needs more than {MAX_PWL_POINTS} points; "
                "increase input.sigma."
            )
    values = func(times)
    # Drop interior points that lie on the line through their neighbours.
    keep = np.ones(len(times), dtype=bool)
    flat = np.abs(np.diff(values, 2)) < 1e-15
    keep[1:-1] = ~flat
    times, values = times[keep], values[keep]
    fine = np.linspace(t0, t1, 200_001)
    error = float(np.max(np.abs(np.interp(fine, times, values) - func(fine))))
    return times, values, error


def smoothed_square(g: SmoothedSquare) -> Signal:
    if g.sigma > 0.25 * g.period * min(g.duty, 1.0 - g.duty):
        raise SpecError(
            f"input.sigma = {g.sigma} is too wide for a square wave of period "
            f"{g.period} and duty {g.duty}; use sigma <= "
            f"{0.25 * g.period * min(g.duty, 1 - g.duty):.4g}."
        )
    exact = _smoothed_square_exact(g)
    amplitude = abs(g.high - g.low)
    tol = PWL_TOLERANCE_REL * max(amplitude, 1e-30)
    times, values, error = _adaptive_table(exact, 0.0, g.period, g.sigma / 4, tol)
    source = Pwl(times, values, period=g.period, max_interp_error=error)
    return Signal("smoothed_square", source, feature=g.sigma, exact=exact)


def sines(g: Sines) -> Signal:
    phases = tuple(g.phases) if g.phases is not None else (0.0,) * len(g.omegas)
    source = SineSum(tuple(g.amplitudes), tuple(g.omegas), phases, g.offset)
    return Signal("sines", source, feature=1.0 / max(g.omegas))


def ornstein_uhlenbeck(g: OrnsteinUhlenbeck, t_stop: float, seed: int) -> Signal:
    rng = np.random.default_rng(seed if g.seed is None else g.seed)
    n = int(math.ceil(t_stop / g.dt)) + 1
    if n > MAX_PWL_POINTS:
        raise SpecError(
            f"input.dt = {g.dt} gives {n} samples for t_stop = {t_stop}; "
            f"keep it under {MAX_PWL_POINTS} (raise input.dt)."
        )
    decay = math.exp(-g.dt / g.tau)
    noise = g.std * math.sqrt(1.0 - decay**2) * rng.standard_normal(n)
    values = np.empty(n)
    values[0] = g.mean + g.std * rng.standard_normal()
    for k in range(1, n):
        values[k] = g.mean + decay * (values[k - 1] - g.mean) + noise[k]
    times = np.arange(n) * g.dt
    return Signal("ou", Pwl(times, values), feature=g.dt)


def csv_channels(g: CsvSamples, field: str, channels: int, t_stop: float):
    data = read_csv_samples(g.path, field, channels)
    if data[0, 0] > 0 or data[-1, 0] < t_stop:
        raise SpecError(
            f"{field}.path = {g.path!r}: samples cover t = {data[0, 0]:g} to "
            f"{data[-1, 0]:g} but the run needs 0 to {t_stop:g}; extend the file "
            "or shorten simulation.t_stop."
        )
    if len(data) > MAX_PWL_POINTS:
        raise SpecError(f"{field}.path: more than {MAX_PWL_POINTS} samples.")
    feature = float(np.min(np.diff(data[:, 0])))
    return [
        Signal(f"csv_{k}", Pwl(data[:, 0].copy(), data[:, 1 + k].copy()), feature)
        for k in range(channels)
    ]


def build_inputs(spec: Spec) -> list[Signal]:
    """One :class:`Signal` per input channel of `spec`."""
    t_stop = spec.simulation.t_stop
    if isinstance(spec.input, CsvSamples):
        return csv_channels(spec.input, "input", spec.network.inputs, t_stop)
    items = spec.input if isinstance(spec.input, list) else [spec.input]
    signals = []
    for k, item in enumerate(items):
        if isinstance(item, SmoothedSquare):
            signals.append(smoothed_square(item))
        elif isinstance(item, Sines):
            signals.append(sines(item))
        elif isinstance(item, OrnsteinUhlenbeck):
            signals.append(ornstein_uhlenbeck(item, t_stop, spec.seed + 1000 * k))
    return signals


def build_targets(spec: Spec) -> list[Signal] | None:
    """Target channels read from CSV, or None when the teacher makes them."""
    if isinstance(spec.target, CsvSamples):
        outputs = spec.network.layers[-1].size
        return csv_channels(spec.target, "target", outputs, spec.simulation.t_stop)
    return None
