"""vle-hw explore: studies on a Dask cluster with real ngspice, isolation and resume."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.helpers import single_neuron
from vle_hw.cli import main
from vle_hw.explore import run_study
from vle_hw.study import load_study

REPO = Path(__file__).resolve().parent.parent


def small_study(folder: Path, t_stop=2.0, **extra) -> Path:
    """A fast study: one learning neuron, a few knob values."""
    base = single_neuron(weight=1.5, eta=2.0, beta=0.5, t_stop=t_stop)
    base["teacher"] = {"weights": [[[2.0]]]}
    (folder / "base.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    data = {
        "name": "small",
        "base": "base.yaml",
        "sweep": [{"mismatch.r_rel": [0.0, 0.05]}],
        "monte_carlo": {"samples": 2},
        "metrics": ["fidelity", "learning", "area_power"],
        "yields": [{"metric": "nrmse_worst", "max": 1e-3}],
        "figures": [
            {"kind": "sweep", "x": "mismatch.r_rel", "y": ["nrmse_worst"]},
            {"kind": "pareto", "x": "area_m2", "y": "nrmse_worst"},
            {
                "kind": "histogram",
                "metric": "nrmse_worst",
                "threshold": 1e-3,
                "group": ["mismatch.r_rel"],
            },
        ],
    }
    data.update(extra)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_a_study_runs_measures_and_draws(tmp_path):
    study = load_study(small_study(tmp_path))
    outcome = run_study(study, tmp_path / "out", workers=2)
    rows = outcome.rows
    assert [r["run_id"] for r in rows] == [0, 1, 2, 3]
    assert all(r["status"] == "ok" for r in rows), rows
    ideal, mismatched = rows[0], rows[2]
    # no mismatch: the behavioural circuit is the ODE to solver tolerance
    assert ideal["nrmse_worst"] < 1e-4
    # 5 % resistor mismatch moves the student's signals far more
    assert mismatched["nrmse_worst"] > 30 * ideal["nrmse_worst"]
    assert rows[2]["seed"] != rows[3]["seed"] and rows[0]["seed"] == rows[2]["seed"]
    for row in rows:
        assert row["area_m2"] > 0 and row["power_watt"] > 0
        assert 0 <= row["output_error_rel"] < 1
        assert row["teacher_distance"] is not None
    assert outcome.yields[0]["yield"] == 0.5  # the two ideal runs pass
    assert len(outcome.figures) == 3 and all(
        p.stat().st_size > 5000 for p in outcome.figures
    )
    header = (tmp_path / "out" / "results.csv").read_text().splitlines()[0]
    assert header.startswith("run_id,status,sample,seed,knob:mismatch.r_rel,")
    assert (tmp_path / "out" / "timings.csv").read_text().count("\n") == 5
    meta = json.loads((tmp_path / "out" / "study.json").read_text())
    assert meta["base"] == "base.yaml"  # as written: no path of this machine


def test_same_seed_same_study_gives_the_same_table(tmp_path):
    path = small_study(tmp_path, figures=[])
    first = run_study(load_study(path), tmp_path / "a", workers=2)
    second = run_study(load_study(path), tmp_path / "b", workers=1)
    a = (first.paths.csv).read_bytes()
    assert a == second.paths.csv.read_bytes()
    assert first.paths.json.read_bytes() == second.paths.json.read_bytes()


def test_a_run_that_times_out_fails_alone_and_the_study_goes_on(tmp_path):
    path = small_study(
        tmp_path,
        sweep=[{"simulation.timeout_sec": [120.0, 0.2]}],
        monte_carlo=None,
        figures=[],
        yields=[],
    )
    outcome = run_study(load_study(path), tmp_path / "out", workers=2)
    ok, slow = outcome.rows
    assert ok["status"] == "ok" and ok["nrmse_worst"] < 1e-4
    assert slow["status"] == "failed"
    assert "did not finish" in slow["error"] and "timeout" in slow["error"]
    assert (tmp_path / "out" / "logs" / "run_00001.log").exists()


def test_a_crashed_ngspice_worker_fails_its_run_only(tmp_path):
    path = small_study(
        tmp_path,
        t_stop=4000.0,
        sweep=[{"network.eta": [2.0]}],
        monte_carlo={"samples": 1},
        figures=[],
        yields=[],
    )
    done = {}

    def go():
        done["outcome"] = run_study(load_study(path), tmp_path / "out", workers=1)

    thread = threading.Thread(target=go)
    thread.start()
    killed = _kill_an_ngspice_worker(deadline=time.monotonic() + 120)
    thread.join(timeout=300)
    assert killed
    (row,) = done["outcome"].rows
    assert row["status"] == "failed"
    assert "crashed" in row["error"] or "ngspice" in row["error"]


def _descends_from_us(pid: int) -> bool:
    """Whether `pid` is a child, grandchild, ... of this test process."""
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent's pid
        if pid == os.getpid():
            return True
    return False


def _kill_an_ngspice_worker(deadline: float) -> bool:
    """SIGKILL the first ngspice worker subprocess of this test that shows up."""
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"vle_hw.runner import _main" in cmdline and _descends_from_us(
                int(entry.name)
            ):
                time.sleep(3.0)  # let ngspice start
                os.kill(int(entry.name), signal.SIGKILL)
                return True
        time.sleep(0.1)
    return False


def test_an_existing_dask_cluster_runs_the_same_study(tmp_path):
    from dask.distributed import LocalCluster

    path = small_study(tmp_path, figures=[])
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = run_study(
            load_study(path), tmp_path / "remote", scheduler=cluster.scheduler_address
        )
    local = run_study(load_study(path), tmp_path / "local", workers=2)
    assert remote.workers == 2
    assert remote.paths.csv.read_bytes() == local.paths.csv.read_bytes()


def test_resume_runs_only_what_is_missing(tmp_path):
    # two knobs whose study order is not their alphabetical order
    path = small_study(tmp_path, figures=[], fixed={"simulation.t_stop": 2.0})
    study = load_study(path)
    out = tmp_path / "out"
    full = run_study(study, out, workers=2)
    table = full.paths.csv.read_bytes()  # the resumes below rewrite this file
    journal = out / "runs.jsonl"
    lines = journal.read_text().splitlines()
    # as if killed after two runs, in the middle of writing the third
    journal.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25])
    seen = []
    resumed = run_study(
        load_study(path),
        out,
        workers=2,
        resume=True,
        on_progress=lambda p: seen.append((p.skipped, p.done)),
    )
    assert seen[0] == (2, 2) and seen[-1] == (2, 4)
    assert resumed.paths.csv.read_bytes() == table
    # a resume with nothing left to run rewrites the same bytes too
    again = run_study(load_study(path), out, workers=1, resume=True)
    assert again.paths.csv.read_bytes() == table


def test_existing_results_are_never_silently_replaced(tmp_path):
    path = small_study(tmp_path, figures=[])
    out = tmp_path / "out"
    run_study(load_study(path), out, workers=1)
    before = (out / "results.csv").read_bytes()
    result = CliRunner().invoke(main, ["explore", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert "--resume" in result.output and "--force" in result.output
    assert (out / "results.csv").read_bytes() == before
    # a changed study cannot be resumed into the old results
    data = yaml.safe_load(path.read_text())
    data["sweep"] = [{"mismatch.r_rel": [0.0, 0.02]}]
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(
        main, ["explore", str(path), "--out", str(out), "--resume"]
    )
    assert result.exit_code == 2 and "another version of the study" in result.output
    assert (out / "results.csv").read_bytes() == before


def test_cli_bad_study_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsweep:\n  - {opamp.gbw_hz: [fast]}\n")
    result = CliRunner().invoke(
        main, ["explore", str(bad), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    assert "opamp.gbw_hz" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_cli_dry_run_lists_runs(tmp_path):
    path = small_study(tmp_path)
    result = CliRunner().invoke(main, ["explore", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "4 run(s)" in result.output and "run 3: mismatch.r_rel=0.05" in result.output


@pytest.mark.slow
def test_a_200_run_study_killed_half_way_resumes_only_the_missing_runs(tmp_path):
    path = small_study(
        tmp_path,
        t_stop=1.0,
        sweep=[{"mismatch.r_rel": [0.0, 0.01, 0.02, 0.05]}],
        monte_carlo={"samples": 50},
        metrics=["learning"],
        figures=[],
        yields=[],
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "vle_hw",
        "explore",
        str(path),
        "--out",
        str(out),
        "--workers",
        "2",
    ]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    journal = out / "runs.jsonl"
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count("\n") >= 100:
            break
        assert process.poll() is None, "the study ended before it was killed"
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    kept = {
        json.loads(line)["run_id"]
        for line in journal.read_text().splitlines()
        if line.endswith("}")
    }
    assert 100 <= len(kept) < 200
    result = subprocess.run(
        command + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # the terminal shows the study's own lines, not Dask's logs or its tracebacks
    assert "Traceback" not in result.stderr and "INFO" not in result.stderr
    rows = [
        json.loads(line)
        for line in journal.read_text().splitlines()
        if line.endswith("}")
    ]
    ids = [row["run_id"] for row in rows]
    assert sorted(set(ids)) == list(range(200))
    # every run appears once: none of the kept runs was run again
    assert len([i for i in ids if i in kept]) == len(kept)
    assert len(ids) == 200 + (len(rows) - len(set(ids)))
    assert len(set(ids)) == len(ids)
    assert all(row["status"] == "ok" for row in rows)


def test_force_clears_the_earlier_studys_figures_and_logs_but_no_other_file(tmp_path):
    path = small_study(tmp_path)
    out = tmp_path / "out"
    run_study(load_study(path), out, workers=1)
    assert len(list((out / "figures").glob("*.png"))) == 3
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / "run_00007.log").write_text("earlier run\n")
    (out / "figures" / "mine.png").write_bytes(b"a user's own file")
    (out / "notes.txt").write_text("keep me\n")
    data = yaml.safe_load(path.read_text())
    data["figures"] = [data["figures"][0]]
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(
        main, ["explore", str(path), "--out", str(out), "--force", "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "00_sweep_nrmse_worst.png",
        "mine.png",
    ]
    assert not (out / "logs" / "run_00007.log").exists()
    assert (out / "notes.txt").read_text() == "keep me\n"
