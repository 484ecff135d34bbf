"""The hostile-input corpus: every file under tests/corpus/ through the real CLI.

Each corpus file starts with two comment lines::

    # attack: what the file tries
    # field: text the error must contain (the field it names)

Specs go through ``vle-hw verify`` and ``vle-hw netlist``; studies through
``vle-hw explore`` and ``vle-hw explore --dry-run``. Every run must end in exit
code 2 with one ``error: ...`` that names the field and the fix, no traceback,
no file written (the working folder is a fresh tmp folder and every output
option points inside it), and ngspice never started.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import vle_hw.explore
import vle_hw.pipeline
import vle_hw.runner
from vle_hw.cli import EXIT_INPUT, main

CORPUS = Path(__file__).resolve().parent / "corpus"
SUFFIXES = {".yaml", ".yml", ".toml"}


def corpus_files(kind: str) -> list[Path]:
    return sorted(
        p for p in (CORPUS / kind).iterdir() if p.is_file() and p.suffix in SUFFIXES
    )


def header(path: Path) -> dict[str, str]:
    """The file's `# attack:` and `# field:` comment lines."""
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()[:2]
    found = {}
    for line in lines:
        key, _, value = line.removeprefix("# ").partition(": ")
        found[key] = value
    assert set(found) == {"attack", "field"}, f"{path.name}: bad header {lines}"
    assert found["field"].strip(), path.name
    return found


SPECS = corpus_files("specs")
STUDIES = corpus_files("studies")


def test_the_corpus_is_large_enough():
    assert len(SPECS) + len(STUDIES) >= 100
    assert len(STUDIES) >= 30
    for path in SPECS + STUDIES:
        header(path)


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def no_ngspice(monkeypatch):
    """Fail the test if anything tries to start ngspice or a study's runs."""

    def refuse(*args, **kwargs):
        raise AssertionError("ngspice (or a study run) was started")

    for module, name in [
        (vle_hw.runner, "start_run"),
        (vle_hw.runner, "run_deck"),
        (vle_hw.runner, "_worker"),
        (vle_hw.pipeline, "start_run"),
        (vle_hw.explore, "run_study"),
    ]:
        monkeypatch.setattr(module, name, refuse)


@pytest.fixture
def work(tmp_path, monkeypatch):
    """An empty working folder, made the current directory for the case."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _check(result, path: Path, tmp: Path, corpus_before: list[str]) -> None:
    field = header(path)["field"]
    # the file's own path may hold the field's words; look at the rest only
    output = result.output.replace(str(path), "<file>")
    assert result.exit_code == EXIT_INPUT, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: "), result.output
    assert field in output, f"{field!r} not in {output!r}"
    assert "fix" in output, result.output
    # nothing written: not in the working folder, not beside the corpus files
    assert _tree(tmp) == [], _tree(tmp)
    assert _tree(CORPUS) == corpus_before
    assert not any(p.suffix in {".raw", ".log", ".cir"} for p in tmp.rglob("*"))


@pytest.mark.parametrize("command", ["verify", "netlist"])
@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_bad_spec_exits_2_naming_the_field(path, command, work, no_ngspice):
    before = _tree(CORPUS)
    if command == "verify":
        args = ["verify", str(path), "--out", str(work / "out")]
    else:
        args = ["netlist", str(path), "-o", str(work / "deck.cir")]

    result = CliRunner().invoke(main, args)

    _check(result, path, work, before)
    assert os.getcwd() == str(work)


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_bad_study_exits_2_naming_the_field(path, dry_run, work, no_ngspice):
    before = _tree(CORPUS)
    args = ["explore", str(path), "--out", str(work / "out")]
    if dry_run:
        args.append("--dry-run")

    result = CliRunner().invoke(main, args)

    _check(result, path, work, before)
