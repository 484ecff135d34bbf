"""Figures of a tradeoff study: metric against knob, Pareto fronts, yield histograms.

Each figure of a study file becomes one PNG in the study's ``figures/`` folder:

- ``sweep``: each metric of ``y`` against the knob ``x``, one line per value of
  ``series``; with Monte Carlo samples the line is the median and the band the
  10th to 90th percentile.
- ``pareto``: every finished run as a point in (``x``, ``y``), both minimised,
  with the non-dominated runs joined as the Pareto front.
- ``histogram``: the distribution of ``metric`` per group of knob values, with
  the threshold and the yield (fraction of runs at or below it; a failed run
  counts as out of spec).

Failed runs never enter a curve; their count is printed in the title.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from vle_hw.outputs import write_atomic  # noqa: E402
from vle_hw.study import HistogramFigure, ParetoFigure, Study, SweepFigure  # noqa: E402


def study_figures(study: Study, rows: list[dict], folder: Path) -> list[Path]:
    """Write every figure the study asks for; return their paths."""
    made = []
    for index, figure in enumerate(study.file.figures):
        if isinstance(figure, SweepFigure):
            png, name = _sweep(figure, rows), f"sweep_{figure.y[0]}"
        elif isinstance(figure, ParetoFigure):
            png, name = _pareto(figure, rows), f"pareto_{figure.x}_{figure.y}"
        else:
            assert isinstance(figure, HistogramFigure)
            png, name = _histogram(figure, rows), f"histogram_{figure.metric}"
        path = folder / f"{index:02d}_{name}.png"
        write_atomic(path, png)
        made.append(path)
    return made


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if np.isfinite(value) else None


def _ok(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("status") == "ok"]


def _failed_note(rows: list[dict]) -> str:
    failed = len(rows) - len(_ok(rows))
    return f" ({failed} failed run(s) left out)" if failed else ""


def _wide(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return (
        len(positive) == len(values)
        and bool(values)
        and (max(positive) / min(positive) >= 100)
    )


def _sweep(figure: SweepFigure, rows: list[dict]) -> bytes:
    ok = _ok(rows)
    fig, axes = plt.subplots(
        len(figure.y), 1, figsize=(7, 3.2 * len(figure.y)), squeeze=False
    )
    xs_all = [v for r in ok if (v := _number(r.get(f"knob:{figure.x}"))) is not None]
    log_x = figure.log_x if figure.log_x is not None else _wide(xs_all)
    series_key = f"knob:{figure.series}" if figure.series else None
    series_values = (
        list(dict.fromkeys(r.get(series_key) for r in ok)) if (series_key) else [None]
    )
    for ax, metric in zip(axes[:, 0], figure.y, strict=True):
        for value in series_values:
            members = [
                r for r in ok if series_key is None or r.get(series_key) == value
            ]
            by_x: dict[float, list[float]] = {}
            for r in members:
                x, y = _number(r.get(f"knob:{figure.x}")), _number(r.get(metric))
                if x is not None and y is not None:
                    by_x.setdefault(x, []).append(y)
            if not by_x:
                continue
            xs = sorted(by_x)
            med = [float(np.median(by_x[x])) for x in xs]
            label = (
                f"{figure.series} = {value:g}"
                if isinstance(value, int | float)
                else (f"{figure.series} = {value}" if figure.series else None)
            )
            line = ax.plot(xs, med, "o-", label=label)[0]
            if any(len(by_x[x]) > 1 for x in xs):
                lo = [float(np.percentile(by_x[x], 10)) for x in xs]
                hi = [float(np.percentile(by_x[x], 90)) for x in xs]
                ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
        ax.set_xlabel(figure.x)
        ax.set_ylabel(metric)
        if log_x:
            ax.set_xscale("log")
        if figure.log_y and all(
            (_number(r.get(metric)) or 0) > 0 for r in ok if metric in r
        ):
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        if figure.series:
            ax.legend(fontsize=8)
    axes[0, 0].set_title(
        f"{', '.join(figure.y)} against {figure.x}{_failed_note(rows)}", fontsize=10
    )
    fig.tight_layout()
    return _png(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (both coordinates minimised), sorted by x.

    Examples
    --------
    >>> pareto_front([(1, 5), (2, 3), (3, 4), (4, 1)])
    [(1, 5), (2, 3), (4, 1)]
    """
    front = []
    best_y = float("inf")
    for x, y in sorted(points):
        if y < best_y:
            front.append((x, y))
            best_y = y
    return front


def _pareto(figure: ParetoFigure, rows: list[dict]) -> bytes:
    ok = _ok(rows)
    pts, colors = [], []
    for r in ok:
        x, y = _number(r.get(figure.x)), _number(r.get(figure.y))
        if x is not None and y is not None:
            pts.append((x, y))
            colors.append(
                _number(r.get(f"knob:{figure.color}")) if figure.color else None
            )
    fig, ax = plt.subplots(figsize=(7, 5))
    if pts:
        xs, ys = zip(*pts, strict=True)
        if figure.color and all(c is not None for c in colors):
            log_c = _wide(colors)
            shown = np.log10(colors) if log_c else colors
            sc = ax.scatter(xs, ys, c=shown, cmap="viridis", s=25)
            bar = fig.colorbar(sc, ax=ax)
            bar.set_label(("log10 " if log_c else "") + figure.color)
        else:
            ax.scatter(xs, ys, s=25, color="tab:blue")
        front = pareto_front(pts)
        fx, fy = zip(*front, strict=True)
        ax.step(fx, fy, where="post", color="tab:red", label="Pareto front")
        ax.plot(fx, fy, "o", color="tab:red", mfc="none", ms=9)
        if _wide(list(xs)):
            ax.set_xscale("log")
        if _wide(list(ys)):
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel(figure.x)
    ax.set_ylabel(figure.y)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{figure.y} against {figure.x}{_failed_note(rows)}", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _histogram(figure: HistogramFigure, rows: list[dict]) -> bytes:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = tuple(r.get(f"knob:{k}") for k in figure.group)
        groups.setdefault(key, []).append(r)
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(7, 2.6 * len(groups)), squeeze=False
    )
    values_all = [
        v for r in _ok(rows) if (v := _number(r.get(figure.metric))) is not None
    ]
    log_bins = (
        bool(values_all)
        and min(values_all) > 0
        and (max(values_all) / min(values_all) > 30)
    )
    if values_all:
        lo, hi = (
            min(values_all + [figure.threshold]),
            max(values_all + [figure.threshold]),
        )
        bins = (
            np.geomspace(lo * 0.9, hi * 1.1, 30)
            if log_bins
            else np.linspace(lo - 0.05 * abs(lo), hi * 1.05, 30)
        )
    else:
        bins = 10
    for ax, (key, members) in zip(axes[:, 0], groups.items(), strict=True):
        values = [
            v for r in _ok(members) if (v := _number(r.get(figure.metric))) is not None
        ]
        passed = sum(1 for v in values if v <= figure.threshold)
        label = ", ".join(f"{k} = {v}" for k, v in zip(figure.group, key, strict=True))
        if values:
            ax.hist(values, bins=bins, color="tab:blue", alpha=0.75)
            p90 = float(np.percentile(values, 90))
            ax.axvline(p90, color="tab:gray", ls=":", label=f"p90 {p90:.3g}")
        ax.axvline(
            figure.threshold,
            color="tab:red",
            ls="--",
            label=f"threshold {figure.threshold:g}",
        )
        ax.set_title(
            f"{label or 'all runs'}: yield {passed}/{len(members)} = "
            f"{passed / len(members):.0%}",
            fontsize=9,
        )
        if log_bins:
            ax.set_xscale("log")
        ax.set_ylabel("runs")
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel(figure.metric)
    fig.tight_layout()
    return _png(fig)
