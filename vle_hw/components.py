"""The component plan: op-amp stages, series values, requirements, area, power, noise.

This module owns the mapping of each first-order node and each readout of a
network onto an op-amp stage with real resistor and capacitor values
(DESIGN.md section 3), used both by ``vle-hw spec`` and by the op-amp level of
``vle-hw verify`` (:mod:`vle_hw.opamp`), so the two never disagree.

Stages
------
- Inverting leaky summing integrator (membrane F1, error unit B2): op-amp with
  its + input grounded, C_f parallel R_f from the output to the - input, one
  input resistor R_k = R_f / k_k per input of voltage gain k_k. The output
  holds -x: tau = R_f C_f, V_out = -sum_k k_k V_k / (1 + s tau).
- Difference summing amplifier (prospective readouts F2 and B3): output
  sum_k w_k V_k. Inputs of negative weight go to the - input through
  R_f / |w_k|; those of positive weight to the + input through a divider. The
  noise gain is NG = 1 + sum |w_neg| (+ R_f / R_g when the positive weights
  sum to more, with R_g from the - input to ground). The error readout with
  tau_m > tau_r has weight 1 - rho < 0 on v and rho on alpha: NG = rho.

E-series
--------
E24 and E96 are the IEC 60063 preferred numbers; a value is rounded to the
nearest series value in log. Each stage has one free scale (C_f of an
integrator, R_f of an amplifier): the tool tries every series value of one
decade around the requested one and keeps the one whose worst rounding error
over the stage's parts is smallest.

Requirements (derived with sympy by :func:`stage_error_symbolic`)
------------------------------------------------------------------
With A(s) = A0 / (1 + s/w_p), 1/A = 1/A0 + s/w_t to first order, w_t = 2 pi GBW.
A stage's relative output error is eps(s) = -NG(s) / A(s) to first order in
1/A, NG(s) = 1 + sum_k k_k / (1 + s tau) for the integrator (noise gain over
the feedback admittance), constant for the amplifier. A tracking error E at
the time scale tau_min (w = 1/tau_min), split evenly between the two terms,
needs A0 >= 2 NG_dc / E and GBW >= 2 NG / (2 pi tau_min E).

Process constants (``process:`` section; defaults, each an order of magnitude)
-------------------------------------------------------------------------------
- c_density_farad_per_m2 = 2e-3 (2 fF/um^2): MIM capacitor of the SkyWater
  SKY130 open PDK (sky130_fd_pr__cap_mim_m3_1, about 2 fF/um^2).
- r_sheet_ohm_per_sq = 2000: SKY130 extra-high-resistance poly (xhrpoly,
  about 2 kOhm/sq); r_square_area_m2 = 1e-12 (a 1 um x 1 um square with
  spacing, an assumption).
- opamp_area_m2 = 5e-9 (5000 um^2): a two-stage Miller OTA in a 130 nm class
  process, an assumption.
- Static power per op-amp: supply_volt x I_q, I_q = 2 x 2 pi GBW c_comp /
  (gm/Id) (two stages, each biased for the gm that places GBW with the
  compensation capacitor c_comp = 1 pF at gm/Id = 10 /V, moderate inversion);
  supply 5 V (rails +-2.5 V, the default swing).
- kT/C noise per capacitor: sqrt(k T / C) at T = 300 K.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import sympy as sp

from vle_hw import derivation as d
from vle_hw.circuit import first_order
from vle_hw.errors import SpecError
from vle_hw.network import Network
from vle_hw.spec import Spec

SeriesName = Literal["E96", "E24", "exact"]
K_BOLTZMANN = 1.380649e-23  # J/K, exact (SI 2019)

# IEC 60063 preferred numbers, one decade.
# LIMITATION(components): capacitors are rounded to the same series as the
#   resistors (E96/E24), while discrete capacitors mostly come in E6/E12.
#   Consequence: a bill of materials needs a tau re-check with E12 capacitors.
E24 = (1.0, 1.1, 1.2, 1.3, 1.5, 1.6, 1.8, 2.0, 2.2, 2.4, 2.7, 3.0, 3.3, 3.6, 3.9,
       4.3, 4.7, 5.1, 5.6, 6.2, 6.8, 7.5, 8.2, 9.1)  # fmt: skip
E96 = tuple(v / 100 for v in (
    100, 102, 105, 107, 110, 113, 115, 118, 121, 124, 127, 130, 133, 137, 140,
    143, 147, 150, 154, 158, 162, 165, 169, 174, 178, 182, 187, 191, 196, 200,
    205, 210, 215, 221, 226, 232, 237, 243, 249, 255, 261, 267, 274, 280, 287,
    294, 301, 309, 316, 324, 332, 340, 348, 357, 365, 374, 383, 392, 402, 412,
    422, 432, 442, 453, 464, 475, 487, 499, 511, 523, 536, 549, 562, 576, 590,
    604, 619, 634, 649, 665, 681, 698, 715, 732, 750, 768, 787, 806, 825, 845,
    866, 887, 909, 931, 953, 976))  # fmt: skip
SERIES: dict[str, tuple[float, ...]] = {"E24": E24, "E96": E96}


class ComponentWarning(UserWarning):
    """A part value outside what the chosen level can realise."""


def round_to_series(value: float, series: SeriesName) -> float:
    """Nearest value of `series` to `value`, nearest in log (ratio).

    Examples
    --------
    >>> round_to_series(4.2e3, "E24"), round_to_series(9.9e-9, "E96")
    (4300.0, 1e-08)
    >>> round_to_series(1234.5, "exact")
    1234.5
    """
    if series == "exact":
        return float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"cannot round {value!r} to a series value")
    table = SERIES[series]
    exponent = math.floor(math.log10(value))
    mantissa = value / 10.0**exponent
    # candidates: the decade's values and the next decade's first
    candidates = [*table, 10.0]
    best = min(candidates, key=lambda m: abs(math.log(m / mantissa)))
    return float(f"{best * 10.0**exponent:.3e}")


def _decade(center: float, series: SeriesName) -> list[float]:
    """Series values from center/sqrt(10) to center*sqrt(10) (the free scale)."""
    if series == "exact":
        return [center]
    exponent = math.floor(math.log10(center))
    values = [
        float(f"{m * 10.0**e:.3e}")
        for e in (exponent - 1, exponent, exponent + 1)
        for m in SERIES[series]
    ]
    return [v for v in values if center / 10**0.5 <= v <= center * 10**0.5]


# --- parts and stages -----------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One resistor or capacitor: ideal value, the series value, its role."""

    name: str
    kind: Literal["r", "c"]
    nodes: tuple[str, str]
    ideal: float
    value: float
    role: str

    @property
    def rounding_rel(self) -> float:
        return self.value / self.ideal - 1.0


@dataclass
class Stage:
    """One op-amp with its resistors and capacitors.

    ``kind`` is "integrator" (output holds -x, ``tau_sec``) or "amplifier".
    ``gains`` are the ideal voltage gains per input node; ``realised`` those of
    the rounded parts, ``tau_realised_sec`` likewise.
    """

    name: str
    kind: Literal["integrator", "amplifier"]
    unit: str  # "neuron l1 n0", "error unit l1 n0"
    signal: str  # the model signal at the output
    out: str
    inn: str
    inp: str
    parts: list[Part]
    gains: dict[str, float]
    realised: dict[str, float]
    noise_gain_dc: float
    tau_sec: float = 0.0
    tau_realised_sec: float = 0.0
    notes: list[str] = field(default_factory=list)
    # output volts = out_sign * scale_volt * model signal
    scale_volt: float = 1.0
    out_sign: float = 1.0

    @property
    def noise_gain_realised(self) -> float:
        """1 + (conductances into the - input) / (feedback conductance), at DC,
        of the rounded parts."""
        g_f = sum(
            1.0 / p.value
            for p in self.parts
            if p.kind == "r" and set(p.nodes) == {self.out, self.inn}
        )
        g_in = sum(
            1.0 / p.value
            for p in self.parts
            if p.kind == "r" and self.inn in p.nodes and self.out not in p.nodes
        )
        return 1.0 + g_in / g_f

    @property
    def tau_error_rel(self) -> float:
        return self.tau_realised_sec / self.tau_sec - 1.0 if self.tau_sec else 0.0

    @property
    def gain_error_rel(self) -> dict[str, float]:
        return {k: self.realised[k] / g - 1.0 for k, g in self.gains.items() if g}


def _best(candidates: dict, score) -> object:
    """The candidate (a free scale) with the smallest score, ties to the smaller."""
    return min(candidates, key=lambda key: (score(candidates[key]), key))


def design_integrator(
    name: str,
    unit: str,
    signal: str,
    out: str,
    tau_sec: float,
    gains: dict[str, float],
    c_farad: float,
    series: SeriesName,
) -> Stage:
    """Inverting leaky summing integrator: V_out = -sum k V_k / (1 + s tau).

    Parameters
    ----------
    tau_sec : float
        Time constant R_f C_f (s).
    gains : dict
        Input node -> voltage gain k (> 0).
    c_farad : float
        Requested feedback capacitor (F); the series value of its decade that
        makes the stage's worst rounding error smallest is used.

    Raises
    ------
    SpecError
        If a gain is not positive (an inverting integrator cannot realise it).
    """
    for node, k in gains.items():
        if not k > 0:
            raise SpecError(
                f"{unit}: integrator input {node} needs gain {k:g}; the inverting "
                "integrator realises only positive gains."
            )
    inn = f"sj_{name}"

    def parts(c_value: float) -> list[Part]:
        r_f = tau_sec / c_value
        out_parts = [
            Part(f"c{name}", "c", (out, inn), c_value, c_value, "C_f (tau)"),
            Part(
                f"r{name}",
                "r",
                (out, inn),
                r_f,
                round_to_series(r_f, series),
                "R_f leak (tau)",
            ),
        ]
        for node, k in gains.items():
            r_in = r_f / k
            out_parts.append(
                Part(
                    f"r{name}_{node}",
                    "r",
                    (node, inn),
                    r_in,
                    round_to_series(r_in, series),
                    f"R_in from {node} (gain {k:.4g})",
                )
            )
        return out_parts

    # the free C_f: smallest worst of tau and gain rounding errors
    def score(ps: list[Part]) -> float:
        r_f = ps[1].value
        errs = [abs(r_f * ps[0].value / tau_sec - 1.0)]
        errs += [
            abs((r_f / p.value) / k - 1.0)
            for p, k in zip(ps[2:], gains.values(), strict=True)
        ]
        return max(errs)

    options = {c: parts(c) for c in _decade(c_farad, series)}
    chosen = _best(options, score)
    chosen_parts = options[chosen]
    r_f = chosen_parts[1].value
    c_ideal = float(c_farad)
    chosen_parts[0] = Part(
        chosen_parts[0].name, "c", chosen_parts[0].nodes, c_ideal, chosen, "C_f (tau)"
    )
    realised = {
        node: r_f / p.value for node, p in zip(gains, chosen_parts[2:], strict=True)
    }
    return Stage(
        name=name,
        kind="integrator",
        unit=unit,
        signal=signal,
        out=out,
        inn=inn,
        inp="0",
        parts=chosen_parts,
        gains=dict(gains),
        realised=realised,
        noise_gain_dc=1.0 + sum(gains.values()),
        tau_sec=tau_sec,
        tau_realised_sec=r_f * chosen,
    )


def design_amplifier(
    name: str,
    unit: str,
    signal: str,
    out: str,
    weights: dict[str, float],
    r_base_ohm: float,
    series: SeriesName,
    r_range_ohm: tuple[float, float] = (0.0, math.inf),
) -> Stage:
    """Difference summing amplifier: V_out = sum_k w_k V_k.

    Negative weights feed the - input through R_f/|w|; positive weights feed
    the + input through R_base/w with a resistor to ground making the divider,
    or, when they sum to more than 1 + sum |w_neg|, a resistor R_g from the -
    input to ground raises the noise gain to their sum.

    Examples
    --------
    >>> st = design_amplifier("ro", "e", "e", "e1", {"v": -9.0, "a": 10.0},
    ...                       1e4, "exact")
    >>> st.noise_gain_dc, sorted(st.realised.items())
    (10.0, [('a', 10.0), ('v', -9.0)])
    """
    neg = {k: -w for k, w in weights.items() if w < 0}
    pos = {k: w for k, w in weights.items() if w > 0}
    inn, inp = f"sjn_{name}", (f"sjp_{name}" if pos else "0")
    sum_neg, sum_pos = sum(neg.values()), sum(pos.values())
    noise_gain = max(1.0 + sum_neg, sum_pos)

    def parts(scales: tuple[float, float]) -> list[Part]:
        r_f, r_base = scales
        out_parts = [Part(f"r{name}_f", "r", (out, inn), r_f, r_f, "R_f feedback")]
        for node, w in neg.items():
            r = r_f / w
            out_parts.append(
                Part(
                    f"r{name}_{node}",
                    "r",
                    (node, inn),
                    r,
                    round_to_series(r, series),
                    f"R_in- from {node} (weight {-w:.4g})",
                )
            )
        if sum_pos > 1.0 + sum_neg:
            r_g = r_f / (sum_pos - 1.0 - sum_neg)
            out_parts.append(
                Part(
                    f"r{name}_g",
                    "r",
                    (inn, "0"),
                    r_g,
                    round_to_series(r_g, series),
                    "R_g noise-gain resistor",
                )
            )
        for node, w in pos.items():
            r = r_base / w
            out_parts.append(
                Part(
                    f"r{name}_{node}",
                    "r",
                    (node, inp),
                    r,
                    round_to_series(r, series),
                    f"R_in+ from {node} (weight {w:.4g})",
                )
            )
        if pos and noise_gain > sum_pos * (1 + 1e-12):
            r_d = r_base / (noise_gain - sum_pos)
            out_parts.append(
                Part(
                    f"r{name}_d",
                    "r",
                    (inp, "0"),
                    r_d,
                    round_to_series(r_d, series),
                    "R_d divider to ground",
                )
            )
        return out_parts

    # two free scales, R_f (- side) then R_base (+ side divider); a part
    # outside r_range_ohm costs more than any rounding error
    def score(ps: list[Part], which: dict[str, float]) -> float:
        got = _amplifier_gains(ps, out, inn, inp)
        off = sum(not r_range_ohm[0] <= p.value <= r_range_ohm[1] for p in ps)
        return off + max(abs(got[k] / w - 1.0) for k, w in which.items())

    values = _decade(r_base_ohm, series)
    minus = {k: w for k, w in weights.items() if w < 0} or weights
    options = {(r_f, r_base_ohm): parts((r_f, r_base_ohm)) for r_f in values}
    r_f, _ = _best(options, lambda ps: score(ps, minus))
    options = {(r_f, r_b): parts((r_f, r_b)) for r_b in (values if pos else [1.0])}
    chosen = options[_best(options, lambda ps: score(ps, weights))]
    realised = _amplifier_gains(chosen, out, inn, inp)
    return Stage(
        name=name,
        kind="amplifier",
        unit=unit,
        signal=signal,
        out=out,
        inn=inn,
        inp=inp,
        parts=chosen,
        gains=dict(weights),
        realised={k: realised[k] for k in weights},
        noise_gain_dc=noise_gain,
    )


def _amplifier_gains(parts: list[Part], out: str, inn: str, inp: str) -> dict:
    """Ideal-op-amp gains of the realised parts (KCL at both inputs)."""
    g_plus = {
        p.nodes[0]: 1.0 / p.value for p in parts if inp != "0" and p.nodes[1] == inp
    }
    g_minus = {p.nodes[0]: 1.0 / p.value for p in parts if p.nodes[1] == inn}
    g_f = g_minus.pop(out)
    g_gnd_minus = sum(1.0 / p.value for p in parts if p.nodes == (inn, "0"))
    g_gnd_plus = sum(
        1.0 / p.value for p in parts if inp != "0" and p.nodes == (inp, "0")
    )
    noise_gain = 1.0 + (sum(g_minus.values()) + g_gnd_minus) / g_f
    total_plus = sum(g_plus.values()) + g_gnd_plus
    gains = {node: -g / g_f for node, g in g_minus.items()}
    for node, g in g_plus.items():
        gains[node] = noise_gain * g / total_plus
    return gains


# --- the network's stages --------------------------------------------------------


def _tag(layer: int, neuron: int) -> str:
    return f"l{layer}_n{neuron}"


def _linear_coefficients(expr: sp.Expr, symbols: list[sp.Symbol]) -> dict:
    coeffs = {s: sp.diff(expr, s) for s in symbols}
    rest = sp.expand(expr - sum(c * s for s, c in coeffs.items()))
    if any(c.free_symbols for c in coeffs.values()) or rest != 0:
        raise ValueError(f"{expr} is not linear in {symbols}")
    return {s: float(c) for s, c in coeffs.items()}


def network_stages(spec: Spec, network: Network) -> list[Stage]:
    """Every op-amp stage of `network` at the op-amp level, in deck order.

    Node names match :mod:`vle_hw.circuit` (``e_l1_n0``, ...); the synaptic
    sum is read through its buffer ``isynb_...``; membranes hold -u on
    ``un_...``, error units +v on ``v_...`` (fed by ``alphan_... = -alpha``).

    Raises
    ------
    SpecError
        If a part value is not a finite positive number (extreme time
        constants, gains or hardware scales).
    """
    try:
        return _network_stages(spec, network)
    except (OverflowError, ZeroDivisionError) as exc:
        raise SpecError(_NOT_REALISABLE.format(exc=exc)) from None
    except ValueError as exc:
        if not str(exc).startswith("cannot round"):
            raise
        raise SpecError(_NOT_REALISABLE.format(exc=exc)) from None


_NOT_REALISABLE = (
    "the spec's values give an op-amp stage a part value that is not a finite "
    "positive number ({exc}); fix: keep tau_m, tau_r, gamma, beta and the "
    "hardware scales (time_sec_per_unit, c_mem_farad, signal/error_volt_per_unit) "
    "within realistic ranges."
)


def _network_stages(spec: Spec, network: Network) -> list[Stage]:
    hw, comp = spec.hardware, spec.components
    s_x, s_e, t_s = (
        hw.signal_volt_per_unit,
        hw.error_volt_per_unit,
        hw.time_sec_per_unit,
    )
    stages: list[Stage] = []

    def add(stage: Stage, scale: float, sign: float = 1.0) -> None:
        stage.scale_volt, stage.out_sign = scale, sign
        stages.append(stage)

    units = [(layer, "t", False) for layer in network.teacher or ()]
    units += [(layer, "", True) for layer in network.layers]
    for layer, prefix, student in units:
        eq = d.derive(layer.phi)
        who = "teacher " if prefix else ""
        for i in range(layer.size):
            tag = _tag(layer.index, i)
            params = {
                d.tau_m: float(layer.tau_m[i]),
                d.tau_r: float(layer.tau_r[i]),
                d.gamma: layer.gamma if student else 0.0,
                d.beta: network.beta,
            }
            # membrane (F1): -u on un_...
            rate = eq.du_dt.subs(params)
            if not student:
                rate = rate.subs(d.e, 0)
            fo = first_order(rate, d.u, [d.I_syn, d.e])
            # I_syn is read through the buffered copy isynb_ of the KCL node
            scale_of = {d.I_syn: (f"{prefix}isynb_{tag}", s_x), d.e: (f"e_{tag}", s_e)}
            gains = {
                scale_of[sym][0]: g * s_x / scale_of[sym][1]
                for sym, g in fo.gains.items()
                if g != 0.0
            }
            add(
                design_integrator(
                    f"{prefix}mem_{tag}",
                    f"{who}neuron {tag}",
                    f"{who.replace(' ', '_')}u_{tag}",
                    f"{prefix}un_{tag}",
                    fo.tau * t_s,
                    gains,
                    hw.c_mem_farad,
                    comp.series,
                ),
                s_x,
                -1.0,
            )
            # prospective readout (F2): u_prosp = c_u u + c_I I_syn + c_e e
            up = eq.u_prosp.subs(params)
            if not student:
                up = up.subs(d.e, 0)
            c = _linear_coefficients(up, [d.u, d.I_syn, d.e])
            weights = {
                f"{prefix}un_{tag}": -c[d.u],
                f"{prefix}isynb_{tag}": c[d.I_syn],
                f"e_{tag}": c[d.e] * s_x / s_e,
            }
            add(
                design_amplifier(
                    f"{prefix}uprosp_{tag}",
                    f"{who}neuron {tag}",
                    f"{who.replace(' ', '_')}u_prosp_{tag}",
                    f"{prefix}uprosp_{tag}",
                    {k: w for k, w in weights.items() if w != 0.0},
                    comp.r_base_ohm,
                    comp.series,
                    (comp.r_min_ohm, comp.r_max_ohm),
                ),
                s_x,
            )
            if not student:
                continue
            # error unit (B2): +v from alphan = -alpha
            fo = first_order(eq.dv_dt.subs(params), d.v, [d.alpha])
            add(
                design_integrator(
                    f"err_{tag}",
                    f"error unit {tag}",
                    f"v_{tag}",
                    f"v_{tag}",
                    fo.tau * t_s,
                    {f"alphan_{tag}": fo.gains[d.alpha]},
                    hw.c_mem_farad,
                    comp.series,
                ),
                s_e,
            )
            # error readout (B3): e = (1 - rho) v + rho alpha
            c = _linear_coefficients(eq.e.subs(params), [d.v, d.alpha])
            add(
                design_amplifier(
                    f"eout_{tag}",
                    f"error unit {tag}",
                    f"e_{tag}",
                    f"e_{tag}",
                    {
                        k: w
                        for k, w in {
                            f"v_{tag}": c[d.v],
                            f"alpha_{tag}": c[d.alpha],
                        }.items()
                        if w != 0.0
                    },
                    comp.r_base_ohm,
                    comp.series,
                    (comp.r_min_ohm, comp.r_max_ohm),
                ),
                s_e,
            )
    return stages


# --- symbolic op-amp requirements ---------------------------------------------------

s_lap = sp.Symbol("s")
A = sp.Symbol("A", positive=True)
A0 = sp.Symbol("A_0", positive=True)
w_t = sp.Symbol("omega_t", positive=True)


def stage_error_symbolic(kind: Literal["integrator", "amplifier"], n_inputs: int = 2):
    """Exact and first-order relative error of a stage with finite gain A (sympy).

    Nodal analysis of the stage with an op-amp V_out = A (V_+ - V_-):
    returns (exact eps, first-order eps) with eps = V_out / V_out_ideal - 1.

    Examples
    --------
    >>> exact, first = stage_error_symbolic("amplifier", 1)
    >>> sp.factor(-first * A)
    (G_1 + G_f)/G_f
    """
    g = sp.symbols(f"G_1:{n_inputs + 1}", positive=True)
    vin = sp.symbols(f"V_1:{n_inputs + 1}")
    g_f, c_f = sp.symbols("G_f C_f", positive=True)
    v_minus, v_out = sp.symbols("V_m V_o")
    y_f = g_f + s_lap * c_f if kind == "integrator" else g_f
    kcl = sum(gk * (vk - v_minus) for gk, vk in zip(g, vin, strict=True))
    kcl += y_f * (v_out - v_minus)
    sol = sp.solve([kcl, v_out + A * v_minus], [v_out, v_minus], dict=True)[0]
    ideal = -sum(gk * vk for gk, vk in zip(g, vin, strict=True)) / y_f
    eps = sp.simplify(sol[v_out] / ideal - 1)
    x = sp.Symbol("x")  # x = 1/A
    first = sp.series(eps.subs(A, 1 / x), x, 0, 2).removeO().subs(x, 1 / A)
    return eps, sp.simplify(first)


def noise_gain_symbolic(kind: Literal["integrator", "amplifier"], n_inputs: int = 2):
    """Noise gain NG(s) = -A * first-order eps (the loop's 1/beta)."""
    _, first = stage_error_symbolic(kind, n_inputs)
    return sp.simplify(-first * A)


@dataclass(frozen=True)
class Requirement:
    stage: str
    noise_gain_dc: float
    noise_gain_hf: float
    a0_min: float
    gbw_min_hz: float


def requirements(
    stages: list[Stage], tau_min_sec: float, error_rel: float
) -> list[Requirement]:
    """Minimum A0 and GBW per stage for tracking error `error_rel` at tau_min.

    |eps(j w)| <= NG_dc / A0 + |NG(j w)| w / w_t at w = 1 / tau_min, each term
    given half of `error_rel`.
    """
    # LIMITATION(components): a worst-case bound per stage (a sinusoid at
    #   1/tau_min at full amplitude), blind to how errors add up across stages.
    #   Consequence: on LagLine it asks for 637 MHz where the measured worst
    #   signal crosses 1e-2 at 49 MHz (analysis/opamp_sweep.py). Issue #4 note.
    out = []
    w = 1.0 / tau_min_sec
    for st in stages:
        if st.kind == "integrator":
            k = sum(st.gains.values())
            ng_hf = abs(1.0 + k / (1.0 + 1j * w * st.tau_sec))
        else:
            ng_hf = st.noise_gain_dc
        a0_min = 2.0 * st.noise_gain_dc / error_rel
        gbw_min = 2.0 * ng_hf * w / (2 * math.pi * error_rel)
        out.append(Requirement(st.name, st.noise_gain_dc, ng_hf, a0_min, gbw_min))
    return out


def _lowpass(x: np.ndarray, t_sec: np.ndarray, tau_sec: float) -> np.ndarray:
    """Causal 1/(1 + s tau) of samples on a (possibly uneven) grid, exact for
    piecewise-linear input."""
    out = np.empty_like(x)
    out[0] = x[0]
    for n in range(1, len(x)):
        h = t_sec[n] - t_sec[n - 1]
        a = math.exp(-h / tau_sec)
        # exact response to a linear ramp between the two samples
        b = (1 - a) * tau_sec / h - a if h > 0 else 0.0
        out[n] = a * out[n - 1] + (1 - a - b) * x[n] + b * x[n - 1]
    return out


def predicted_errors(
    stages: list[Stage],
    signals: dict[str, np.ndarray],
    t_sec: np.ndarray,
    a0: float,
    gbw_hz: float,
    cells: Callable[[dict], dict] | None = None,
    passes: int = 8,
) -> dict[str, np.ndarray]:
    """First-order error (model units) of every stage output, from ideal traces.

    Each stage adds its own error delta(s) = -(1/A0 + s/w_t) NG(s) Y(s)
    (Y the ideal output voltage; for the integrator NG(s) Y = Y + K Y/(1 + s tau),
    K the sum of its gains) and passes on the errors of the nodes that feed it
    (weights w_k; for an integrator -k_k / (1 + s tau)). With `cells` (see
    :func:`cell_error_model`) the errors also cross the behavioural cells (phi,
    alpha, the synaptic sums and the weights), iterated `passes` times because
    the error path runs backwards through the layers.

    Parameters
    ----------
    signals : dict
        Ideal model signals by name (``u_l1_n0``...), on `t_sec`.
    """
    w_t = 2 * math.pi * gbw_hz
    own = {}
    for st in stages:
        if st.signal not in signals:
            continue
        y = st.out_sign * st.scale_volt * np.asarray(signals[st.signal], dtype=float)
        if st.kind == "integrator":
            z = y + sum(st.gains.values()) * _lowpass(y, t_sec, st.tau_sec)
        else:
            z = st.noise_gain_dc * y
        own[st.name] = -(z / a0 + np.gradient(z, t_sec) / w_t)
    errors_volt: dict[str, np.ndarray] = {}
    for _ in range(passes if cells is not None else 1):
        known = dict(errors_volt)
        if cells is not None:
            known.update(cells(known))
        for st in stages:
            if st.name not in own:
                continue
            delta = own[st.name]
            for node, gain in st.gains.items():
                upstream = known.get(node, errors_volt.get(node))
                if upstream is None:
                    continue
                if st.kind == "integrator":
                    delta = delta - gain * _lowpass(upstream, t_sec, st.tau_sec)
                else:
                    delta = delta + gain * upstream
            errors_volt[st.out] = known[st.out] = delta
    return {
        st.signal: errors_volt[st.out] / (st.out_sign * st.scale_volt)
        for st in stages
        if st.out in errors_volt
    }


def cell_error_model(
    spec: Spec, network: Network, signals: dict[str, np.ndarray], t_model: np.ndarray
) -> Callable[[dict], dict]:
    """Linearised behavioural cells: node errors (V) from the stage errors (V).

    r = phi(u_prosp), the synaptic sums W r_pre (with the weight error from
    d(dW)/dt = eta (de r_pre + e dr_pre)), alpha (output: d alpha/d u_prosp and
    d alpha/d y with y the teacher's r; hidden: phi'' fb du_prosp + phi' W^T de),
    alphan = -alpha; sensitivities from the derivation, evaluated on the ideal
    traces `signals` (model units, time `t_model`). Biases are not propagated.
    """
    # LIMITATION(components): biases, slew and swing are not in the model, and
    #   v of the output error unit is predicted 2-5x low on LagLine. Consequence:
    #   the per-signal agreement is within 2x for 118 of 132 signal-points with
    #   GBW tau_min >= 10; the worst signal agrees within 1.08-1.18. Issue #4 note.
    s_x, s_e = spec.hardware.signal_volt_per_unit, spec.hardware.error_volt_per_unit
    zero = np.zeros_like(t_model, dtype=float)

    def weights(layer, k: int, i: int, j: int, student: bool):
        name = f"w_l{layer.index}_i{i}_j{j}"
        if student and name in signals:
            return signals[name]
        return zero + float(layer.weights[i, j])

    def cumulative(rate: np.ndarray) -> np.ndarray:
        steps = 0.5 * (rate[1:] + rate[:-1]) * np.diff(t_model)
        return np.concatenate([[0.0], np.cumsum(steps)])

    def compute(known: dict) -> dict:
        get = lambda node: known.get(node, zero)  # noqa: E731
        out: dict[str, np.ndarray] = {}
        groups = [(network.teacher or [], "t", "teacher_", False)]
        groups.append((network.layers, "", "", True))
        for layers, prefix, sig, student in groups:
            for k, layer in enumerate(layers):
                eq = d.derive(layer.phi)
                dphi = sp.lambdify(d.u_prosp, eq.phi_prime, "numpy")
                for i in range(layer.size):
                    tag = _tag(layer.index, i)
                    up = signals[f"{sig}u_prosp_{tag}"]
                    out[f"{prefix}r_{tag}"] = dphi(up) * get(f"{prefix}uprosp_{tag}")
                    # synaptic sum: W dr_pre + dW r_pre (volts in s_x)
                    delta = zero.copy()
                    for j in range(layer.weights.shape[1]):
                        if layer.index == 1:
                            r_pre, dr_pre = signals[f"x_n{j}"], zero
                        else:
                            pre = _tag(layer.index - 1, j)
                            r_pre = signals[f"{sig}r_{pre}"]
                            dr_pre = out[f"{prefix}r_{pre}"]
                        delta = delta + weights(layer, k, i, j, student) * dr_pre
                        if student and f"w_l{layer.index}_i{i}_j{j}" in signals:
                            e_i = signals[f"e_{tag}"]
                            rate = network.eta * (
                                get(f"e_{tag}") / s_e * r_pre + e_i * dr_pre / s_x
                            )
                            delta = delta + cumulative(rate) * r_pre * s_x
                    out[f"{prefix}isynb_{tag}"] = delta
        # alpha of the student's error units
        last = len(network.layers) - 1
        for k, layer in enumerate(network.layers):
            eq = d.derive(layer.phi)
            for i in range(layer.size):
                tag = _tag(layer.index, i)
                up = signals[f"u_prosp_{tag}"]
                d_up = get(f"uprosp_{tag}") / s_x
                if k == last:
                    expr = eq.alpha_output.subs(d.beta, network.beta)
                    y = signals[f"y_n{i}"]
                    d_y = get(f"tr_{tag}") / s_x if network.teacher else zero
                    f_up = sp.lambdify((d.u_prosp, d.y), sp.diff(expr, d.u_prosp))
                    f_y = sp.lambdify((d.u_prosp, d.y), sp.diff(expr, d.y))
                    delta = f_up(up, y) * d_up + f_y(up, y) * d_y
                else:
                    nxt = network.layers[k + 1]
                    fb, d_fb = zero.copy(), zero.copy()
                    for m in range(nxt.size):
                        ntag = _tag(nxt.index, m)
                        w = weights(nxt, k + 1, m, i, True)
                        fb = fb + w * signals[f"e_{ntag}"]
                        d_fb = d_fb + w * get(f"e_{ntag}") / s_e
                    expr = eq.alpha_hidden
                    f_up = sp.lambdify((d.u_prosp, d.fb), sp.diff(expr, d.u_prosp))
                    f_fb = sp.lambdify((d.u_prosp, d.fb), sp.diff(expr, d.fb))
                    delta = f_up(up, fb) * d_up + f_fb(up, fb) * d_fb
                out[f"alpha_{tag}"] = s_e * delta
                out[f"alphan_{tag}"] = -s_e * delta
        return out

    return compute


def swing_problems(
    stages: list[Stage], signals: dict[str, np.ndarray], swing_volt: float
) -> list[str]:
    """Op-amp outputs whose ideal voltage leaves +-`swing_volt` (or comes within
    10 % of it), naming the stage and the peak."""
    problems = []
    for st in stages:
        if st.signal not in signals:
            continue
        peak = float(np.max(np.abs(signals[st.signal]))) * st.scale_volt
        if peak > 0.9 * swing_volt:
            what = "beyond" if peak > swing_volt else "within 10 % of"
            problems.append(
                f"{st.unit}: op-amp {st.name} output {st.signal} peaks at "
                f"{peak:.3g} V, {what} the swing +-{swing_volt:g} V; fix: lower "
                "hardware signal/error_volt_per_unit or raise opamp.swing_volt."
            )
    return problems


# --- the whole plan -------------------------------------------------------------


@dataclass
class ComponentPlan:
    """Everything ``vle-hw spec`` reports; plain data."""

    network: str
    series: str
    stages: list[Stage]
    transconductances: list[dict]
    requirements: list[Requirement]
    summary: dict
    formulas: dict[str, str]
    process: dict
    warnings: list[str]

    def rows(self) -> list[dict]:
        """One row per part (CSV/Markdown table)."""
        rows = []
        for st in self.stages:
            for p in st.parts:
                rows.append(
                    {
                        "unit": st.unit,
                        "stage": st.name,
                        "stage_kind": st.kind,
                        "element": p.name,
                        "kind": {"r": "resistor", "c": "capacitor"}[p.kind],
                        "role": p.role,
                        "ideal": p.ideal,
                        "value": p.value,
                        "unit_si": {"r": "ohm", "c": "farad"}[p.kind],
                        "rounding_rel": p.rounding_rel,
                        "stage_tau_error_rel": st.tau_error_rel,
                        "stage_gain_error_rel_max": max(
                            (abs(v) for v in st.gain_error_rel.values()), default=0.0
                        ),
                    }
                )
        for g in self.transconductances:
            rows.append(
                {
                    "unit": g["unit"],
                    "stage": "synapse",
                    "stage_kind": "transconductance",
                    "element": g["element"],
                    "kind": "transconductance",
                    "role": g["role"],
                    "ideal": g["value"],
                    "value": g["value"],
                    "unit_si": "siemens",
                    "rounding_rel": 0.0,
                    "stage_tau_error_rel": 0.0,
                    "stage_gain_error_rel_max": 0.0,
                }
            )
        return rows

    def to_dict(self) -> dict:
        return {
            "network": self.network,
            "series": self.series,
            "parts": self.rows(),
            "stages": [
                {
                    "stage": st.name,
                    "kind": st.kind,
                    "unit": st.unit,
                    "signal": st.signal,
                    "noise_gain_dc": st.noise_gain_dc,
                    "tau_sec": st.tau_sec,
                    "tau_realised_sec": st.tau_realised_sec,
                    "tau_error_rel": st.tau_error_rel,
                    "gains": st.gains,
                    "gain_error_rel": st.gain_error_rel,
                }
                for st in self.stages
            ],
            "requirements": [asdict(r) for r in self.requirements],
            "summary": self.summary,
            "formulas": self.formulas,
            "process": self.process,
            "warnings": self.warnings,
        }


FORMULAS = {
    "integrator_error": "eps(s) = -(1/A(s)) (1 + sum_k k_k / (1 + s tau))",
    "amplifier_error": "eps(s) = -NG / A(s), NG = 1 + sum|w_neg| (or sum w_pos)",
    "open_loop": "1/A(s) = 1/A0 + s / (2 pi GBW)",
    "a0_min": "A0 >= 2 NG_dc / E",
    "gbw_min": "GBW >= 2 |NG(j/tau_min)| / (2 pi tau_min E)",
    "area": "sum C / c_density + sum R / r_sheet * r_square_area + n_opamp * "
    "opamp_area",
    "power": "n_opamp * supply_volt * 2 * 2 pi GBW c_comp / (gm/Id)",
    "ktc_noise": "sqrt(k T / C) per capacitor (V rms), / node scale in model units",
}


def range_problems(stages: list[Stage], comp) -> list[str]:
    """Parts outside the ``components:`` r/c ranges, each naming the element,
    its role and value."""
    problems = []
    for st in stages:
        for p in st.parts:
            lo, hi, what = (
                (comp.r_min_ohm, comp.r_max_ohm, "ohm")
                if p.kind == "r"
                else (comp.c_min_farad, comp.c_max_farad, "F")
            )
            if not lo <= p.value <= hi:
                problems.append(
                    f"{st.unit}: {p.name} ({p.role}) = {p.value:.4g} {what} is "
                    f"outside components [{lo:g}, {hi:g}] {what}; fix: change "
                    "hardware.c_mem_farad, components.r_base_ohm or the hardware "
                    "scales, or widen the range."
                )
    return problems


def plan_components(spec: Spec, network: Network) -> ComponentPlan:
    """The component plan of `network` at the op-amp level.

    Warnings (also issued as :class:`ComponentWarning`) name each part outside
    ``components`` r/c ranges and each op-amp short of the requirements.

    Raises
    ------
    SpecError
        If a stage cannot be built (a non-positive integrator gain).
    """
    comp, proc, op = spec.components, spec.process, spec.opamp
    stages = network_stages(spec, network)
    problems = range_problems(stages, comp)
    taus = [st.tau_sec for st in stages if st.kind == "integrator"]
    tau_min = min(taus)
    reqs = requirements(stages, tau_min, comp.tracking_error_rel)
    a0 = 10 ** (op.a0_db / 20)
    a0_need = max(r.a0_min for r in reqs)
    gbw_need = max(r.gbw_min_hz for r in reqs)
    if a0 < a0_need:
        problems.append(
            f"opamp.a0_db = {op.a0_db:g} dB is below the {20 * math.log10(a0_need):.1f}"
            f" dB needed for tracking error {comp.tracking_error_rel:g}."
        )
    if op.gbw_hz < gbw_need:
        problems.append(
            f"opamp.gbw_hz = {op.gbw_hz:.3g} is below the {gbw_need:.3g} Hz needed "
            f"for tracking error {comp.tracking_error_rel:g} at tau_min "
            f"{tau_min:.3g} s."
        )
    # synapse transconductances (behavioural G elements at this level)
    hw = spec.hardware
    transconductances = []
    for layer in network.layers:
        for i in range(layer.size):
            for j in range(layer.weights.shape[1]):
                transconductances.append(
                    {
                        "unit": f"synapse l{layer.index} i{i} j{j}",
                        "element": f"gsyn_l{layer.index}_i{i}_j{j}",
                        "role": "initial weight x 1/r_sum"
                        + (" (plastic)" if layer.plastic and network.eta > 0 else ""),
                        "value": float(layer.weights[i, j]) / hw.r_sum_ohm,
                    }
                )
    # area, power, noise
    caps = [p for st in stages for p in st.parts if p.kind == "c"]
    ress = [p for st in stages for p in st.parts if p.kind == "r"]
    n_op = len(stages)
    c_area = sum(p.value for p in caps) / proc.c_density_farad_per_m2
    r_area = (
        sum(p.value for p in ress) / proc.r_sheet_ohm_per_sq * proc.r_square_area_m2
    )
    op_area = n_op * proc.opamp_area_m2
    i_q = 2 * 2 * math.pi * op.gbw_hz * proc.c_comp_farad / proc.gm_over_id_per_volt
    ktc = {
        p.name: math.sqrt(K_BOLTZMANN * proc.temperature_kelvin / p.value) for p in caps
    }
    summary = {
        "opamps": n_op,
        "resistors": len(ress),
        "capacitors": len(caps),
        "tau_min_sec": tau_min,
        "tracking_error_rel": comp.tracking_error_rel,
        "a0_min": a0_need,
        "a0_min_db": 20 * math.log10(a0_need),
        "gbw_min_hz": gbw_need,
        "a0_db": op.a0_db,
        "gbw_hz": op.gbw_hz,
        "area_capacitors_m2": c_area,
        "area_resistors_m2": r_area,
        "area_opamps_m2": op_area,
        "area_total_m2": c_area + r_area + op_area,
        "opamp_iq_amp": i_q,
        "power_watt": n_op * i_q * proc.supply_volt,
        "ktc_noise_volt_rms": ktc,
        "ktc_noise_worst_volt_rms": max(ktc.values()),
        "ktc_noise_worst_model_units": max(ktc.values())
        / min(hw.signal_volt_per_unit, hw.error_volt_per_unit),
        "tau_error_rel_max": max(abs(st.tau_error_rel) for st in stages),
        "gain_error_rel_max": max(
            abs(v) for st in stages for v in st.gain_error_rel.values()
        ),
    }
    for text in problems:
        warnings.warn(text, ComponentWarning, stacklevel=2)
    plan = ComponentPlan(
        network=network.name,
        series=comp.series,
        stages=stages,
        transconductances=transconductances,
        requirements=reqs,
        summary=summary,
        formulas=dict(FORMULAS),
        process=proc.model_dump(),
        warnings=problems,
    )
    data = plan.to_dict()
    named = {f"{row['unit']} {row['element']}": row for row in data.pop("parts")}
    where = _first_non_finite(named) or _first_non_finite(data)
    if where is not None:
        raise SpecError(
            f"the component plan's {where[0]} is {where[1]!r}, not a finite "
            "number; fix: keep tau_m, tau_r, gamma, the hardware scales, the "
            "opamp, process and components values within realistic ranges."
        )
    return plan


def _first_non_finite(data, path: str = "") -> tuple[str, float] | None:
    """(dotted path, value) of the first NaN or infinity in nested plain data."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (path, data)
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list | tuple)
        else ()
    )
    for key, value in items:
        found = _first_non_finite(value, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None
