"""Tradeoff studies: many runs of one study on a Dask cluster, with a results table.

``run_study`` takes a loaded :class:`~vle_hw.study.Study` and runs it on Dask
(``dask.distributed``): on a local cluster of one worker process per core by
default, or on an existing cluster given its scheduler address. Both are the
same code path. The ideal ODE trace is computed once per distinct model
(:func:`vle_hw.study.reference_key`) as a task of its own. Each run task then
builds its perturbed deck, runs ngspice in a subprocess of its own (a crash,
a non-convergence or a timeout marks that run failed with its reason, and the
study goes on) and measures it against the reference.

Results are journalled as they arrive: one JSON line per finished run in
``runs.jsonl`` (flushed and synced), and ``results.csv`` and ``results.json``
rewritten atomically after each. ``resume=True`` reads the journal and runs
only what is missing, so a killed study loses nothing it had finished. The
table holds only deterministic values (same study, same seed: the same bytes);
wall times go to ``timings.csv``.

Metrics per run (columns; a group is asked for in the study's ``metrics``):

- ``fidelity``: ``nrmse_<class>`` the worst NRMSE of each signal class of the
  circuit against the ideal ODE, ``nrmse_worst`` over the student's signals.
- ``learning``: over the output window at the end of the run,
  ``output_error_rel`` = RMS(r_N - y) / RMS(y), ``final_loss`` = the time mean of
  1/2 |y - r_N|^2, and ``teacher_distance`` = |W - W_teacher| / |W_teacher| of
  the final plastic weights.
- ``area_power``: ``area_m2`` and ``power_watt`` of the op-amp level component
  plan (:func:`vle_hw.components.plan_components`).
- ``alignment``: ``alignment_cosine`` and ``alignment_norm_ratio`` of the local
  updates against the exact gradient over the output window, in the ODE
  (a property of the model, so one value per reference).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vle_hw.errors import (
    NgspiceMissingError,
    NgspiceRunError,
    OutputExistsError,
    ReferenceSolveError,
    SpecError,
)
from vle_hw.study import RunTask, Study

log = logging.getLogger(__name__)

JOURNAL = "runs.jsonl"
FIGURES = "[0-9][0-9]_*.png"  # the names study_report.study_figures gives
LOG_TAIL_LINES = 60
STUDENT_CLASSES_SKIP = ("teacher", "x", "y")


# --- the tasks (run on the workers) ----------------------------------------------


def compute_reference(task: RunTask) -> dict[str, Any]:
    """The ideal ODE trace of `task`'s spec on a uniform grid, as plain arrays.

    The grid step is the deck's maximum step; runs evaluate it at ngspice's
    time points with a cubic spline (error ~ step^4, far below the circuit
    errors a study measures).
    """
    from vle_hw.circuit import max_step
    from vle_hw.network import build_network
    from vle_hw.reference import ReferenceStopped, simulate_reference
    from vle_hw.signals import build_inputs, build_targets

    spec = task.spec
    network = build_network(spec)
    inputs = build_inputs(spec)
    targets = build_targets(spec)
    started = time.perf_counter()
    deadline = started + task.timeout_sec
    try:
        solution = simulate_reference(
            network,
            inputs,
            spec.simulation.t_stop,
            spec.initial_state,
            targets,
            should_stop=lambda: time.perf_counter() > deadline,
        )
    except ReferenceStopped:
        return {
            "error": "the ODE reference did not finish within the run timeout "
            f"({task.timeout_sec:g} s)"
        }
    except (ReferenceSolveError, ArithmeticError, ValueError) as exc:
        return {"error": f"the ODE reference failed: {exc}"}
    step, _ = max_step(spec, network, inputs)
    count = int(math.ceil(spec.simulation.t_stop / step)) + 1
    grid = np.linspace(0.0, spec.simulation.t_stop, count)
    trace = solution.trace(grid)
    out: dict[str, Any] = {
        "t": grid,
        "signals": {name: np.asarray(v) for name, v in trace.signals.items()},
        "ode_sec": time.perf_counter() - started,
    }
    if "alignment" in task.metrics:
        out["alignment"] = _alignment(task, network, inputs, targets)
    return out


def _alignment(task, network, inputs, targets) -> dict[str, float | None]:
    from vle_hw.gradients import alignment

    t1 = task.spec.simulation.t_stop
    try:
        result = alignment(network, inputs, targets, t1 - task.output_window, t1)
    except (SpecError, ValueError, ArithmeticError) as exc:
        log.warning("alignment not computed: %s", exc)
        return {"alignment_cosine": None, "alignment_norm_ratio": None}
    weights = result["overall"]["weights"]
    return {
        "alignment_cosine": float(weights["cosine"]),
        "alignment_norm_ratio": float(weights["norm_ratio"]),
    }


def execute_run(task: RunTask, reference: dict[str, Any] | None) -> dict[str, Any]:
    """Build, perturb and simulate one run; measure it. Never raises for a run
    that fails: the result says ``status: failed`` and why.

    Returns
    -------
    dict
        ``{"row": {...}, "timing": {...}, "log": str | None}``.
    """
    started = time.perf_counter()
    row: dict[str, Any] = {"run_id": task.run_id, "status": "ok", "error": ""}
    timing: dict[str, Any] = {"run_id": task.run_id, "worker_pid": os.getpid()}
    log_text = None
    with tempfile.TemporaryDirectory(prefix=f"vle_run{task.run_id}_") as tmp:
        try:
            metrics = _simulate_and_measure(task, reference, Path(tmp), timing)
            row.update(metrics)
        except (NgspiceRunError, NgspiceMissingError) as exc:
            row.update(status="failed", error=_one_line(str(exc)))
            log_text = _log_tail(Path(tmp) / "ngspice" / "ngspice.log")
        except (SpecError, ValueError, ArithmeticError) as exc:
            row.update(status="failed", error=_one_line(f"{type(exc).__name__}: {exc}"))
    timing["total_sec"] = time.perf_counter() - started
    return {"row": row, "timing": timing, "log": log_text}


def _simulate_and_measure(task, reference, tmp: Path, timing) -> dict[str, Any]:
    from vle_hw.network import build_network
    from vle_hw.perturb import perturb_plan
    from vle_hw.pipeline import _deck
    from vle_hw.runner import start_run
    from vle_hw.signals import build_inputs, build_targets
    from vle_hw.spec import spec_to_json

    spec = task.spec
    if reference is not None and "error" in reference:
        raise NgspiceRunError(reference["error"])
    network = build_network(spec)
    inputs = build_inputs(spec)
    targets = build_targets(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # component-range warnings: not a failure
        deck = _deck(
            spec,
            spec_to_json(spec),
            network,
            inputs,
            targets,
            task.level,
            transform=lambda plan: perturb_plan(plan, task.perturbation),
        )
    deck_path = tmp / f"{network.name}.cir"
    deck_path.write_text(deck.text, encoding="utf-8")
    handle = start_run(deck, deck_path, tmp / "ngspice", task.timeout_sec)
    try:
        spice = handle.result()
    finally:
        handle.process.kill()
    timing["spice_sec"] = float(spice.meta.get("wall_sec") or 0.0)
    out: dict[str, Any] = {"spice_points": len(spice.t)}
    if "fidelity" in task.metrics and reference is not None:
        out.update(_fidelity(spice, reference, spec, task.level))
    if "learning" in task.metrics:
        out.update(_learning(spice, network, task.output_window))
    if "area_power" in task.metrics:
        out.update(_area_power(spec, network))
    if "alignment" in task.metrics and reference is not None:
        out.update(reference.get("alignment") or {})
    return out


def _fidelity(spice, reference, spec, level) -> dict[str, float]:
    from scipy.interpolate import CubicSpline

    from vle_hw.compare import compare
    from vle_hw.trace import Trace

    names = [n for n in spice.signals if n in reference["signals"]]
    stack = np.stack([reference["signals"][n] for n in names], axis=-1)
    spline = CubicSpline(reference["t"], stack, axis=0)
    t = np.clip(spice.t, reference["t"][0], reference["t"][-1])
    values = spline(t)
    ode = Trace(spice.t, {n: values[:, k] for k, n in enumerate(names)}, "ode")
    cand = Trace(spice.t, {n: spice.signals[n] for n in names}, "spice")
    comparison = compare(ode, cand, *spec.tolerances.for_level(level))
    out = {}
    worst = 0.0
    for cls, stats in sorted(comparison.by_class().items()):
        out[f"nrmse_{cls}"] = float(stats["nrmse_max"])
        if not cls.startswith(STUDENT_CLASSES_SKIP):
            worst = max(worst, float(stats["nrmse_max"]))
    out["nrmse_worst"] = worst
    return out


def _learning(spice, network, window: float) -> dict[str, float | None]:
    t = spice.t
    keep = t >= t[-1] - window
    tw = t[keep]
    out_layer = network.layers[-1]
    err2 = np.zeros_like(tw)
    y2 = np.zeros_like(tw)
    for i in range(out_layer.size):
        y = spice.signals[f"y_n{i}"][keep]
        r = spice.signals[f"r_l{out_layer.index}_n{i}"][keep]
        err2 += (y - r) ** 2
        y2 += y**2
    span = tw[-1] - tw[0]

    def mean(values):
        return float(np.trapezoid(values, tw) / span) if span > 0 else float(values[-1])

    rms_y = math.sqrt(mean(y2))
    out: dict[str, float | None] = {
        "output_error_rel": math.sqrt(mean(err2)) / rms_y if rms_y > 0 else None,
        "final_loss": 0.5 * mean(err2),
        "teacher_distance": None,
    }
    teacher = {layer.index: layer.weights for layer in network.teacher or ()}
    diffs, refs = [], []
    for layer in network.layers:
        if layer.index not in teacher or not layer.plastic or network.eta <= 0:
            continue
        for i in range(layer.size):
            for j in range(layer.weights.shape[1]):
                name = f"w_l{layer.index}_i{i}_j{j}"
                if name in spice.signals:
                    diffs.append(spice.signals[name][-1] - teacher[layer.index][i, j])
                    refs.append(teacher[layer.index][i, j])
    if refs and np.linalg.norm(refs) > 0:
        out["teacher_distance"] = float(np.linalg.norm(diffs) / np.linalg.norm(refs))
    return out


def _area_power(spec, network) -> dict[str, float]:
    from vle_hw.components import plan_components

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = plan_components(spec, network).summary
    return {
        "area_m2": float(summary["area_total_m2"]),
        "power_watt": float(summary["power_watt"]),
        "ktc_noise_model_units": float(summary["ktc_noise_worst_model_units"]),
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())[:2000]


def _log_tail(path: Path) -> str | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return "\n".join(lines[-LOG_TAIL_LINES:]) + "\n"


# --- the client: schedule, journal, resume ----------------------------------------


@dataclass
class StudyPaths:
    out_dir: Path

    @property
    def journal(self) -> Path:
        return self.out_dir / JOURNAL

    @property
    def csv(self) -> Path:
        return self.out_dir / "results.csv"

    @property
    def json(self) -> Path:
        return self.out_dir / "results.json"

    @property
    def timings(self) -> Path:
        return self.out_dir / "timings.csv"

    @property
    def meta(self) -> Path:
        return self.out_dir / "study.json"

    @property
    def logs(self) -> Path:
        return self.out_dir / "logs"

    @property
    def references(self) -> Path:
        return self.out_dir / "reference"

    @property
    def figures(self) -> Path:
        return self.out_dir / "figures"


@dataclass
class Progress:
    """What the caller is told after each run (for a progress bar)."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0  # finished before a resume
    last: dict[str, Any] = field(default_factory=dict)


@dataclass
class StudyOutcome:
    paths: StudyPaths
    rows: list[dict[str, Any]]
    yields: list[dict[str, Any]]
    figures: list[Path]
    wall_sec: float
    workers: int

    @property
    def failed(self) -> int:
        return sum(1 for row in self.rows if row["status"] != "ok")


class StudyInterrupted(KeyboardInterrupt):
    """The study was stopped (Ctrl-C); finished runs are in the journal."""


def run_study(
    study: Study,
    out_dir: Path,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    figures: bool = True,
) -> StudyOutcome:
    """Run every missing run of `study` and write the table and figures.

    Parameters
    ----------
    study : Study
    out_dir : Path
        The study's folder: journal, tables, figures, logs of failed runs.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); by
        default a local cluster with `workers` processes (default: all cores).
    workers : int, optional
    resume : bool
        Continue a study in `out_dir`: finished runs (ok or failed) are kept
        and not run again.
    force : bool
        Start over in a folder that holds an earlier study's results.
    on_progress : callable, optional
        Called after each finished run.

    Raises
    ------
    OutputExistsError
        If `out_dir` holds results and neither `resume` nor `force` is set, or
        `resume` is asked for a different study.
    StudyInterrupted
        On Ctrl-C, after the finished runs are written.
    """
    paths = StudyPaths(out_dir)
    _check_inputs(study, paths)
    with _StudyLock(paths) as lock:
        try:
            done = _prepare(study, paths, resume, force)
        except BaseException:
            lock.discard()  # a refused start leaves no lock file or new folder
            raise
        return _run_locked(
            study, paths, scheduler, workers, resume, done, on_progress, figures
        )


def _run_locked(study, paths, scheduler, workers, resume, done, on_progress, figures):
    from vle_hw.runner import find_ngspice_library

    find_ngspice_library()  # fail before starting a cluster
    pending = [task for task in study.runs if task.run_id not in done]
    progress = Progress(total=len(study.runs), skipped=len(done))
    progress.done = len(done)
    progress.failed = sum(1 for row in done.values() if row["status"] != "ok")
    started = time.perf_counter()
    rows = dict(done)
    timings = _read_timings(paths.timings) if resume else {}
    n_workers = 0
    if on_progress is not None:
        on_progress(progress)
    if pending:
        # no more local workers than runs: each is a process of its own
        local = min(workers or os.cpu_count() or 1, len(pending))
        try:
            with _client(scheduler, local) as client:
                n_workers = len(client.scheduler_info()["workers"])
                _run_pending(
                    client, study, pending, paths, rows, timings, progress, on_progress
                )
        except KeyboardInterrupt:  # also while the cluster starts or stops
            raise StudyInterrupted(
                f"stopped with {progress.done} of {progress.total} runs finished; "
                f"they are in {paths.journal}. Continue with --resume."
            ) from None
    ordered = [rows[k] for k in sorted(rows)]
    _write_tables(paths, study, ordered, timings)
    yields = study_yields(study, ordered)
    made = []
    if figures:
        from vle_hw.study_report import study_figures

        made = study_figures(study, ordered, paths.figures)
    _write_summary(paths, study, ordered, yields, made)
    return StudyOutcome(
        paths, ordered, yields, made, time.perf_counter() - started, n_workers
    )


def _quiet_cluster_exit() -> None:
    """Swap distributed's exit-time cluster closer for one that cannot print.

    A Ctrl-C while the local cluster is still starting leaves workers in their
    init state; distributed's own atexit closer then fails an assertion and
    prints a traceback after vle-hw has said "interrupted ... --resume". The
    closer still runs; only its failure is kept off the terminal.
    """
    import atexit

    from distributed.deploy import spec

    original = getattr(spec, "close_clusters", None)
    if original is None or getattr(original, "_vle_quiet", False):
        return

    def close_clusters() -> None:
        try:
            original()
        except Exception:  # the process is exiting: nothing left to report to
            log.debug("closing Dask clusters at exit failed", exc_info=True)

    close_clusters._vle_quiet = True  # type: ignore[attr-defined]
    atexit.unregister(original)
    atexit.register(close_clusters)
    spec.close_clusters = close_clusters


class _client:
    """A Dask client on `scheduler`, or on a local cluster it starts and stops."""

    def __init__(self, scheduler: str | None, workers: int | None):
        self.scheduler = scheduler
        self.workers = workers
        self.cluster = None
        self.client = None

    def __enter__(self):
        from dask.distributed import Client, LocalCluster

        # distributed sets its own loggers to INFO on import, and its shutdown
        # logs closed connections with tracebacks; a study's terminal shows only
        # its errors, unless the user asked for debug output (vle-hw -vv).
        if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
            logging.getLogger("distributed").setLevel(logging.ERROR)
        _quiet_cluster_exit()
        if self.scheduler:
            try:
                self.client = Client(self.scheduler, timeout="20s")
            except Exception as exc:  # any failure to connect: say so, no traceback
                raise NgspiceRunError(
                    f"cannot reach the Dask scheduler at {self.scheduler!r} ({exc}); "
                    "fix: check the address (tcp://host:port) and that the "
                    "scheduler is running, or leave --scheduler out to run locally."
                ) from None
            return self.client
        count = self.workers or os.cpu_count() or 1
        with warnings.catch_warnings():
            # its HTTP server moves off a busy port 8787 (another cluster): no news
            warnings.filterwarnings("ignore", message="Port .* is already in use")
            # LIMITATION(explore): a Ctrl-C in the second or two while the
            #   worker processes import (before the preload runs) makes each of
            #   them print a KeyboardInterrupt traceback. The study still stops
            #   with exit 130 and its --resume hint; later Ctrl-Cs are quiet.
            self.cluster = LocalCluster(
                n_workers=count,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
                preload=["vle_hw._worker_init"],  # workers leave Ctrl-C to us
            )
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False


def _prepare(study: Study, paths: StudyPaths, resume: bool, force: bool) -> dict:
    """Check the folder; return the finished rows of a resumed study."""
    meta = {
        "study": study.file.name,
        "study_hash": study.study_hash,
        "source": study.source,
        # as the study file writes it (relative to the study file), so a
        # results folder names no path of the machine that made it
        "base": study.file.base if study.file.base is not None else "(default)",
        "runs": len(study.runs),
    }
    if paths.out_dir.exists() and not paths.out_dir.is_dir():
        raise OutputExistsError(f"{paths.out_dir} exists and is not a folder.")
    old = _read_meta(paths.meta)
    # A study.json of this same study with no finished run (a start that
    # failed, e.g. an unreachable scheduler) holds nothing to protect.
    has_results = (
        _journal_has_rows(paths.journal)
        or any(p.exists() for p in _result_files(paths))
        or (paths.meta.exists() and (old or {}).get("study_hash") != study.study_hash)
    )
    if has_results and resume:
        if old is None:
            raise OutputExistsError(
                f"{paths.meta} is missing or damaged, so --resume cannot tell "
                f"which study made the results in {paths.out_dir}; fix: choose "
                "another --out, or pass --force to start over."
            )
        if old.get("study_hash") != study.study_hash:
            raise OutputExistsError(
                f"{paths.out_dir} holds results of another version of the study "
                f"(hash {old.get('study_hash')}, now {study.study_hash}); --resume "
                "continues only the same study and base spec; fix: choose another "
                "--out, or pass --force to start over."
            )
        rows = _read_journal(paths.journal, study.runs)
        # drop a torn last line (a kill mid-write) before appending to it
        from vle_hw.outputs import write_atomic

        text = "".join(json.dumps(rows[k], sort_keys=True) + "\n" for k in sorted(rows))
        write_atomic(paths.journal, text)
        return rows
    if has_results and not force:
        found = [p for p in [paths.journal, *_result_files(paths)] if p.exists()]
        named = ", ".join(str(p) for p in found[:4]) + (" ..." if found[4:] else "")
        raise OutputExistsError(
            f"{paths.out_dir} holds the results of an earlier study"
            f"{f' ({named})' if named else ''}; fix: pass --resume to finish it, "
            "--force to start over, or another --out."
        )
    paths.out_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(paths.out_dir, os.W_OK):
        raise OSError(f"cannot write {paths.out_dir}: the folder is not writable")
    if force:
        # the earlier study's files go, and only those: its table, journal,
        # summary, run logs and figures (by the names this module gives them)
        for old in [paths.journal, *_result_files(paths)]:
            old.unlink(missing_ok=True)
    from vle_hw.outputs import write_atomic

    write_atomic(paths.meta, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return {}


def _result_files(paths: StudyPaths) -> list[Path]:
    """The files a study writes besides its journal and study.json, as they
    are now in the folder: tables, timings, summary, run logs and figures (by
    the names this module and study_report give them). The reference cache
    is not among them: it is only read back for the same model (its name is
    the model's hash)."""
    files = [paths.csv, paths.json, paths.timings, paths.out_dir / "summary.json"]
    for folder, pattern in ((paths.logs, "run_[0-9]*.log"), (paths.figures, FIGURES)):
        try:
            files += sorted(folder.glob(pattern))
        except OSError:  # not a folder, or not readable: nothing of ours there
            continue
    return files


def _read_meta(path: Path) -> dict | None:
    """The study.json of an earlier start, or None if missing or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _journal_has_rows(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _read_journal(path: Path, runs: list[RunTask]) -> dict[int, dict]:
    """Finished rows by run id. A torn last line (a kill mid-write), a line
    that is not a row of this study (damaged, or edited by hand) and bytes
    that are not text are dropped: those runs are run again."""
    rows: dict[int, dict] = {}
    if not path.exists():
        return rows
    text = path.read_bytes().decode("utf-8", errors="replace")
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if _is_row_of(row, runs):
            rows[row["run_id"]] = row
    return rows


def _is_row_of(row: Any, runs: list[RunTask]) -> bool:
    """`row` is a finished row of one of `runs`: its id, status and knobs."""
    if not isinstance(row, dict):
        return False
    run_id = row.get("run_id")
    if not isinstance(run_id, int) or isinstance(run_id, bool):
        return False
    if not 0 <= run_id < len(runs) or row.get("status") not in ("ok", "failed"):
        return False
    if not isinstance(row.get("error", ""), str):
        return False
    task = runs[run_id]
    return row.get("sample") == task.sample and all(
        row.get(f"knob:{k}") == v for k, v in task.knobs.items()
    )


def _read_timings(path: Path) -> dict[int, dict]:
    """Wall times of the earlier runs; damaged lines are dropped (timings only)."""
    out: dict[int, dict] = {}
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            for row in csv.DictReader(handle):
                try:
                    out[int(row["run_id"])] = row
                except (KeyError, TypeError, ValueError):
                    continue
    except (OSError, csv.Error):
        return out
    return out


def _check_inputs(study: Study, paths: StudyPaths) -> None:
    """No output of the study may be one of its inputs (the study file, the
    base spec, a CSV a run reads), even with --force."""
    from vle_hw.outputs import resolved, spec_inputs

    inputs = {resolved(Path(study.source), "study file")}
    if study.base_source != "(default)":
        inputs.add(resolved(Path(study.base_source), "base spec"))
    for spec in {id(task.spec): task.spec for task in study.runs}.values():
        inputs.update(resolved(p, "input file") for p in spec_inputs(None, spec))
    out = resolved(paths.out_dir, "results folder (--out)")
    files = {
        resolved(p)
        for p in (paths.journal, paths.csv, paths.json, paths.timings, paths.meta)
    }
    files |= {resolved(out / "summary.json"), resolved(out / _StudyLock.NAME)}
    folders = [resolved(p) for p in (paths.logs, paths.references, paths.figures)]
    for path in sorted(inputs):
        if path in files or any(path.is_relative_to(f) for f in folders):
            raise OutputExistsError(
                f"{path} is an input of the study (the study file, its base spec "
                f"or a CSV it reads), and the study writes there in {paths.out_dir}; "
                "inputs are never overwritten, even with --force; fix: choose "
                "another --out."
            )


class _StudyLock:
    """An exclusive lock on the study folder for one ``run_study`` at a time.

    Two studies writing one folder would replace each other's journal (its
    lines would go to a file that is no longer there) and run every run twice.
    The lock file stays; the lock ends with the process, even on a kill. A
    start that is refused (:meth:`discard`) leaves neither the lock file nor a
    folder it created.
    """

    NAME = ".explore.lock"

    def __init__(self, paths: StudyPaths):
        self.paths = paths
        self.handle = None
        self.made: list[Path] = []  # folders and lock file this start created

    def __enter__(self):
        import fcntl

        out = self.paths.out_dir
        if out.exists() and not out.is_dir():
            raise OutputExistsError(f"{out} exists and is not a folder.")
        self._make_folder(out)
        lock = out / self.NAME
        if not lock.exists():
            self.made.append(lock)
        try:
            self.handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            self.discard()
            raise _cannot_create(out, exc, what="write in") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            self.handle = None
            raise OutputExistsError(
                f"another vle-hw explore (pid {holder}) is writing {out}; fix: "
                "wait until it ends (then --resume if it was stopped), or give "
                "another --out."
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()
        return self

    def _make_folder(self, out: Path) -> None:
        """Create `out` and its missing parents, remembering which were new."""
        missing = [p for p in [out, *out.parents] if not p.exists()]
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.made = [p for p in reversed(missing) if p.is_dir()]
            self.discard()
            raise _cannot_create(out, exc) from None
        self.made = list(reversed(missing))

    def discard(self) -> None:
        """Remove what this start created (lock file, new empty folders), for
        a start that was refused: the user's folder is left as it was."""
        for path in reversed(self.made):
            try:
                if path.is_dir():
                    path.rmdir()  # only when empty
                else:
                    path.unlink(missing_ok=True)
            except OSError:
                break  # not empty (or not ours to remove): keep it and its parents
        self.made = []

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()  # releases the lock
        return False


def _cannot_create(out: Path, exc: OSError, what: str = "create") -> SpecError:
    """The error for a results folder that cannot be made or written at all."""
    from vle_hw.outputs import UnusablePathError, path_problem

    reason = path_problem(exc, out)
    if reason is None:
        ancestor = out
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if ancestor.exists() and not ancestor.is_dir():
            why = f"{ancestor} is a file, not a folder"
        elif not os.access(ancestor, os.W_OK):
            why = f"{ancestor} is not writable ({exc.strerror or exc})"
        else:
            why = f"the system refused to make it in {ancestor} ({exc.strerror or exc})"
        reason = (
            f"{why}; fix: give --out a folder in a place you can write (e.g. "
            "under your home folder or the current folder)."
        )
    return UnusablePathError(f"cannot {what} the results folder {out}: {reason}")


def _run_pending(client, study, pending, paths, rows, timings, progress, on_progress):
    from dask.distributed import as_completed

    refs: dict[str, Any] = {}
    needs_ref = {"fidelity", "alignment"} & set(study.file.metrics)
    if needs_ref:
        for task in pending:
            if task.reference_key in refs:
                continue
            cached = paths.references / f"{task.reference_key}.npz"
            if cached.exists():
                refs[task.reference_key] = client.scatter(_load_reference(cached))
            else:
                refs[task.reference_key] = client.submit(
                    compute_reference,
                    task,
                    key=f"vle-ref-{task.reference_key}",
                    pure=False,
                )
    futures = {}
    for task in pending:
        ref = refs.get(task.reference_key) if needs_ref else None
        future = client.submit(
            execute_run,
            task,
            ref,
            key=f"vle-run-{study.study_hash}-{task.run_id}",
            pure=False,
            retries=0,
        )
        futures[future] = task
    saved_refs = set()
    with open(paths.journal, "a", encoding="utf-8") as journal:
        for future in as_completed(list(futures)):
            task = futures[future]
            try:
                result = future.result()
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # the worker died or the task could not run
                result = {
                    "row": {
                        "run_id": task.run_id,
                        "status": "failed",
                        "error": _one_line(
                            f"worker failure: {type(exc).__name__}: {exc}"
                        ),
                    },
                    "timing": {"run_id": task.run_id},
                    "log": None,
                }
            row = _full_row(task, result["row"])
            journal.write(json.dumps(row, sort_keys=True) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
            rows[task.run_id] = row
            timings[task.run_id] = result["timing"]
            if result.get("log"):
                _write_log(paths, task.run_id, result["log"])
            _save_reference(refs, task, paths, saved_refs)
            _write_tables(paths, study, [rows[k] for k in sorted(rows)], timings)
            progress.done += 1
            progress.failed += row["status"] != "ok"
            progress.last = row
            if on_progress is not None:
                on_progress(progress)


def _full_row(task: RunTask, measured: dict) -> dict[str, Any]:
    row = {"run_id": task.run_id, "sample": task.sample, "seed": task.perturbation.seed}
    row.update({f"knob:{k}": v for k, v in task.knobs.items()})
    row.update(measured)
    return row


def _save_reference(refs, task, paths: StudyPaths, saved: set) -> None:
    """Keep each finished reference on disk, so that a resume does not redo it."""
    key = task.reference_key
    future = refs.get(key)
    if key in saved or future is None or getattr(future, "status", "") != "finished":
        return
    saved.add(key)
    target = paths.references / f"{key}.npz"
    if target.exists():
        return
    try:
        data = future.result()
    except Exception as exc:  # a cache only: the runs have their reference
        log.warning("reference %s not kept on disk: %s", key, exc)
        return
    if "error" in data:
        return
    from vle_hw.outputs import npz_bytes, write_atomic

    arrays = {"t": data["t"], **{f"s__{k}": v for k, v in data["signals"].items()}}
    if "alignment" in data:
        arrays["alignment"] = np.array(json.dumps(data["alignment"]))
    write_atomic(target, npz_bytes(arrays))


def _load_reference(path: Path) -> dict[str, Any]:
    with np.load(path) as stored:
        out: dict[str, Any] = {
            "t": stored["t"],
            "signals": {k[3:]: stored[k] for k in stored.files if k.startswith("s__")},
        }
        if "alignment" in stored.files:
            out["alignment"] = json.loads(str(stored["alignment"]))
    return out


def _write_log(paths: StudyPaths, run_id: int, text: str) -> None:
    from vle_hw.outputs import write_atomic

    write_atomic(paths.logs / f"run_{run_id:05d}.log", text)


def _columns(rows: list[dict], knob_order: list[str] | None = None) -> list[str]:
    """Run id, status, sample and seed; the knobs in study order; the metrics
    sorted; the error last.

    The knob order comes from the study (`knob_order`), not from the rows: a
    row read back from the journal has its keys sorted, and a resumed study
    must write the same bytes as one that ran straight through.
    """
    first = ["run_id", "status", "sample", "seed"]
    present = {k for row in rows for k in row if k.startswith("knob:")}
    ordered = [f"knob:{k}" for k in knob_order or []]
    knobs = [k for k in ordered if k in present] + sorted(present - set(ordered))
    every = {k for row in rows for k in row}
    rest = sorted(every - set(first) - set(knobs) - {"error"})
    return first + knobs + rest + ["error"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def table_csv(rows: list[dict], knob_order: list[str] | None = None) -> str:
    """The results table as CSV text (rows in run order, deterministic)."""
    columns = _columns(rows, knob_order)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buffer.getvalue()


def _write_tables(paths: StudyPaths, study: Study, rows: list[dict], timings) -> None:
    from vle_hw.outputs import write_atomic

    write_atomic(paths.csv, table_csv(rows, study.knob_names))
    write_atomic(paths.json, json.dumps(rows, indent=1, sort_keys=True) + "\n")
    columns = ["run_id", "worker_pid", "spice_sec", "total_sec"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for run_id in sorted(timings):
        writer.writerow([_cell(timings[run_id].get(c)) for c in columns])
    write_atomic(paths.timings, buffer.getvalue())


def study_yields(study: Study, rows: list[dict]) -> list[dict[str, Any]]:
    """The fraction of runs with metric <= max, per group of knob values.

    A failed run, or one without the metric, counts as out of spec.
    """
    out = []
    for spec in study.file.yields:
        groups: dict[tuple, list[dict]] = {}
        for row in rows:
            key = tuple(row.get(f"knob:{k}") for k in spec.group)
            groups.setdefault(key, []).append(row)
        for key, members in groups.items():
            values = [r.get(spec.metric) for r in members if r["status"] == "ok"]
            values = [v for v in values if isinstance(v, int | float)]
            passed = sum(1 for v in values if v <= spec.max)
            entry = {
                "metric": spec.metric,
                "max": spec.max,
                "group": dict(zip(spec.group, key, strict=True)),
                "runs": len(members),
                "failed": len(members) - len(values),
                "yield": passed / len(members) if members else None,
            }
            if values:
                entry["p50"] = float(np.percentile(values, 50))
                entry["p90"] = float(np.percentile(values, 90))
                entry["mean"] = float(np.mean(values))
            out.append(entry)
    return out


def _write_summary(paths, study, rows, yields, figures) -> None:
    from vle_hw.outputs import write_atomic

    summary = {
        "study": study.file.name,
        "study_hash": study.study_hash,
        "runs": len(rows),
        "ok": sum(1 for r in rows if r["status"] == "ok"),
        "failed": sum(1 for r in rows if r["status"] != "ok"),
        "yields": yields,
        "figures": [str(p) for p in figures],
    }
    write_atomic(
        paths.out_dir / "summary.json",
        json.dumps(summary, indent=2, sort_keys=True) + "\n",
    )
