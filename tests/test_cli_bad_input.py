"""The ``vle-hw`` CLI on bad input: one ``error: ...`` on stderr, exit code 2,
no traceback, and nothing written to disk.

Runs the CLI in-process with click's CliRunner. Every case fails in spec
loading, before any simulation, so ngspice never runs here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_spec import (
    BAD_NAMES,
    DEFAULT_AS_TOML,
    field_case_params,
    file_case_params,
    mutated,
    write_file,
    write_yaml,
)

from vle_hw.cli import EXIT_INPUT, main

COMMANDS = ["verify", "netlist", "derive", "train"]


def _run(tmp_path: Path, command: str, spec_file: Path | str) -> tuple[Result, Path]:
    """Run `command` on `spec_file`; return the result and the output it names."""
    output = tmp_path / "out"
    args = [command, str(spec_file)]
    if command in ("verify", "train"):
        args += ["--out", str(output)]
    elif command == "netlist":
        output = tmp_path / "deck.cir"
        args += ["-o", str(output)]
    return CliRunner().invoke(main, args), output


def _assert_input_error(result: Result, output: Path, fragments: list[str]) -> None:
    """Exit 2, one 'error: ...' line naming every fragment, no output file."""
    assert result.exit_code == EXIT_INPUT, result.output
    assert isinstance(result.exception, SystemExit)  # no other exception escaped
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # one problem, one line
    first = lines[0]
    assert first.startswith("error: ")
    for fragment in fragments:
        assert fragment in first, f"{fragment!r} not in {first!r}"
    assert result.stdout == ""
    assert not output.exists()


@pytest.mark.parametrize(("path", "value", "fragments"), field_case_params())
@pytest.mark.parametrize("command", ["verify", "netlist", "train"])
def test_bad_field_exits_2_naming_the_field_and_writes_nothing(
    tmp_path: Path, command: str, path: tuple, value: Any, fragments: list[str]
) -> None:
    spec_file = write_yaml(tmp_path, mutated(path, value))

    result, output = _run(tmp_path, command, spec_file)

    _assert_input_error(result, output, [*fragments, "fix: "])


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_unsafe_name_exits_2_and_writes_nothing(tmp_path: Path, name: str) -> None:
    spec_file = write_yaml(tmp_path, mutated(("name",), name))

    for command in COMMANDS:
        result, output = _run(tmp_path, command, spec_file)

        _assert_input_error(result, output, ["name must", "fix: "])
        assert ".include" not in result.stderr.replace(repr(name), "")


@pytest.mark.parametrize(("name", "content", "fragments"), file_case_params())
@pytest.mark.parametrize("command", COMMANDS)
def test_file_that_is_not_a_spec_exits_2_and_writes_nothing(
    tmp_path: Path, command: str, name: str, content: str | bytes, fragments: list
) -> None:
    spec_file = write_file(tmp_path, name, content)

    result, output = _run(tmp_path, command, spec_file)

    _assert_input_error(result, output, [*fragments, "fix: "])


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_spec_file_exits_2_and_writes_nothing(
    tmp_path: Path, command: str
) -> None:
    result, output = _run(tmp_path, command, tmp_path / "nope.yaml")

    _assert_input_error(result, output, ["nope.yaml' does not exist", "fix: check"])


@pytest.mark.parametrize("command", ["verify", "netlist", "train"])
def test_missing_csv_input_exits_2_before_any_simulation(
    tmp_path: Path, command: str
) -> None:
    data = mutated(("input",), {"kind": "csv", "path": "inputs/x.csv"})
    spec_file = write_yaml(tmp_path, data)

    result, output = _run(tmp_path, command, spec_file)

    _assert_input_error(
        result, output, ["input.path = 'inputs/x.csv' does not exist", "fix: "]
    )


def test_bad_csv_contents_stop_netlist_before_the_deck_is_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "x.csv").write_text("t,x\n0,1\n200,oops\n400,1\n")
    spec_file = write_yaml(
        tmp_path, mutated(("input",), {"kind": "csv", "path": "x.csv"})
    )

    result, output = _run(tmp_path, "netlist", spec_file)

    _assert_input_error(
        result, output, ["input.path = ", "line 3, column 2: 'oops' is not a number"]
    )


def test_existing_deck_is_left_untouched_by_a_bad_spec(tmp_path: Path) -> None:
    spec_file = write_yaml(
        tmp_path, mutated((*("network", "layers", 0), "tau_m"), -1.0)
    )
    deck = tmp_path / "deck.cir"
    deck.write_text("keep me\n")

    result = CliRunner().invoke(
        main, ["netlist", str(spec_file), "-o", str(deck), "--force"]
    )

    assert result.exit_code == EXIT_INPUT
    assert "network.layers[0].tau_m must be >= 1e-09" in result.stderr
    assert deck.read_text() == "keep me\n"


def test_control_the_same_spec_in_toml_writes_the_default_deck(
    tmp_path: Path,
) -> None:
    # Shows the failures above come from the bad field: the good spec succeeds.
    toml_file = write_file(tmp_path, "lagline.toml", DEFAULT_AS_TOML)

    result, deck = _run(tmp_path, "netlist", toml_file)
    default = CliRunner().invoke(main, ["netlist"])

    assert result.exit_code == 0, result.output
    assert default.exit_code == 0, default.output

    def without_hash(text: str) -> list[str]:
        return [line for line in text.splitlines() if "spec_hash" not in line]

    assert without_hash(deck.read_text()) == without_hash(default.stdout)
