"""Input and target signals: exact values for the ODE reference, and the source
description the netlist writer turns into an ngspice source.

A signal is either analytic in both engines (an ngspice B-source of ``time``),
or a piecewise-linear table. Tables are exact for sampled signals
(Ornstein-Uhlenbeck, CSV), where the ODE reference interpolates the same table
linearly. The smoothed square wave has erf edges; ngspice has no erf, so its
B-source uses the Abramowitz-Stegun 7.1.26 rational approximation (absolute
error below 1.5e-7), and the largest deviation from the exact wave is measured
and printed in the deck header.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.special import erf

from vle_hw.errors import SpecError
from vle_hw.spec import (
    MAX_TABLE_POINTS,
    CsvSamples,
    OrnsteinUhlenbeck,
    Sines,
    SmoothedSquare,
    Spec,
    read_csv_samples,
)

MAX_PWL_POINTS = MAX_TABLE_POINTS


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
class Analytic:
    """A closed form in model time ``t`` (sympy), printed as a B-source."""

    expr: sp.Expr
    max_error: float = 0.0  # largest deviation from the exact signal


T_MODEL = sp.Symbol("t", real=True)
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def erf_approx(arg: sp.Expr) -> sp.Expr:
    """Abramowitz-Stegun 7.1.26: erf to 1.5e-7 with exp, abs and sign only."""
    mag = sp.Abs(arg)
    q = 1 / (1 + _AS_P * mag)
    poly = sum(a * q ** (k + 1) for k, a in enumerate(_AS_A))
    return sp.sign(arg) * (1 - poly * sp.exp(-(mag**2)))


@dataclass(frozen=True)
class Signal:
    """One channel: exact values for the reference, a source for the netlist."""

    name: str
    source: Pwl | SineSum | Analytic
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


def smoothed_square(g: SmoothedSquare) -> Signal:
    # SmoothedSquare's validator keeps sigma <= period / 8 x min(duty, 1 - duty),
    # so the neighbouring edges (k = -1, 0, 1) below are the only ones that matter.
    exact = _smoothed_square_exact(g)
    # The circuit's closed form: phase within the period, neighbouring edges.
    phase = T_MODEL - g.delay - g.period * sp.floor((T_MODEL - g.delay) / g.period)
    scale = math.sqrt(2.0) * g.sigma
    level = 0
    for k in (-1, 0, 1):
        level += erf_approx((phase - k * g.period) / scale)
        level -= erf_approx((phase - g.duty * g.period - k * g.period) / scale)
    expr = g.low + (g.high - g.low) * sp.Rational(1, 2) * level
    # probed densely across every edge of three periods (where the closed form
    # can err) and coarsely in between, whatever the period-to-sigma ratio
    edges = g.delay + g.period * np.array([0, g.duty, 1, 1 + g.duty, 2, 2 + g.duty])
    across = np.linspace(-8.0 * g.sigma, 8.0 * g.sigma, 4_001)
    probe = np.concatenate(
        [np.linspace(0.0, 3.0 * g.period, 30_001), *(e + across for e in edges)]
    )
    approx = sp.lambdify(T_MODEL, expr, modules="numpy")(probe)
    max_error = float(np.max(np.abs(approx - exact(probe))))
    return Signal(
        "smoothed_square", Analytic(expr, max_error), feature=g.sigma, exact=exact
    )


def sines(g: Sines) -> Signal:
    phases = tuple(g.phases) if g.phases is not None else (0.0,) * len(g.omegas)
    source = SineSum(tuple(g.amplitudes), tuple(g.omegas), phases, g.offset)
    return Signal("sines", source, feature=1.0 / max(g.omegas))


def ornstein_uhlenbeck(g: OrnsteinUhlenbeck, t_stop: float, seed: int) -> Signal:
    rng = np.random.default_rng(seed if g.seed is None else g.seed)
    n = int(math.ceil(t_stop / g.dt)) + 1  # spec validation keeps n <= MAX_PWL_POINTS
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
        raise SpecError(
            f"{field}.path = {g.path!r} has {len(data)} samples; fix: keep at most "
            f"{MAX_PWL_POINTS} (resample the file more coarsely)."
        )
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
