"""Run a deck in real ngspice (shared library, through PySpice) in a worker process.

ngspice is one instance per process and a crash takes its process with it, so
every run gets a fresh worker process (:func:`_main`, given a job file) with a
timeout. It is a subprocess, not a multiprocessing child, so that a daemonic
process (a Dask worker) can start it too. The worker loads the deck text, runs
it, and writes the probed vectors to an ``.npz`` file and the full ngspice output
to a log beside it; the parent reads the vectors back into model units through
the deck's probe map. This is the only module that touches
ngspice or PySpice; another engine can replace it behind ``start_run``.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vle_hw.errors import NgspiceMissingError, NgspiceRunError
from vle_hw.netlist import Deck, strip_control
from vle_hw.trace import Trace

log = logging.getLogger(__name__)

INSTALL_HINT = "sudo apt-get install ngspice libngspice0-dev"
_ERROR_MARKERS = ("error", "singular matrix", "timestep too small", "aborted")
_TIME_IN_LOG = re.compile(r"\btime\s*=\s*([0-9.]+e[-+]?[0-9]+|[0-9.]+)")
OPAMP_MARK = ".subckt vle_opamp "  # the op-amp level's macromodel in a deck
MOS_MARK = ".subckt vle_mos_"  # the transistor level's cells in a deck
_HARMLESS_STDERR = ("stderr Checking parameters for BSIM",)
_HANDOFF = ("status.json", "status.json.part", "vectors.npz", "job.json")
# BSIM3 (the transistor level) writes its parameter check beside the log.
_BSIM_LOG = "b3v33check.log"
# Below this much free space a worker that did not report is taken to have
# failed on a full disk rather than to have crashed.
_FULL_DISK_BYTES = 1 << 20
_WORKER_CALL = (
    "import sys; from vle_hw.runner import _main; sys.exit(_main(sys.argv[1:]))"
)


def find_ngspice_library() -> str:
    """Path or soname of a loadable ngspice shared library.

    Uses ``NGSPICE_LIBRARY_PATH`` alone when it is set; otherwise tries
    ``libngspice.so`` (from libngspice0-dev, which PySpice expects) and
    ``libngspice.so.0``.

    Raises
    ------
    NgspiceMissingError
        With the install command, if none loads.
    """
    # An explicit NGSPICE_LIBRARY_PATH is the user's choice: no silent fallback.
    explicit = os.environ.get("NGSPICE_LIBRARY_PATH")
    candidates = [explicit] if explicit else ["libngspice.so", "libngspice.so.0"]
    for name in candidates:
        try:
            ctypes.CDLL(name)
        except OSError:
            continue
        return name
    raise NgspiceMissingError(
        f"the ngspice shared library was not found (tried {', '.join(candidates)}); "
        f"install it with: {INSTALL_HINT}"
    )


def _worker(deck_text: str, vectors: list[str], out_dir: str, library: str) -> None:
    """Body of the worker process: run ngspice, write vectors, log and status.

    ngspice's output is appended to ``ngspice.log`` line by line as it comes, so
    the log survives a worker killed at its timeout.
    """
    out = Path(out_dir).resolve()  # absolute: the worker changes directory
    status: dict = {"ok": False}
    try:  # Linux: die with the parent, so a killed verify leaves no orphan
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    with open(out / "ngspice.log", "a", encoding="utf-8", buffering=1) as log_file:
        try:
            # BSIM3 writes b3v33check.log into the working directory: keep it
            # beside the log, not in the user's folder (this is the worker's cwd).
            os.chdir(out)
            os.environ["NGSPICE_LIBRARY_PATH"] = library
            logging.getLogger("PySpice").setLevel(logging.CRITICAL)
            import warnings

            warnings.filterwarnings("ignore")
            from PySpice.Spice.NgSpice.Shared import NgSpiceShared

            class _LoggedNgSpice(NgSpiceShared):
                def send_char(self, message, ngspice_id):
                    log_file.write(message + "\n")
                    # PySpice flags every stderr line that is not a "Warning:"
                    # as an error; BSIM's parameter-check notice is not one.
                    if message.startswith(_HARMLESS_STDERR):
                        self._error_in_stderr = False
                    return 0

            ngspice = _LoggedNgSpice.new_instance()
            started = time.perf_counter()
            try:
                ngspice.load_circuit(strip_control(deck_text))
                ngspice.run()
            except Exception as exc:  # PySpice raises on ngspice error lines
                status["error"] = f"{type(exc).__name__}: {exc}"
            status["wall_sec"] = time.perf_counter() - started
            if "error" not in status:
                status.update(_save_vectors(ngspice, vectors, out))
            ngspice.remove_circuit()
            ngspice.destroy()
        except Exception as exc:  # reported to the parent, which raises
            status["error"] = f"{type(exc).__name__}: {exc}"
    if "error" in status:  # e.g. a full disk while saving: no half file stays
        (out / "vectors.npz").unlink(missing_ok=True)
    # Written whole or not at all: on a full disk the parent sees no status,
    # never half of one.
    partial = out / "status.json.part"
    try:
        partial.write_text(json.dumps(status), encoding="utf-8")
        os.replace(partial, out / "status.json")
    except OSError:
        partial.unlink(missing_ok=True)


def _read_status(out_dir: Path) -> dict | None:
    """The worker's report, or None when there is none (crash, full disk)."""
    try:
        return json.loads((out_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _no_report(deck_path: Path, out_dir: Path, exitcode) -> NgspiceRunError:
    """The error for a worker that ended without a readable report."""
    log_path = out_dir / "ngspice.log"
    try:
        free = shutil.disk_usage(out_dir).free
    except OSError:
        free = None
    if free is not None and free < _FULL_DISK_BYTES:
        return NgspiceRunError(
            f"the ngspice worker for {deck_path} could not write its results: No "
            f"space left on device (the disk holding {out_dir} has {free} bytes "
            "free); fix: free some space or choose another --out."
        )
    return NgspiceRunError(
        f"the ngspice worker for {deck_path} crashed (exit code {exitcode}) "
        f"before reporting; see {log_path} if present."
    )


def _save_vectors(ngspice, vectors: list[str], out: Path) -> dict:
    plot = ngspice.plot(None, ngspice.last_plot)
    arrays = {"time": np.asarray(plot["time"].to_waveform(), dtype=float)}
    missing = [name for name in vectors if name not in plot]
    if missing:
        return {"error": f"ngspice produced no vector for {missing}"}
    for name in vectors:
        arrays[name] = np.asarray(plot[name].to_waveform(), dtype=float)
    np.savez(out / "vectors.npz", **arrays)
    return {"ok": True, "points": int(len(arrays["time"]))}


class WorkerProcess:
    """The worker subprocess, with the few process calls the handle needs."""

    def __init__(self, popen: subprocess.Popen):
        self.popen = popen

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class RunHandle:
    """A running ngspice worker; ``result()`` waits and returns the trace."""

    deck: Deck
    deck_path: Path
    out_dir: Path
    process: WorkerProcess
    timeout_sec: float
    started: float
    timed_out: threading.Event = field(default_factory=threading.Event)

    def _watchdog(self) -> None:
        if self.process.is_alive():
            self.timed_out.set()
            self.process.kill()

    def stop(self) -> None:
        """Kill the worker and drop its hand-off files; the ngspice log stays."""
        self.process.kill()
        self.process.join()
        self._drop_handoff()

    def _drop_handoff(self) -> None:
        for handoff in _HANDOFF:
            (self.out_dir / handoff).unlink(missing_ok=True)

    def finished_badly(self) -> bool:
        """True once the worker has timed out, crashed or reported a failure."""
        if self.timed_out.is_set():
            return True
        if self.process.is_alive():
            return False
        status = _read_status(self.out_dir)
        return status is None or not status.get("ok")

    def result(self) -> Trace:
        """Wait for the worker and read its vectors back in model units.

        Raises
        ------
        NgspiceRunError
            On a timeout, a crash, an ngspice error or a run that stopped early.
        """
        remaining = self.timeout_sec - (time.perf_counter() - self.started)
        self.process.join(max(remaining, 0.0))
        log_path = self.out_dir / "ngspice.log"
        if self.process.is_alive():
            self._watchdog()
        if self.timed_out.is_set():
            self.process.join()
            with open(log_path, "a", encoding="utf-8") as log_file:
                log_file.write(
                    f"vle_hw: worker killed at the timeout of {self.timeout_sec:g} s\n"
                )
            raise NgspiceRunError(
                f"ngspice did not finish {self.deck_path} within "
                f"simulation.timeout_sec = {self.timeout_sec:g} s; raise the timeout "
                "or shorten simulation.t_stop."
            )
        status_path = self.out_dir / "status.json"
        status = _read_status(self.out_dir)
        if status is None:
            raise _no_report(self.deck_path, self.out_dir, self.process.exitcode)
        try:
            log_lines = log_path.read_text(encoding="utf-8").splitlines()
        except OSError:
            log_lines = []
        for line in log_lines:
            if "warning" in line.lower():
                log.warning("ngspice said: %s", line.strip())
        if not status.get("ok"):
            self._drop_handoff()
            reached = _time_reached(log_lines)
            where = f" at t = {reached} s" if reached else ""
            raise NgspiceRunError(
                f"ngspice failed on {self.deck_path}{where}: {status.get('error')}. "
                f"{_last_time_reported(log_lines)}"
                f"{_diagnose(log_lines, self.deck.text)}Full log: {log_path}"
            )
        errors = [
            line
            for line in log_lines
            if any(marker in line.lower() for marker in _ERROR_MARKERS)
        ]
        with np.load(self.out_dir / "vectors.npz") as stored:
            data = {key: stored[key] for key in stored.files}
        # The vectors live on in the trace; the log is what stays beside it.
        (self.out_dir / "vectors.npz").unlink()
        status_path.unlink()
        t_sec = data["time"]
        stop = self.deck.tran_stop_sec
        if errors or len(t_sec) < 2 or t_sec[-1] < stop * (1 - 1e-9):
            reached = float(t_sec[-1]) if len(t_sec) else 0.0
            first = errors[0].strip() if errors else "no error line"
            raise NgspiceRunError(
                f"ngspice stopped at t = {reached:.6g} s of {stop:.6g} s in "
                f"{self.deck_path}: {first}. "
                f"{_diagnose(log_lines, self.deck.text)}Full log: {log_path}"
            )
        signals = {
            probe.signal: data[probe.vector] * probe.scale for probe in self.deck.probes
        }
        t_model = t_sec / self.deck.time_sec_per_unit
        meta = {
            "wall_sec": status.get("wall_sec"),
            "points": status.get("points"),
            "log": str(log_path),
        }
        log.info(
            "ngspice done deck=%s wall_sec=%.2f points=%d log=%s",
            self.deck_path,
            status.get("wall_sec", 0.0),
            len(t_sec),
            log_path,
        )
        return Trace(t_model, signals, "spice", meta=meta)


def _last_time_reported(log_lines: list[str]) -> str:
    """'Last time reported: ... s. ' from ngspice's ``time = ...`` lines, if any."""
    times = []
    for line in log_lines:
        match = _TIME_IN_LOG.search(line.lower())
        if match:
            times.append(float(match.group(1)))
    return f"Last time ngspice reported: {times[-1]:.6g} s. " if times else ""


def _time_reached(log_lines: list[str]) -> str | None:
    """The simulated time ngspice names when it gives up ("... time = 1.7e-10")."""
    for line in log_lines:
        match = re.search(r"timestep too small; time = ([0-9.eE+-]+)", line, re.I)
        if match:
            return match.group(1)
    return None


def _diagnose(log_lines: list[str], deck_text: str = "") -> str:
    text = "\n".join(log_lines).lower()
    causes = []
    failed = any(m in text for m in ("timestep too small", "singular", "converge"))
    if failed and MOS_MARK in deck_text:
        causes.append(
            "MOS cells too slow for the time scale (weak-inversion cells lag by "
            "about 0.9 us: raise hardware.time_sec_per_unit, e.g. to 1e-3)"
        )
    if failed and OPAMP_MARK in deck_text:
        causes.append(
            "an op-amp stage stuck at its rails or slewing (see opamp.swing_volt, "
            "opamp.slew_volt_per_sec and the hardware scales) or a very fast "
            "op-amp (opamp.gbw_hz) against the maximum step"
        )
    if "singular matrix" in text:
        causes.append(
            "a node without a DC path to ground (a capacitor fed only "
            "by current sources needs an .ic)"
        )
    if "timestep too small" in text:
        causes.append(
            "a discontinuity or an unstable loop (check gamma and the maximum "
            "step), or spec values that drive the network far outside its working "
            "range (network.beta, network.eta, the weights, the input, a large "
            "tau_r / tau_m)"
        )
    return f"Likely causes: {'; '.join(causes)}. " if causes else ""


def run_files(out_dir: Path) -> list[Path]:
    """Every file a run in `out_dir` creates, replaces or deletes there.

    A caller that writes into a folder the user chose checks these like its
    own outputs (existing ones only with ``--force``; never an input), since
    :func:`start_run` removes stale hand-off files and ngspice writes the rest.
    """
    return [out_dir / name for name in ("ngspice.log", *_HANDOFF, _BSIM_LOG)]


def start_run(
    deck: Deck, deck_path: Path, out_dir: Path, timeout_sec: float
) -> RunHandle:
    """Start ngspice on `deck` in a fresh worker process.

    Parameters
    ----------
    deck : Deck
        Text and probe map (see :func:`vle_hw.netlist.write_deck`).
    deck_path : Path
        Where the deck was written, named in messages.
    out_dir : Path
        Folder for the worker's vectors, status and full ngspice log.
    timeout_sec : float
        Wall-clock limit; the worker is killed past it.

    Raises
    ------
    NgspiceMissingError
        If the ngspice shared library cannot be loaded.
    """
    library = find_ngspice_library()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in _HANDOFF:
        (out_dir / stale).unlink(missing_ok=True)
    (out_dir / "ngspice.log").write_text(
        f"vle_hw: ngspice run of {deck_path}, timeout {timeout_sec:g} s\n",
        encoding="utf-8",
    )
    vectors = sorted({probe.vector for probe in deck.probes})
    job = out_dir / "job.json"
    job.write_text(
        json.dumps({"deck": deck.text, "vectors": vectors, "library": library}),
        encoding="utf-8",
    )
    started = time.perf_counter()
    # Python's own output (a traceback before ngspice starts) joins the log.
    with open(out_dir / "ngspice.log", "ab") as log_file:
        process = WorkerProcess(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER_CALL, str(job.resolve())],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        )
    log.info("ngspice start deck=%s timeout_sec=%g", deck_path, timeout_sec)
    handle = RunHandle(deck, deck_path, out_dir, process, timeout_sec, started)
    # The deadline holds even while the caller is busy (the ODE reference runs
    # in the parent meanwhile): a timer kills the worker when it passes.
    timer = threading.Timer(timeout_sec, handle._watchdog)
    timer.daemon = True
    timer.start()
    return handle


def run_deck(deck: Deck, deck_path: Path, out_dir: Path, timeout_sec: float) -> Trace:
    """Run `deck` in ngspice and return its trace (blocking)."""
    return start_run(deck, deck_path, out_dir, timeout_sec).result()


def _main(argv: list[str]) -> int:
    """Worker entry point, given the job file that start_run wrote."""
    job_path = Path(argv[0])
    job = json.loads(job_path.read_text(encoding="utf-8"))
    job_path.unlink(missing_ok=True)
    _worker(job["deck"], job["vectors"], str(job_path.parent), job["library"])
    return 0
