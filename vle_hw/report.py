"""Figures of a verify run: ODE and SPICE overlaid for the output rate, one error
unit and the weights."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vle_hw.trace import Trace  # noqa: E402


def _window(t: np.ndarray, start: float, stop: float) -> np.ndarray:
    return (t >= start) & (t <= stop)


def verify_figure(
    ode: Trace,
    spice: Trace,
    output: str,
    error: str,
    teacher_weights: dict[str, float] | None = None,
) -> bytes:
    """PNG bytes: ODE and SPICE overlaid, and their difference over the run.

    Panels: the output rate at the start and at the end of the run, an error
    unit at the start, the weights (with the teacher's as dotted lines), and
    |SPICE - ODE| over the whole run for the output rate, the error and each
    weight, on a log scale, so that agreement far below the line width shows.

    Parameters
    ----------
    ode, spice : Trace
        Same time grid, model units.
    output, error : str
        Names of the output-rate and error signals to show.
    teacher_weights : dict of str -> float, optional
        Teacher value of each weight signal, drawn as a reference.
    """
    t = spice.t
    span = min(12.0, 0.1 * (t[-1] - t[0])) if t[-1] > t[0] else 1.0
    fig, axes = plt.subplots(3, 2, figsize=(11, 10), constrained_layout=True)
    panels = [
        (axes[0, 0], output, (t[0], t[0] + span), "output rate, start"),
        (axes[0, 1], output, (t[-1] - span, t[-1]), "output rate, end"),
        (axes[1, 0], error, (t[0], t[0] + span), "error unit, start"),
    ]
    for ax, name, (lo, hi), title in panels:
        mask = _window(t, lo, hi)
        ax.plot(t[mask], ode.signals[name][mask], lw=2.5, alpha=0.5, label="ODE")
        ax.plot(t[mask], spice.signals[name][mask], lw=1, ls="--", label="SPICE")
        if name.startswith("r_") and "y_n0" in ode.signals:
            ax.plot(
                t[mask],
                ode.signals["y_n0"][mask],
                lw=0.8,
                color="k",
                alpha=0.6,
                label="target y",
            )
        ax.set_title(f"{title}: {name}")
        ax.set_xlabel("t (model units)")
        ax.set_ylabel(f"{name} (model units)")
        ax.legend(fontsize=8, loc="best", framealpha=0.8)

    ax = axes[1, 1]
    weights = [n for n in ode.signals if n.startswith(("w_", "b_"))][:8]
    for name in weights:
        line = ax.plot(t, ode.signals[name], lw=2.5, alpha=0.5, label=f"{name} ODE")
        ax.plot(
            t,
            spice.signals[name],
            lw=1,
            ls="--",
            color="k",
            alpha=0.7,
            label=f"{name} SPICE",
        )
        if teacher_weights and name in teacher_weights:
            ax.axhline(
                teacher_weights[name],
                ls=":",
                color=line[0].get_color(),
                label=f"{name} teacher",
            )
    ax.set_title("weights" if weights else "weights (frozen: none plastic)")
    ax.set_xlabel("t (model units)")
    ax.set_ylabel("weight (model units)")
    if weights:
        ax.legend(fontsize=7, loc="best", framealpha=0.8)

    ax = axes[2, 0]
    for name in (output, error):
        diff = np.abs(spice.signals[name] - ode.signals[name])
        ax.semilogy(t, np.maximum(diff, 1e-12), lw=0.6, label=name)
    ax.set_title("|SPICE - ODE|, output rate and error unit")
    ax.set_xlabel("t (model units)")
    ax.set_ylabel("absolute difference (model units)")
    ax.legend(fontsize=8)

    ax = axes[2, 1]
    for name in weights:
        diff = np.abs(spice.signals[name] - ode.signals[name])
        ax.semilogy(t, np.maximum(diff, 1e-12), lw=0.8, label=name)
    ax.set_title("|SPICE - ODE|, weights")
    ax.set_xlabel("t (model units)")
    ax.set_ylabel("absolute difference (model units)")
    if weights:
        ax.legend(fontsize=8)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
