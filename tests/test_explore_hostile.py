"""vle-hw explore against hostile use: damaged results folders, inputs inside
the results folder, two studies on one folder, odd scheduler addresses, more
workers than runs, Ctrl-C in a terminal. Runs use real ngspice."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from click.testing import CliRunner

from tests.test_explore import REPO, small_study
from vle_hw.cli import main
from vle_hw.explore import StudyPaths, _StudyLock, run_study
from vle_hw.study import load_study


def _explore(*args):
    return CliRunner().invoke(main, ["explore", *map(str, args)])


def _assert_input_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert result.output.count("error: ") == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.parametrize("meta", [None, "garbage{", "[1, 2]"])
def test_resume_refuses_a_missing_or_damaged_study_json(tmp_path, meta):
    path = small_study(tmp_path, figures=[])
    out = tmp_path / "out"
    out.mkdir()
    journal = '{"run_id": 0, "status": "ok", "error": ""}\n'
    (out / "runs.jsonl").write_text(journal)
    if meta is not None:
        (out / "study.json").write_text(meta)
    result = _explore(path, "--out", out, "--resume")
    _assert_input_error(result, "study.json", "--force")
    assert (out / "runs.jsonl").read_text() == journal


def test_resume_drops_damaged_journal_lines_and_reruns_only_those(tmp_path):
    path = small_study(tmp_path, t_stop=1.0, figures=[], yields=[])
    out = tmp_path / "out"
    full = run_study(load_study(path), out, workers=2, figures=False)
    table = full.paths.csv.read_bytes()  # the resume below rewrites this file
    journal = out / "runs.jsonl"
    lines = journal.read_text().splitlines()
    kept = sorted(lines, key=lambda line: json.loads(line)["run_id"])[:3]
    wrong_knobs = json.loads(lines[0])
    wrong_knobs.update({"run_id": 3, "knob:mismatch.r_rel": 0.5})
    damaged = [
        *kept,
        '{"run_id": 3}',  # no status
        '{"run_id": true, "status": "ok"}',
        "[1, 2, 3]",
        json.dumps(wrong_knobs),  # a row of another sweep point
    ]
    journal.write_bytes("\n".join(damaged).encode() + b"\n\xff\xfe garbage\n")
    (out / "timings.csv").write_text("run_id,worker_pid\nx,1\n,2\n")
    seen = []
    resumed = run_study(
        load_study(path),
        out,
        workers=1,
        resume=True,
        figures=False,
        on_progress=lambda p: seen.append((p.skipped, p.done)),
    )
    assert seen[0] == (3, 3) and seen[-1] == (3, 4)  # only run 3 ran again
    assert resumed.paths.csv.read_bytes() == table
    ids = [json.loads(line)["run_id"] for line in journal.read_text().splitlines()]
    assert sorted(ids) == [0, 1, 2, 3]


def test_a_study_never_writes_over_a_csv_its_base_spec_reads(tmp_path):
    data = yaml.safe_load((REPO / "examples" / "lagline.yaml").read_text())
    data["input"] = {"kind": "csv", "path": "results.csv"}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(data))
    samples = "t,x0\n" + "".join(f"{i * 0.1},{i % 7}\n" for i in range(40))
    (tmp_path / "results.csv").write_text(samples)
    study = tmp_path / "study.yaml"
    study.write_text(
        "name: csv_in_out\nbase: base.yaml\nfixed: {simulation.t_stop: 2.0}\n"
        "metrics: [learning]\n"
    )
    for extra in ([], ["--force"]):
        result = _explore(study, "--out", tmp_path, *extra)
        _assert_input_error(result, "results.csv", "input of the study", "--out")
        assert (tmp_path / "results.csv").read_text() == samples
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "base.yaml",
        "results.csv",
        "study.yaml",
    ]


def _two_run_study(folder):
    """Two one-unit runs, learning metrics only, nothing drawn."""
    return small_study(
        folder,
        t_stop=1.0,
        monte_carlo=None,
        metrics=["learning"],
        figures=[],
        yields=[],
    )


def test_a_start_that_wrote_only_study_json_does_not_block_the_next(tmp_path):
    # what an unreachable scheduler or a missing ngspice leaves behind
    path = _two_run_study(tmp_path)
    study = load_study(path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"study_hash": study.study_hash}))
    outcome = run_study(study, out, workers=1, figures=False)
    assert [row["status"] for row in outcome.rows] == ["ok", "ok"]


def test_two_studies_cannot_write_one_folder_at_once(tmp_path):
    path = small_study(tmp_path, figures=[])
    out = tmp_path / "out"
    with _StudyLock(StudyPaths(out)):
        for extra in ([], ["--resume"], ["--force"]):
            result = _explore(path, "--out", out, *extra)
            _assert_input_error(result, "another vle-hw explore", "--out")
    assert not (out / "runs.jsonl").exists() and not (out / "study.json").exists()


@pytest.mark.parametrize(
    "address",
    ["ucx://host:1", "inproc://x", "tcp://127.0.0.1:99999", "tcp://[::1", "h:0"],
)
def test_scheduler_addresses_that_cannot_work_are_bad_input(tmp_path, address):
    path = small_study(tmp_path, figures=[])
    result = _explore(path, "--out", tmp_path / "out", "--scheduler", address)
    _assert_input_error(result, "--scheduler", "tcp://host:port")
    assert not (tmp_path / "out").exists()


def test_more_workers_than_runs_start_one_per_run_quietly(tmp_path):
    path = _two_run_study(tmp_path)
    # another cluster's dashboard on 8787 must not show up in the study's output
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", 8787))
        busy.listen()
    except OSError:
        pass  # already busy: the same situation
    try:
        result = _explore(path, "--out", tmp_path / "out", "--workers", "64")
    finally:
        busy.close()
    assert result.exit_code == 0, result.output
    assert "on 2 worker(s)" in result.output
    assert "Port 8787" not in result.output and "Traceback" not in result.output


def test_ctrl_c_in_a_terminal_stops_the_study_quietly_and_resume_finishes(tmp_path):
    path = small_study(
        tmp_path,
        t_stop=20.0,
        sweep=[{"mismatch.r_rel": [0.0, 0.01, 0.02]}],
        monte_carlo={"samples": 2},
        metrics=["learning"],
        figures=[],
        yields=[],
    )
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vle_hw", "explore", str(path), "--out", str(out)]

    def terminal():  # a foreground job: its own group, SIGINT not ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()

    process = subprocess.Popen(
        command + ["--workers", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=terminal,
    )
    journal = out / "runs.jsonl"
    deadline = time.monotonic() + 300
    while not (journal.exists() and journal.read_text().count("\n") >= 1):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole group gets it
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "--resume" in err
    kept = journal.read_text().count("\n")
    assert 1 <= kept < 6
    resumed = subprocess.run(
        command + ["--workers", "2", "--resume"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ids = [json.loads(line)["run_id"] for line in journal.read_text().splitlines()]
    assert sorted(ids) == list(range(6))
    assert all(
        json.loads(line)["status"] == "ok" for line in journal.read_text().splitlines()
    )


def test_a_changed_input_csv_is_another_study(tmp_path):
    data = yaml.safe_load((REPO / "examples" / "lagline.yaml").read_text())
    data["input"] = {"kind": "csv", "path": "x.csv"}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(data))
    csv_path = tmp_path / "x.csv"

    def write_samples(scale):
        rows = "".join(f"{i * 0.1},{scale * (i % 7 - 3)}\n" for i in range(40))
        csv_path.write_text("t,x0\n" + rows)

    write_samples(1.0)
    study = tmp_path / "study.yaml"
    study.write_text(
        "name: csv_study\nbase: base.yaml\nfixed: {simulation.t_stop: 2.0}\n"
        "metrics: [fidelity]\n"
    )
    out = tmp_path / "out"
    first = run_study(load_study(study), out, workers=1, figures=False)
    assert first.rows[0]["nrmse_worst"] < 1e-3
    write_samples(-2.0)  # same path, other samples
    result = _explore(study, "--out", out, "--resume")
    _assert_input_error(result, "another version of the study")
    # starting over computes the reference of the new samples, not the cached one
    again = run_study(load_study(study), out, workers=1, force=True, figures=False)
    assert again.rows[0]["nrmse_worst"] < 1e-3, again.rows
    assert len(list((out / "reference").glob("*.npz"))) == 2
