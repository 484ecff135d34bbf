"""Learning experiments (``vle_hw.learning``, ``vle-hw train``) and tau_m plasticity.

The fast tests run the ODE reference for a few model time units; the slow one
runs LagLine learning in real ngspice and holds it to the issue's numbers.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import yaml
from click.testing import CliRunner
from helpers import default_dict, spec_from

from vle_hw import derivation as d
from vle_hw.cli import EXIT_INPUT, main
from vle_hw.errors import SpecError, VleLimitationWarning
from vle_hw.learning import train
from vle_hw.network import build_network
from vle_hw.pipeline import build_deck
from vle_hw.reference import TAU_M_FLOOR_REL, NetworkModel, simulate_reference
from vle_hw.signals import build_inputs, build_targets

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _lagline(**network) -> dict:
    data = default_dict()
    data["network"].update(network)
    return data


def _tau_lagline() -> dict:
    """LagLine with tau_m learning: student tau_m (1.5, 1.2), teacher (1, 2)."""
    data = _lagline(eta_tau=1.0)
    data["network"]["layers"][0]["tau_m"] = 1.5
    data["network"]["layers"][1]["tau_m"] = 1.2
    data["teacher"]["layers"] = [{"tau_m": 1.0}, {"tau_m": 2.0}]
    return data


# --- tau_m plasticity -----------------------------------------------------------


@pytest.mark.parametrize("phi_name", d.PHI_NAMES)
def test_tau_m_rule_is_designs_formula(phi_name):
    # DESIGN.md 2: d tau_m/dt = -eta_tau e du/dt
    rule = d.derive(phi_name).dtau_m_dt
    assert sp.simplify(rule - (-d.eta_tau * d.e * d.u_dot)) == 0


def test_tau_m_rule_is_minus_the_energy_gradient_by_finite_differences():
    # -dE/dtau_m with E = 1/2 m^2, m = u + tau_m du/dt - I, at a sample point,
    # against a central difference of the energy (m in place of e, eta_tau = 1).
    u, du, drive, tau = 0.3, -0.7, 1.1, 1.4

    def energy(tau_m):
        return 0.5 * (u + tau_m * du - drive) ** 2

    h = 1e-6
    fd = -(energy(tau + h) - energy(tau - h)) / (2 * h)
    m = u + tau * du - drive
    rule = d.derive("softplus").dtau_m_dt.subs({d.e: m, d.u_dot: du, d.eta_tau: 1})
    assert float(rule) == pytest.approx(fd, rel=1e-8)  # FD error ~ h^2


def test_reference_tau_m_derivative_equals_minus_eta_tau_e_du_dt():
    spec, _ = spec_from(_tau_lagline())
    network = build_network(spec)
    model = NetworkModel(network)
    rng = np.random.default_rng(5)
    state = model.initial_state("zero", np.zeros(1), None)[None, :]
    for kind in ("u", "v", "U"):
        for layer in network.layers:
            block = model.get(state, kind, layer.index)
            block[...] = rng.normal(size=block.shape)
    x = np.array([[0.8]])
    out = model.derivative(0.0, state, x)
    e = model._z_last[:, model.n_loop :]
    for k, layer in enumerate(network.layers):
        du = model.get(out, "u", layer.index)
        expected = -network.eta_tau * e[:, k : k + 1] * du
        np.testing.assert_allclose(
            model.get(out, "T", layer.index), expected, rtol=1e-12
        )
    # the membranes use the learned tau_m (state), not the layer's initial one
    model.get(state, "T", 1)[...] = 3.0
    du_slow = model.get(model.derivative(0.0, state, x), "u", 1)
    assert not np.allclose(du_slow, model.get(out, "u", 1))


def test_eta_tau_zero_adds_no_state_and_changes_no_trajectory():
    base = _lagline()
    explicit = _lagline(eta_tau=0.0)
    runs = []
    for data in (base, explicit):
        spec, _ = spec_from(data)
        network = build_network(spec)
        model = NetworkModel(network)
        assert not any(kind == "T" for kind, _ in model.slots)
        # u, v per neuron (2 x 2), two weights, two teacher membranes
        assert model.n_state == 8
        sol = simulate_reference(
            network, build_inputs(spec), 2.0, targets=build_targets(spec)
        )
        runs.append(sol.states(np.linspace(0, 2, 9)))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_train_curves_carry_learned_tau_m_and_its_teacher_distance(tmp_path):
    spec, text = spec_from(_tau_lagline())
    result = train(spec, text, tmp_path, t_stop=2.0)
    curves = result.curves["ode"]
    tau = np.asarray(curves["tau_m"]["tau_m2"])[:, 0]
    assert tau[0] == 1.2 and tau[-1] != tau[0]  # learned, starting from the spec
    # |(1.5, 1.2) - (1, 2)| / |(1, 2)|
    expected = np.hypot(0.5, 0.8) / np.sqrt(5.0)
    assert curves["teacher_distance_tau_m"][0] == pytest.approx(expected, rel=1e-12)
    assert len(curves["teacher_max_rel_error_tau_m"]) == len(curves["t"])
    assert "tau_m_max_rel_error_final" in result.summary["ode"]


def test_tau_m_held_at_its_floor_is_announced(tmp_path):
    # eta_tau = 1e5 drives both tau_m down to the floor within two time units
    spec, text = spec_from(_lagline(eta_tau=1e5))
    with pytest.warns(VleLimitationWarning, match="tau_m1\\[0\\].*floor"):
        result = train(spec, text, tmp_path, t_stop=2.0)
    assert "tau_m1[0]" in result.info["tau_m_at_floor"]
    lowest = np.min(np.asarray(result.curves["ode"]["tau_m"]["tau_m1"]))
    assert lowest == pytest.approx(TAU_M_FLOOR_REL * 1.0, rel=1e-9)  # never below


def test_tau_m_learning_is_rejected_for_the_circuit():
    spec, text = spec_from(_tau_lagline())
    with pytest.raises(SpecError, match="network.eta_tau = 1.*eta_tau: 0"):
        build_deck(spec, text)


def test_negative_eta_tau_is_a_spec_error_naming_the_field():
    with pytest.raises(SpecError, match=r"network\.eta_tau must be >= 0.*-0\.5"):
        spec_from(_lagline(eta_tau=-0.5))


# --- the library ------------------------------------------------------------------


def test_short_train_writes_curves_with_the_right_keys_and_monotone_time(tmp_path):
    spec, text = spec_from(_lagline())
    result = train(spec, text, tmp_path, t_stop=4.0, every=0.1)
    written = json.loads((tmp_path / "learning.json").read_text())
    assert (tmp_path / "learning.png").stat().st_size > 0
    assert written["complete"] is True
    ode = written["curves"]["ode"]
    assert {"t", "loss", "weights", "teacher_distance"} <= set(ode)
    t = np.asarray(ode["t"])
    assert t[0] == 0.0 and t[-1] == 4.0 and np.all(np.diff(t) > 0)
    assert len(t) == 41
    for key in ("loss", "teacher_distance", "teacher_max_rel_error"):
        assert len(ode[key]) == len(t)
    assert set(ode["weights"]) == {"W1", "W2"}
    assert np.asarray(ode["weights"]["W2"]).shape == (41, 1, 1)
    assert ode["weights"]["W1"][0] == [[0.5]]
    # the teacher distance of (0.5, 0.5) to (1, 2): |(0.5, 1.5)| / |(1, 2)|
    assert ode["teacher_distance"][0] == pytest.approx(np.sqrt(2.5 / 5), rel=1e-12)
    assert written["settings"]["loss_window"] == 4.0  # the input period
    assert result.curves["ode"]["t"] == ode["t"]


def test_should_stop_keeps_the_partial_curves_written(tmp_path):
    spec, text = spec_from(_lagline())
    reached = {"t": 0.0}

    def on_progress(stage: str, done: float, total: float | None) -> None:
        reached["t"] = max(reached["t"], done)

    def should_stop() -> bool:  # fires once two windows (t = 1) are done
        return reached["t"] >= 1.0

    result = train(
        spec,
        text,
        tmp_path,
        t_stop=10.0,
        chunk=0.5,
        on_progress=on_progress,
        should_stop=should_stop,
    )
    assert result.complete is False
    written = json.loads((tmp_path / "learning.json").read_text())
    assert written["complete"] is False
    t = written["curves"]["ode"]["t"]
    assert t[-1] == 1.0  # the finished windows, nothing of the stopped one
    assert len(written["curves"]["ode"]["weights"]["W1"]) == len(t)
    assert written["curves"]["ode"]["weights"]["W1"][-1] != [[0.5]]
    assert (tmp_path / "learning.png").exists()


# --- the command line -------------------------------------------------------------


def _write(folder: Path, data: dict) -> Path:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_cli_train_writes_outputs_then_refuses_to_overwrite_them(tmp_path):
    out = tmp_path / "out"
    args = ["train", str(EXAMPLES / "lagline.yaml"), "--t-stop", "1", "--out", str(out)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "curves " in first.stdout
    before = (out / "learning.json").read_bytes()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == EXIT_INPUT
    assert "already exist" in again.stderr and "--force" in again.stderr
    assert (out / "learning.json").read_bytes() == before
    forced = CliRunner().invoke(main, [*args, "--force"])
    assert forced.exit_code == 0, forced.output


def _no_learning() -> dict:
    return _lagline(eta=0.0)


def _tau_learning() -> dict:
    return _tau_lagline()


def _bad_eta_tau() -> dict:
    return _lagline(eta_tau="fast")


@pytest.mark.parametrize(
    ("make", "extra", "fragments"),
    [
        (_no_learning, [], ["network.eta = 0", "network.eta_tau = 0", "fix:"]),
        (_tau_learning, ["--spice"], ["network.eta_tau = 1", "without --spice"]),
        (_bad_eta_tau, [], ["network.eta_tau", "'fast'"]),
        (default_dict, ["--t-stop", "-1"], ["--t-stop", "-1", "> 0"]),
        (default_dict, ["--t-stop", "nan"], ["--t-stop", "nan"]),
    ],
    ids=[
        "nothing_learns",
        "tau_m_in_spice",
        "eta_tau_not_a_number",
        "negative_t_stop",
        "nan_t_stop",
    ],
)
def test_cli_train_bad_input_exits_2_and_writes_nothing(
    tmp_path, make, extra, fragments
):
    out = tmp_path / "out"
    spec_file = _write(tmp_path, copy.deepcopy(make()))
    result = CliRunner().invoke(
        main, ["train", str(spec_file), "--out", str(out), *extra]
    )
    assert result.exit_code == EXIT_INPUT, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert not out.exists()


def test_cli_train_missing_spec_file_exits_2(tmp_path):
    result = CliRunner().invoke(main, ["train", str(tmp_path / "nope.yaml")])
    assert result.exit_code == EXIT_INPUT
    assert "does not exist" in result.stderr


# --- in the circuit (real ngspice) ----------------------------------------------------


@pytest.mark.slow
def test_lagline_learns_in_ngspice_as_in_the_ode(tmp_path):
    # 300 model units: the ODE student is within 0.4 % of the teacher by then.
    result = CliRunner().invoke(
        main,
        [
            "train",
            str(EXAMPLES / "lagline.yaml"),
            "--spice",
            "--t-stop",
            "300",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "learning.json").read_text())
    rows = written["comparison"]
    assert [row["weight"] for row in rows] == ["w_l1_i0_j0", "w_l2_i0_j0"]
    for row in rows:
        assert row["spice_rel_error_to_teacher"] <= 0.02  # issue #3: within 2 %
        assert row["max_rel_dev_spice_vs_ode"] <= 0.01  # tracks the ODE within 1 %
    spice = written["curves"]["spice"]
    assert spice["t"] == written["curves"]["ode"]["t"]
    assert spice["teacher_distance"][-1] < 0.02
    assert "SPICE-ODE max dev" in result.stdout


def _model_time_shown(log: Path) -> float:
    shown = re.findall(r"t = ([0-9.]+) of", log.read_text(encoding="utf-8"))
    return max(map(float, shown), default=0.0)


def test_ctrl_c_stops_train_keeps_partial_curves_and_exits_130(tmp_path):
    # A real SIGINT to a real process: the handler must be in place once the
    # progress bar shows, and the curves of the finished windows must be written.
    out = tmp_path / "out"
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "vle_hw", "train", "--t-stop", "100"]
    with open(log, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [*command, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 120
        while _model_time_shown(log) < 5.0:  # two windows of 2.5 done
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=120)
    message = log.read_text(encoding="utf-8")
    assert process.returncode == 130, message
    assert f"partial curves are in {out / 'learning.json'}" in message
    written = json.loads((out / "learning.json").read_text())
    assert written["complete"] is False
    assert 5.0 <= written["curves"]["ode"]["t"][-1] < 100.0
    assert (out / "learning.png").exists()


LAGNET = str(Path(__file__).resolve().parents[1] / "examples" / "lagnet.yaml")


def test_train_with_adjoint_window_puts_both_rules_side_by_side(tmp_path):
    """--adjoint-window adds the exact-adjoint curves beside the local rule's."""
    from click.testing import CliRunner

    from vle_hw.cli import main

    out = tmp_path / "o"
    result = CliRunner().invoke(
        main,
        ["train", LAGNET, "--t-stop", "6", "--adjoint-window", "3"]
        + ["--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "ODE, exact adjoint (windowed)" in result.output
    data = json.loads((out / "learning.json").read_text())
    adjoint, local = data["curves"]["adjoint"], data["curves"]["ode"]
    assert adjoint["t"] == [3.0, 6.0]
    assert set(adjoint["weights"]) == set(local["weights"]) == {"W1"}
    # both rules move W1 from its start toward the teacher [[-0.5], [1]]
    start = np.array([[0.2], [0.3]])
    teacher = np.array([[-0.5], [1.0]])
    for curves in (adjoint, local):
        final = np.array(curves["weights"]["W1"][-1])
        assert np.linalg.norm(final - teacher) < np.linalg.norm(start - teacher)
    assert data["settings"]["adjoint_window"] == 3.0


def test_train_refuses_an_adjoint_window_outside_the_run(tmp_path):
    from click.testing import CliRunner

    from vle_hw.cli import main

    for bad in ("0", "-1", "nan", "1000"):
        result = CliRunner().invoke(
            main,
            ["train", LAGNET, "--t-stop", "6"]
            + ["--adjoint-window", bad, "--out", str(tmp_path / "o")],
        )
        assert result.exit_code == 2, (bad, result.output)
        assert "--adjoint-window" in result.output
        assert not (tmp_path / "o").exists()
