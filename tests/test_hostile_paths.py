"""Hostile paths: names longer than the file system allows, symbolic-link
loops, a standard output that cannot be written, files the ngspice run writes
beside the user's, and every file ``explore`` writes. Each ends with one
``error: ...`` line and exit code 2, and nothing the user had is touched.

Runs use real ngspice (short: t_stop 1-2 model units).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from helpers import default_dict

from vle_hw.cli import EXIT_INPUT, main
from vle_hw.explore import StudyPaths, _StudyLock
from vle_hw.outputs import check_writable
from vle_hw.pipeline import VerifyPaths
from vle_hw.runner import _BSIM_LOG, _HANDOFF

LONG = "a" * 300  # one name above the 255 bytes of Linux file systems
VLE_HW = Path(sys.executable).parent / "vle-hw"


def _small(folder: Path, **input_) -> Path:
    data = default_dict()
    data["simulation"]["t_stop"] = 2.0
    if input_:
        data["input"] = input_
    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _study(folder: Path) -> Path:
    _small(folder)
    path = folder / "s1.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "s1",
                "base": "small.yaml",
                "fixed": {"simulation.t_stop": 1.0},
                "sweep": [{"network.eta": [0.0, 1.0]}],
                "metrics": ["learning"],
            }
        ),
        encoding="utf-8",
    )
    return path


def _run(*args) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_input_error(result: Result, *fragments: str) -> str:
    """Exit 2, one 'error: ...' line on stderr naming every fragment."""
    assert result.exit_code == EXIT_INPUT, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    # An option's own check fails as click does ("Error: Invalid value for
    # '--out': ..."); the rest as "error: ...".
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert errors[0].lower().startswith("error: ")
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    return errors[0]


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --- 1. a name longer than the file system allows ---------------------------------

LONG_CASES = [
    (["netlist", "small.yaml", "-o", f"{LONG}.cir"], "-o"),
    (["verify", "small.yaml", "--out", LONG], "--out"),
    (["train", "small.yaml", "--out", LONG], "--out"),
    (["spec", "small.yaml", "--csv", f"{LONG}.csv"], "--csv"),
    (["draw", "vle_phi_tanh", "-o", f"{LONG}.svg"], "-o"),
    (["gradients", "small.yaml", "--json", f"{LONG}.json"], "--json"),
    (["gradients", "small.yaml", f"--json=new/{LONG}.json"], "output path"),
    (["verify", "small.yaml", "--out", f"new/{LONG}"], "output path"),
    (["explore", "s1.yaml", "--out", LONG], "--out"),
    (["explore", "s1.yaml", "--out", f"new/{LONG}"], "--out"),
]


@pytest.mark.parametrize(("args", "option"), LONG_CASES)
def test_a_name_too_long_is_one_error_naming_the_option(
    tmp_path, monkeypatch, args, option
):
    monkeypatch.chdir(tmp_path)
    _study(tmp_path)
    before = _listing(tmp_path)
    result = _run(*args)
    _assert_input_error(result, option, "bytes long", "255", "fix: ")
    assert _listing(tmp_path) == before  # no folder "new", no file


def test_a_csv_input_with_a_name_too_long_names_the_spec_and_the_fix(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _small(tmp_path, kind="csv", path=f"{LONG}.csv")
    for args in (["netlist", "small.yaml"], ["verify", "small.yaml", "--out", "o"]):
        result = _run(*args)
        line = _assert_input_error(result, "small.yaml", "input.path", "255", "fix: ")
        assert "None" not in line and "cannot write" not in line
    assert not (tmp_path / "o").exists()


# --- 2. a symbolic-link loop ----------------------------------------------------

LOOP_CASES = [
    ["verify", "small.yaml", "--out", "loop"],
    ["netlist", "small.yaml", "-o", "loop/x.cir"],
    ["spec", "small.yaml", "--json", "loop/x.json"],
    ["train", "small.yaml", "--out", "loop"],
    ["gradients", "small.yaml", "--json", "loop/x.json"],
    ["explore", "s1.yaml", "--out", "loop"],
]


@pytest.mark.parametrize("args", LOOP_CASES)
def test_a_symlink_loop_is_one_error_naming_the_link(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    _study(tmp_path)
    os.symlink("loop", tmp_path / "loop")
    before = _listing(tmp_path)
    result = _run(*args)
    _assert_input_error(result, "symbolic-link loop", "loop", "fix: ")
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("csv_path", ["loop", "loop/x.csv"])
def test_a_csv_input_through_a_symlink_loop_is_one_error(
    tmp_path, monkeypatch, csv_path
):
    monkeypatch.chdir(tmp_path)
    _small(tmp_path, kind="csv", path=csv_path)
    os.symlink("loop", tmp_path / "loop")
    result = _run("netlist", "small.yaml", "-o", "x.cir")
    _assert_input_error(result, "small.yaml", "input.path", "symbolic-link loop")
    assert not (tmp_path / "x.cir").exists()


# --- 3. a standard output that cannot be written ----------------------------------


def _cli_process(args, stdout, tmp_path):
    if not VLE_HW.exists():
        pytest.skip(f"no {VLE_HW}")
    return subprocess.Popen(
        [str(VLE_HW), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        text=True,
    )


@pytest.mark.parametrize("args", [["derive"], ["netlist", "small.yaml"]])
def test_a_full_standard_output_is_one_error_without_traceback(tmp_path, args):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    _small(tmp_path)
    with open("/dev/full", "w") as full:
        process = _cli_process(args, full, tmp_path)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == EXIT_INPUT, stderr
    assert stderr.startswith("error: cannot write to standard output: No space")
    assert len(stderr.splitlines()) == 1, stderr  # no "Exception ignored" after it
    assert "fix: " in stderr


def test_a_closed_pipe_on_standard_output_is_one_error(tmp_path):
    process = _cli_process(["derive"], subprocess.PIPE, tmp_path)
    process.stdout.close()  # long before the CLI has imported and writes
    stderr = process.stderr.read()
    process.wait(timeout=120)
    assert process.returncode == EXIT_INPUT, stderr
    assert stderr.startswith("error: cannot write to standard output: Broken pipe")
    assert len(stderr.splitlines()) == 1, stderr


# --- 4. verify: every file the ngspice run writes is checked ------------------------


def test_verify_paths_cover_every_file_the_runner_touches(tmp_path):
    files = VerifyPaths.default(tmp_path, "x").files()
    for name in ("ngspice.log", *_HANDOFF, _BSIM_LOG):
        assert tmp_path / "ngspice" / name in files


def test_verify_keeps_a_users_file_in_the_ngspice_folder_without_force(tmp_path):
    spec = _small(tmp_path)
    user = tmp_path / "o" / "ngspice" / "job.json"
    user.parent.mkdir(parents=True)
    user.write_text("mine")
    result = _run("verify", spec, "--out", tmp_path / "o")
    _assert_input_error(result, "job.json", "--force")
    assert user.read_text() == "mine"
    assert _listing(tmp_path / "o") == {"ngspice", "ngspice/job.json"}


def test_train_with_spice_keeps_a_users_file_in_the_ngspice_folder(tmp_path):
    # train --spice runs the same worker into <out>/ngspice/: the same files.
    spec = _small(tmp_path)
    user = tmp_path / "o" / "ngspice" / "status.json"
    user.parent.mkdir(parents=True)
    user.write_text("mine")
    result = _run("train", spec, "--spice", "--out", tmp_path / "o")
    _assert_input_error(result, "status.json", "--force")
    assert user.read_text() == "mine"


def test_verify_refuses_a_deck_on_a_file_the_run_writes(tmp_path):
    spec = _small(tmp_path)
    deck = tmp_path / "o" / "ngspice" / "job.json"
    result = _run("verify", spec, "--out", tmp_path / "o", "--deck", deck)
    _assert_input_error(result, "job.json", "same file", "ngspice/", "fix: ")
    assert not (tmp_path / "o").exists()


def test_verify_never_deletes_a_csv_input_in_the_ngspice_folder(tmp_path):
    csv = tmp_path / "o" / "ngspice" / "vectors.npz"
    csv.parent.mkdir(parents=True)
    csv.write_text("t,x\n0,1\n2,1\n")
    spec = _small(tmp_path, kind="csv", path="o/ngspice/vectors.npz")
    result = _run("verify", spec, "--out", tmp_path / "o", "--force")
    _assert_input_error(result, "vectors.npz", "input", "even with --force")
    assert csv.read_text() == "t,x\n0,1\n2,1\n"


def test_verify_with_force_replaces_stale_hand_off_files_and_runs(tmp_path):
    spec = _small(tmp_path)
    stale = tmp_path / "o" / "ngspice" / "status.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"ok": true}')
    result = _run("verify", spec, "--out", tmp_path / "o", "--force")
    assert result.exit_code == 0, result.output
    assert not stale.exists()  # the run's own hand-off files are gone again
    assert (tmp_path / "o" / "ngspice" / "ngspice.log").exists()


def test_check_writable_names_a_path_given_twice():
    with pytest.raises(FileExistsError, match="same file a.txt"):
        check_writable([Path("a.txt"), Path("b.txt"), Path("a.txt")], force=True)


# --- 5. explore: every file it writes is checked -----------------------------------


@pytest.mark.parametrize(
    "names",
    [
        ["summary.json", "timings.csv"],
        ["figures/00_sweep_nrmse_worst.png"],
        ["logs/run_00001.log"],
        ["results.csv"],
    ],
)
def test_explore_refuses_any_earlier_result_file_without_force(tmp_path, names):
    study = _study(tmp_path)
    out = tmp_path / "o"
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("mine")
    before = _listing(out)
    for extra in ([], ["--resume"]):  # --resume: no study.json says whose they are
        result = _run("explore", study, "--out", out, "--workers", 1, *extra)
        _assert_input_error(result, str(out), "--force")
        # 6. a refused start leaves no lock file behind
        assert _listing(out) == before
        assert all((out / name).read_text() == "mine" for name in names)


def test_explore_with_force_replaces_the_earlier_summary_and_timings(tmp_path):
    study = _study(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / "summary.json").write_text("x\n")
    (out / "timings.csv").write_text("x\n")
    (out / "notes.txt").write_text("mine")
    result = _run("explore", study, "--out", out, "--workers", 1, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").read_text() != "x\n"
    assert (out / "timings.csv").read_text().startswith("run_id")
    assert (out / "notes.txt").read_text() == "mine"


# --- 6. a refused start leaves no lock file and no new folder -----------------------


def test_a_discarded_lock_removes_only_what_it_created(tmp_path):
    out = tmp_path / "a" / "b" / "c"
    with _StudyLock(StudyPaths(out)) as lock:
        assert (out / _StudyLock.NAME).exists()
        lock.discard()
    assert not (tmp_path / "a").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "mine.txt").write_text("mine")
    with _StudyLock(StudyPaths(kept)) as lock:
        lock.discard()
    assert _listing(kept) == {"mine.txt"}


# --- 7. a results folder that cannot be created -----------------------------------


@pytest.mark.parametrize("where", ["small.yaml/sub", "/proc/vlehw"])
def test_explore_says_the_folder_cannot_be_created(tmp_path, monkeypatch, where):
    if where.startswith("/proc") and not Path("/proc/self").exists():
        pytest.skip("no /proc")
    monkeypatch.chdir(tmp_path)
    study = _study(tmp_path)
    result = _run("explore", study, "--out", where, "--workers", 1)
    line = _assert_input_error(result, "cannot create the results folder", where)
    assert "fix: " in line
    assert "--resume" not in line and "runs.jsonl" not in line
    if where.startswith("small"):
        assert "small.yaml is a file, not a folder" in line
