"""Failure modes on a real full disk: a clear message, earlier files intact.

The disk is a small tmpfs mounted for the test (root only: CI and the
project's machines run as root; elsewhere these tests are skipped with the
reason). Nothing is mocked: ngspice, the writes and ENOSPC are real.
"""

import errno
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import default_dict

from vle_hw.cli import main
from vle_hw.outputs import write_atomic


@pytest.fixture
def tiny_disk(tmp_path):
    """A tmpfs of 512 KiB at tmp_path/disk, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Fill the file system of `folder` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_no_temporary(tiny_disk):
    target = tiny_disk / "result.json"
    target.write_text('{"old": true}\n', encoding="utf-8")
    _fill(tiny_disk)
    with pytest.raises(OSError) as info:
        write_atomic(target, "x" * 100_000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_text(encoding="utf-8") == '{"old": true}\n'
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler", "result.json"]


def test_verify_on_a_full_disk_ends_with_a_clear_error_and_keeps_other_files(
    tiny_disk, tmp_path
):
    data = default_dict()
    data["simulation"]["t_stop"] = 20.0
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    earlier = tiny_disk / "earlier" / "result.json"
    earlier.parent.mkdir()
    earlier.write_text('{"earlier": true}\n', encoding="utf-8")
    result = CliRunner().invoke(
        main, ["verify", str(spec), "--out", str(tiny_disk / "out")]
    )
    assert result.exit_code in (2, 3), result.output
    assert "No space left on device" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert earlier.read_text(encoding="utf-8") == '{"earlier": true}\n'
    # no half-written output: whatever exists was written whole (no temp files)
    leftovers = [p.name for p in (tiny_disk / "out").rglob(".*") if p.is_file()]
    assert leftovers == []
    # the worker's hand-off files go with a failed run; its log stays
    assert not list((tiny_disk / "out").rglob("vectors.npz"))
    assert not list((tiny_disk / "out").rglob("status.json*"))


@pytest.mark.slow
def test_explore_on_a_full_disk_keeps_its_runs_and_resumes_once_freed(
    tiny_disk, tmp_path
):
    study = tmp_path / "study.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "name": "full",
                "base": str(
                    Path(__file__).resolve().parent.parent / "examples" / "lagline.yaml"
                ),
                "fixed": {"simulation.t_stop": 2.0},
                "sweep": [{"mismatch.r_rel": [0.0, 0.01, 0.02]}],
                "metrics": ["learning"],
            }
        ),
        encoding="utf-8",
    )
    out = tiny_disk / "out"
    command = ["explore", str(study), "--out", str(out), "--workers", "1"]
    first = CliRunner().invoke(main, command)
    assert first.exit_code == 0, first.output
    journal = out / "runs.jsonl"
    first_row = journal.read_text(encoding="utf-8").splitlines()[0] + "\n"
    journal.write_text(first_row, encoding="utf-8")  # as if killed after one run
    _fill(tiny_disk)
    full = CliRunner().invoke(main, [*command, "--resume"])
    assert full.exit_code == 2, full.output
    assert "No space left on device" in full.output and "--resume" in full.output
    assert "Traceback" not in full.output
    assert journal.read_text(encoding="utf-8") == first_row  # the finished run
    (tiny_disk / "filler").unlink()
    resumed = CliRunner().invoke(main, [*command, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "3 run(s): 3 ok, 0 failed" in resumed.output
    rows = journal.read_text(encoding="utf-8").splitlines()
    assert rows[0] == first_row.strip() and len(rows) == 3
