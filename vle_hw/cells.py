"""The behavioural cell library (``circuits/behavioural.lib``), generated from the
derivation.

Each cell is an ngspice subcircuit whose expressions are the derived ones,
printed with the subcircuit's parameters left symbolic. The decks that
``vle-hw`` writes inline the same expressions with numbers; the library is for
users who build their own decks. ``scripts/regenerate.py`` rewrites the file;
a test fails when it is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from vle_hw import __version__
from vle_hw import derivation as d
from vle_hw.spice_expr import node_voltage, parameter, to_spice

LIBRARY_PATH = Path(__file__).resolve().parent.parent / "circuits" / "behavioural.lib"


@dataclass(frozen=True)
class Cell:
    """A subcircuit: name, ports, parameters with defaults, body lines."""

    name: str
    ports: tuple[str, ...]
    params: dict[str, float]
    body: tuple[str, ...]
    doc: str

    def text(self) -> str:
        params = " ".join(f"{k}={v!r}" for k, v in self.params.items())
        lines = [f"* {line}" for line in self.doc.splitlines()]
        lines.append(f".subckt {self.name} {' '.join(self.ports)} params: {params}")
        lines += list(self.body)
        lines.append(f".ends {self.name}")
        return "\n".join(lines) + "\n"


def _p(name: str) -> sp.Symbol:
    return parameter(name)


def leaky_integrator() -> Cell:
    """tau dx/dt = -x + gain * in: C to ground, leak tau/C, VCCS gain C/tau."""
    return Cell(
        "vle_leaky_integrator",
        ("out", "in"),
        {"tau_sec": 1e-5, "c_farad": 1e-9, "gain": 1.0},
        (
            "c1 out 0 {c_farad}",
            "r1 out 0 {tau_sec/c_farad}",
            "g1 0 out in 0 {gain*c_farad/tau_sec}",
        ),
        "First-order node (F1)/(B2): tau dx/dt = -x + gain*v(in); tau = tau_sec.",
    )


def prospective_readout() -> Cell:
    """(F2) with gamma = 0: u_prosp = (1 - kappa) u + kappa I_syn."""
    eq = d.derive("linear")
    expr = eq.u_prosp.subs({d.gamma: 0, d.tau_r: _p("tau_r"), d.tau_m: _p("tau_m")})
    expr = expr.subs({d.u: node_voltage("state"), d.I_syn: node_voltage("drive")})
    return Cell(
        "vle_prospective_readout",
        ("out", "state", "drive"),
        {"tau_m": 1.0, "tau_r": 0.1},
        (f"b1 out 0 v = {to_spice(expr)}",),
        "(F2): v(out) = (1 - tau_r/tau_m) v(state) + tau_r/tau_m v(drive).",
    )


def error_readout() -> Cell:
    """(B3): e = (1 - rho) v + rho alpha."""
    eq = d.derive("linear")
    expr = eq.e.subs({d.tau_r: _p("tau_r"), d.tau_m: _p("tau_m")})
    expr = expr.subs({d.v: node_voltage("state"), d.alpha: node_voltage("drive")})
    return Cell(
        "vle_error_readout",
        ("out", "state", "drive"),
        {"tau_m": 1.0, "tau_r": 0.1},
        (f"b1 out 0 v = {to_spice(expr)}",),
        "(B3): v(out) = (1 - tau_m/tau_r) v(state) + tau_m/tau_r v(drive).",
    )


def phi_cell(name: str, derivative: bool = False) -> Cell:
    """phi (or phi') of the input voltage, with the signal scale s_volt."""
    eq = d.derive(name)
    expr = eq.phi_prime if derivative else eq.phi
    scale = _p("s_volt")
    body = expr.subs(d.u_prosp, node_voltage("in") / scale)
    out = body * (scale if not derivative else 1)
    label = f"d{name}" if derivative else name
    what = (
        f"phi'(v(in)/s_volt) ({name})"
        if derivative
        else (f"s_volt * phi(v(in)/s_volt) ({name})")
    )
    return Cell(
        f"vle_phi_{label}",
        ("out", "in"),
        {"s_volt": 0.1},
        (f"b1 out 0 v = {to_spice(out)}",),
        f"(F3): v(out) = {what}.",
    )


def plastic_synapse() -> Cell:
    """Current g * v(w) * v(pre) into the summing node `sum` (KCL)."""
    expr = _p("g_siemens") * node_voltage("w") * node_voltage("pre")
    return Cell(
        "vle_plastic_synapse",
        ("sum", "w", "pre"),
        {"g_siemens": 1e-3},
        (f"b1 0 sum i = {to_spice(expr)}",),
        "Plastic synapse: injects g_siemens*v(w)*v(pre) into node sum.",
    )


def weight_store() -> Cell:
    """A weight capacitor integrating C s_w / s_t * dW/dt (plasticity rule)."""
    eq = d.derive("linear")
    rate = eq.dW_dt.subs(
        {
            d.eta: _p("eta"),
            d.e: node_voltage("e") / _p("s_err"),
            d.r_pre: node_voltage("pre") / _p("s_sig"),
        }
    )
    current = _p("c_farad") * _p("s_w") / _p("s_t") * rate
    return Cell(
        "vle_weight_store",
        ("w", "e", "pre"),
        {
            "c_farad": 1e-9,
            "s_w": 1.0,
            "s_t": 1e-5,
            "eta": 1.0,
            "s_err": 1.0,
            "s_sig": 0.1,
        },
        ("c1 w 0 {c_farad}", f"b1 0 w i = {to_spice(current)}"),
        "Weight storage: C dV(w)/dt = C s_w/s_t * eta * e * r_pre (model units).",
    )


def all_cells() -> list[Cell]:
    cells = [leaky_integrator(), prospective_readout(), error_readout()]
    for name in d.PHI_NAMES:
        cells += [phi_cell(name), phi_cell(name, derivative=True)]
    cells += [plastic_synapse(), weight_store()]
    return cells


def library_text() -> str:
    """The whole library file (deterministic)."""
    head = [
        f"* vle_hw behavioural cell library, generated by vle_hw {__version__}",
        "* from the sympy derivation (scripts/regenerate.py). Do not edit by hand.",
        "* Include with: .include behavioural.lib",
        "",
    ]
    return "\n".join(head) + "\n".join(cell.text() for cell in all_cells())
