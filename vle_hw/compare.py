"""Signal-by-signal comparison of two traces on the same time grid.

For every signal both traces hold: the time-weighted RMS error (trapezoidal
integral over the run, so dense time points near input edges do not weigh
more), the NRMSE (RMS error over the reference's range max - min, floored at
1e-9 of the signal's magnitude or of 1), and the largest absolute error and
where it occurs. Weights and biases are also held to ``weight_rel``: the largest
deviation relative to the reference's total movement over the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vle_hw.trace import Trace

SIGNAL_CLASSES = ("x", "y", "u", "u_prosp", "r", "v", "e", "w", "b")


def signal_class(name: str) -> str:
    """Class of a signal name: ``u_prosp_l1_n0`` -> ``u_prosp``.

    Examples
    --------
    >>> signal_class("teacher_u_prosp_l2_n0"), signal_class("w_l2_i0_j0")
    ('teacher_u_prosp', 'w')
    """
    prefix = "teacher_" if name.startswith("teacher_") else ""
    rest = name.removeprefix("teacher_")
    head = "u_prosp" if rest.startswith("u_prosp_") else rest.split("_", 1)[0]
    return prefix + head


@dataclass(frozen=True)
class SignalResult:
    name: str
    signal_class: str
    nrmse: float
    max_abs_err: float
    at_t: float
    ref_range: float
    weight_rel: float | None
    ok: bool


@dataclass(frozen=True)
class Comparison:
    results: tuple[SignalResult, ...]
    missing: tuple[str, ...]  # in one trace only
    tol_nrmse: float
    tol_weight_rel: float

    @property
    def ok(self) -> bool:
        return not self.missing and all(r.ok for r in self.results)

    def failing(self) -> list[str]:
        return [r.name for r in self.results if not r.ok] + list(self.missing)

    def by_class(self) -> dict[str, dict[str, float]]:
        """Worst NRMSE and max abs error per signal class."""
        table: dict[str, dict[str, float]] = {}
        for r in self.results:
            row = table.setdefault(
                r.signal_class, {"nrmse_max": 0.0, "max_abs_err": 0.0, "count": 0}
            )
            row["nrmse_max"] = max(row["nrmse_max"], r.nrmse)
            row["max_abs_err"] = max(row["max_abs_err"], r.max_abs_err)
            row["count"] += 1
        return table

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "tolerances": {"nrmse": self.tol_nrmse, "weight_rel": self.tol_weight_rel},
            "failing": self.failing(),
            "missing": list(self.missing),
            "by_class": self.by_class(),
            "signals": [asdict(r) for r in self.results],
        }


def _time_rms(err: np.ndarray, t: np.ndarray) -> float:
    span = t[-1] - t[0]
    if span <= 0:
        return float(np.sqrt(np.mean(err**2)))
    return float(np.sqrt(np.trapezoid(err**2, t) / span))


def compare(
    reference: Trace, candidate: Trace, tol_nrmse: float, tol_weight_rel: float
) -> Comparison:
    """Compare `candidate` against `reference`, signal by signal.

    Parameters
    ----------
    reference, candidate : Trace
        On the same time grid (model units).
    tol_nrmse : float
        Largest NRMSE accepted for any signal.
    tol_weight_rel : float
        Largest weight deviation accepted, relative to the weight's movement.

    Raises
    ------
    ValueError
        If the traces are not on the same time grid.

    Examples
    --------
    >>> t = np.linspace(0, 1, 11)
    >>> a = Trace(t, {"u_l1_n0": t}, "a"); b = Trace(t, {"u_l1_n0": t + 1e-6}, "b")
    >>> c = compare(a, b, 1e-4, 1e-3)
    >>> c.ok, round(c.results[0].nrmse, 9)
    (True, 1e-06)
    """
    if reference.t.shape != candidate.t.shape or not np.allclose(
        reference.t, candidate.t, rtol=0, atol=1e-12 * max(1.0, abs(reference.t[-1]))
    ):
        raise ValueError("compare() needs both traces on the same time grid")
    t = reference.t
    names = [n for n in reference.signals if n in candidate.signals]
    missing = sorted(set(reference.signals) ^ set(candidate.signals))
    results = []
    for name in names:
        ref, got = reference.signals[name], candidate.signals[name]
        err = got - ref
        ref_range = float(np.max(ref) - np.min(ref))
        # The range, floored at 1e-9 of the signal's size: a weight that barely
        # moves is judged against rounding, not against its movement alone.
        # LIMITATION(compare): a signal that stays at zero (every error unit of
        #   a student that starts at its teacher) has a scale of 1e-9, below
        #   ngspice's own resolution. Consequence: absolute errors of 1e-11 fail
        #   such a run; read max_abs_err for it. Issue #6 note.
        magnitude = max(float(np.max(np.abs(ref))), 1.0)
        scale = max(ref_range, 1e-9 * magnitude)
        nrmse = _time_rms(err / scale, t)  # scaled first: no overflow in err**2
        worst = int(np.argmax(np.abs(err)))
        max_abs = float(abs(err[worst]))
        cls = signal_class(name)
        weight_rel = None
        ok = nrmse <= tol_nrmse
        if cls in {"w", "b"}:
            weight_rel = max_abs / scale
            ok = ok and weight_rel <= tol_weight_rel
        results.append(
            SignalResult(
                name,
                cls,
                nrmse,
                max_abs,
                float(t[worst]),
                ref_range,
                weight_rel,
                bool(ok),
            )
        )
    return Comparison(tuple(results), tuple(missing), tol_nrmse, tol_weight_rel)


def summary_table(comparison: Comparison) -> str:
    """A plain-text table, one signal per line, for the terminal."""
    header = f"{'signal':<26}{'nrmse':>11}{'max_abs_err':>13}{'at_t':>10}  status"
    lines = [header, "-" * len(header)]
    for r in comparison.results:
        extra = f" (w_rel {r.weight_rel:.2e})" if r.weight_rel is not None else ""
        lines.append(
            f"{r.name:<26}{r.nrmse:>11.3e}{r.max_abs_err:>13.3e}{r.at_t:>10.2f}  "
            f"{'ok' if r.ok else 'FAIL'}{extra}"
        )
    for name in comparison.missing:
        lines.append(f"{name:<26}{'':>34}  MISSING in one trace")
    return "\n".join(lines)
