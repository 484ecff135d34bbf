"""Regressions from the adversarial review of issue #2: each input once gave a
traceback, a hang, a false verdict or an unsafe write."""

import os

import pytest
import yaml
from click.testing import CliRunner
from helpers import default_dict

from vle_hw.cli import main


def _spec(tmp_path, mutate=None, text=None, name="spec.yaml"):
    path = tmp_path / name
    if text is None:
        data = default_dict()
        data["simulation"]["t_stop"] = 2.0
        if mutate:
            mutate(data)
        text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def _netlist(tmp_path, spec, *extra):
    out = tmp_path / "deck.cir"
    result = CliRunner().invoke(main, ["netlist", str(spec), "-o", str(out), *extra])
    return result, out


def _set(path, value):
    def mutate(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


@pytest.mark.parametrize(
    "path, value",
    [
        (("network", "weights"), {"init": "random", "seed": -1}),
        (("input",), {"kind": "ou", "seed": -3}),
        (("network", "layers", 0, "tau_r"), 1e308),
        (("hardware", "time_sec_per_unit"), 1e300),
        (("hardware", "signal_volt_per_unit"), 5e-324),
        (("hardware", "c_mem_farad"), 1e-320),
        (("simulation", "max_step"), 1e-9),
    ],
)
def test_extreme_values_end_in_exit_2_without_a_traceback(tmp_path, path, value):
    result, out = _netlist(tmp_path, _spec(tmp_path, _set(path, value)))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "fix" in result.output
    assert not out.exists()


def test_tiny_tau_with_a_tiny_time_scale_is_refused_cleanly(tmp_path):
    def mutate(data):
        data["network"]["layers"][0]["tau_m"] = 1e-200

    result, out = _netlist(tmp_path, _spec(tmp_path, mutate))
    assert result.exit_code == 2, result.output
    assert not out.exists()


@pytest.mark.parametrize("literal", ["0x10", "1:30", "0b11", "1_0"])
def test_yaml_1_1_number_forms_are_not_read_as_numbers(tmp_path, literal):
    text = yaml.safe_dump(default_dict(), sort_keys=False).replace(
        "t_stop: 400.0", f"t_stop: {literal}"
    )
    result, _ = _netlist(tmp_path, _spec(tmp_path, text=text))
    assert result.exit_code == 2
    assert "simulation.t_stop" in result.output


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
    levels = ["x0: &a0 [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]"]
    for k in range(1, 10):
        levels.append(f"x{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 10) + "]")
    text = yaml.safe_dump(default_dict(), sort_keys=False) + "\n".join(levels) + "\n"
    result, _ = _netlist(tmp_path, _spec(tmp_path, text=text))
    assert result.exit_code == 2
    assert "aliases" in result.output


def test_a_fifo_as_spec_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    result, _ = _netlist(tmp_path, fifo)
    assert result.exit_code == 2
    assert "not a regular file" in result.output


def test_same_path_for_deck_and_json_is_refused(tmp_path):
    spec = _spec(tmp_path)
    same = tmp_path / "o" / "same.txt"
    result = CliRunner().invoke(
        main,
        [
            "verify",
            str(spec),
            "--out",
            str(tmp_path / "o"),
            "--deck",
            str(same),
            "--json",
            str(same),
        ],
    )
    assert result.exit_code == 2
    assert "same file" in result.output
    assert not (tmp_path / "o").exists()


def test_json_under_a_regular_file_is_refused_before_any_work(tmp_path):
    spec = _spec(tmp_path)
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(
        main,
        [
            "verify",
            str(spec),
            "--out",
            str(tmp_path / "o"),
            "--json",
            str(tmp_path / "afile" / "r.json"),
        ],
    )
    assert result.exit_code == 2
    assert "not a writable folder" in result.output
    assert not (tmp_path / "o").exists()


def test_force_never_replaces_something_that_is_not_a_regular_file(tmp_path):
    spec = _spec(tmp_path)
    fifo = tmp_path / "node"
    os.mkfifo(fifo)
    result = CliRunner().invoke(
        main, ["netlist", str(spec), "-o", str(fifo), "--force"]
    )
    assert result.exit_code == 2
    assert "not a regular file" in result.output
    assert not fifo.is_file()


def test_a_tiny_learning_rate_is_not_a_false_failure(tmp_path):
    spec = _spec(tmp_path, _set(("network", "eta"), 1e-12))
    result = CliRunner().invoke(
        main, ["verify", str(spec), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 0, result.output


def test_a_reference_that_cannot_be_computed_ends_in_exit_3(tmp_path):
    def mutate(data):
        data["network"]["weights"] = [[[1e300]], [[1e300]]]
        data["simulation"]["t_stop"] = 1.0

    result = CliRunner().invoke(
        main, ["verify", str(_spec(tmp_path, mutate)), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code in (2, 3), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["netlist", "-o", "{tmp}/newdir/"], "names a folder"),
        (["netlist", "-o", "{tmp}"], "names a folder"),
        (["netlist", "-o", ""], "an empty path"),
        (["verify", "--out", ""], "an empty path"),
        (["verify", "--out", "{tmp}/spec.yaml"], "is a file"),
        (["verify", "--json", "{tmp}/"], "names a folder"),
        (["verify", "--deck", "   "], "an empty path"),
    ],
)
def test_output_paths_that_are_not_files_are_refused(tmp_path, args, fragment):
    spec = _spec(tmp_path)
    argv = [a.format(tmp=tmp_path) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, [argv[0], str(spec), *argv[1:]])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
