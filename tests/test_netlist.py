"""The netlist writer: determinism, dialect, safety, and the committed decks."""

import re
from pathlib import Path

import pytest
import sympy as sp
from helpers import default_dict, spec_from

from vle_hw import derivation as d
from vle_hw.cells import LIBRARY_PATH, library_text
from vle_hw.circuit import CircuitPlan, Element, first_order
from vle_hw.errors import SpecError
from vle_hw.netlist import strip_control, write_deck
from vle_hw.pipeline import build_deck
from vle_hw.spec import default_spec_text, load_spec, spec_hash
from vle_hw.spice_expr import node_voltage, number, to_spice

ROOT = Path(__file__).resolve().parent.parent


def test_same_spec_gives_the_same_deck_bytes():
    spec, text = load_spec()
    assert build_deck(spec, text).text == build_deck(spec, text).text


def test_deck_header_names_version_spec_hash_scales_and_step():
    spec, text = load_spec()
    deck = build_deck(spec, text).text
    lines = deck.splitlines()
    assert lines[0] == "vle_hw behavioural deck lagline"  # the title line
    header = "\n".join(lines[1:16])
    assert f"* spec_hash: {spec_hash(text)}" in header
    assert "* tool_version: " in header
    for key in (
        "time_sec_per_unit: 1e-05",
        "signal_volt_per_unit: 0.1",
        "error_volt_per_unit: 10.0",
        "weight_volt_per_unit: 1.0",
        "max_step: ",
        "level: behavioural",
    ):
        assert key in header


def test_deck_numbers_have_no_scale_letters_and_lines_use_lf():
    spec, text = load_spec()
    deck = build_deck(spec, text).text
    assert "\r" not in deck
    body = [ln for ln in deck.splitlines() if ln and not ln.startswith(("*", "."))]
    for line in body:
        tokens = re.findall(r"(?<![a-z_(])(\d[\d.]*(?:e[+-]?\d+)?)([a-z]*)", line)
        for _, suffix in tokens:
            assert suffix == "", line
    assert number(2e-3) == "0.002" and number(1e-12) == "1e-12"


def test_deck_uses_no_ddt_and_weights_have_initial_conditions():
    spec, text = load_spec()
    deck = build_deck(spec, text).text
    assert "ddt(" not in deck
    assert ".ic v(w_l1_i0_j0)=0.5 v(w_l2_i0_j0)=0.5" in deck
    assert deck.rstrip().endswith(".end")
    assert "quit 0" in deck
    assert ".control" not in strip_control(deck)


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")))
def test_committed_netlists_are_current(example):
    spec, text = load_spec(example)
    if spec.network.eta_tau > 0:  # tau_m learning is ODE-only: no deck to commit
        with pytest.raises(SpecError, match="eta_tau"):
            build_deck(spec, text)
        return
    committed = ROOT / "netlists" / f"{spec.name}.cir"
    assert committed.read_text(encoding="utf-8") == build_deck(spec, text).text, (
        f"{committed} is stale; run python scripts/regenerate.py"
    )


def test_committed_cell_library_is_current():
    assert LIBRARY_PATH.read_text(encoding="utf-8") == library_text(), (
        "circuits/behavioural.lib is stale; run python scripts/regenerate.py"
    )


def test_shipped_example_equals_the_embedded_default():
    shipped = (ROOT / "examples" / "lagline.yaml").read_text(encoding="utf-8")
    assert shipped == default_spec_text()


def test_writer_rejects_names_that_could_add_deck_lines():
    for bad in ["u\n.control", "x;shell", "A", "1u", "u l1", ".include", "a\n"]:
        plan = CircuitPlan(
            title="t",
            header={},
            sections=[("s", [Element("r1", (bad, "0"), "1.0")])],
            tran_stop_sec=1e-3,
            tran_step_sec=1e-6,
            max_step_sec=1e-6,
        )
        with pytest.raises(ValueError, match="identifier"):
            write_deck(plan)
    plan = CircuitPlan(
        title="t",
        header={},
        sections=[("s", [Element("r1", ("a", "0"), "1.0\n.control")])],
        tran_stop_sec=1e-3,
        tran_step_sec=1e-6,
        max_step_sec=1e-6,
    )
    with pytest.raises(ValueError, match="unsafe"):
        write_deck(plan)


def test_expression_printer_rejects_unknown_symbols_and_functions():
    with pytest.raises(ValueError, match="no value in the circuit"):
        to_spice(sp.Symbol("secret") + 1)
    with pytest.raises(ValueError, match="not supported"):
        to_spice(sp.gamma(node_voltage("a")))
    with pytest.raises(ValueError, match="identifier"):
        node_voltage("a)\n.control")


def test_first_order_reads_tau_and_gains_and_rejects_nonlinear_rates():
    eq = d.derive("tanh")
    fo = first_order(
        eq.du_dt.subs({d.tau_m: 2.0, d.tau_r: 0.1, d.gamma: 0.5}), d.u, [d.I_syn, d.e]
    )
    assert fo.tau == pytest.approx(2.0)
    assert fo.gains[d.I_syn] == pytest.approx(1.0)
    assert fo.gains[d.e] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="not linear"):
        first_order(-(d.u**2), d.u, [])


def test_frozen_weights_become_linear_g_elements():
    data = default_dict()
    data["network"]["eta"] = 0.0
    spec, text = spec_from(data)
    deck = build_deck(spec, text).text
    assert "gsyn_l1_i0_j0 0 isyn_l1_n0 x_n0 0 0.0005" in deck
    assert "bw_" not in deck and ".ic v(w_" not in deck


def test_cell_library_blocks_are_written_and_checked():
    cell = ".subckt buf in out\ne1 out 0 in 0 1.0\n.ends buf"
    plan = CircuitPlan(
        title="lib",
        header={},
        sections=[("x", [Element("x1", ("a", "b"), "buf")])],
        tran_stop_sec=1e-3,
        tran_step_sec=1e-6,
        max_step_sec=1e-6,
        library=[cell],
    )
    text = write_deck(plan).text
    assert text.index(".subckt buf in out") < text.index("x1 a b buf")
    bad_blocks = (".control\nshell rm -rf /\n.endc", ".include /etc/passwd", ".end")
    for bad in bad_blocks:
        plan.library = [bad]
        with pytest.raises(ValueError, match="not a cell definition"):
            write_deck(plan)


def test_spice_template_fills_checked_nodes_and_matches_direct_printing():
    from vle_hw.spice_expr import SpiceTemplate, node_voltage, to_spice

    template = SpiceTemplate(lambda a, b: 0.5 * a * b + 2.0 * a, 2)
    filled = template.fill("w_l1_i0_j0", "x_n0")
    direct = to_spice(
        0.5 * node_voltage("w_l1_i0_j0") * node_voltage("x_n0")
        + 2.0 * node_voltage("w_l1_i0_j0")
    )
    assert sorted(filled.replace("*", " ").split()) == sorted(
        direct.replace("*", " ").split()
    )
    for bad in ("x)\n.control", "X_n0", "", "a b", "v(x)"):
        with pytest.raises(ValueError, match="not a plain lower-case identifier"):
            template.fill("w_l1_i0_j0", bad)
    with pytest.raises(ValueError, match="takes 2 nodes"):
        template.fill("w_l1_i0_j0")
