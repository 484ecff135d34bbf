"""From derived equations to a behavioural circuit: the component plan.

Each model quantity becomes a node voltage with an explicit scale (DESIGN.md
section 3): signals (u, u_prosp, r, x, y) in ``signal_volt_per_unit``, errors
(v, alpha, e, fb) in ``error_volt_per_unit``, weights and biases in
``weight_volt_per_unit``; model time in ``time_sec_per_unit``.

- A first-order equation tau dx/dt = -x + sum_k g_k y_k (read off the derived
  du/dt and dv/dt by sympy, which checks that it is linear) is one node: a
  capacitor C to ground, a leak resistor tau/C and one linear VCCS of gain
  g_k C / tau per input.
- The prospective readouts u_prosp (F2) and e (B3), phi, alpha (B1) are
  B-sources whose expressions are the derived ones, printed by
  :mod:`vle_hw.spice_expr`: weighted sums of a state and its drive, never a
  ``ddt()``.
- Synaptic sums are formed by KCL: one element per synapse injects its current
  into a summing node with a resistor to ground; fixed weights are linear G
  elements, plastic ones two-input B-source current sources reading the
  weight capacitor. Forward and backward paths read the same capacitor.
- A plastic weight is a capacitor whose B-source current is C s_w / s_t times
  the derived dW/dt; its initial value is an ``.ic``.

The plan is plain data; :mod:`vle_hw.netlist` turns it into text.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from vle_hw import derivation as d
from vle_hw.errors import SpecError, VleLimitationWarning
from vle_hw.network import Layer, Network
from vle_hw.signals import T_MODEL, Analytic, Pwl, Signal, SineSum
from vle_hw.spec import Spec
from vle_hw.spice_expr import (
    SpiceTemplate,
    current_time,
    node_voltage,
    number,
    to_spice,
)

PWL_WARN_POINTS = 5000
MAX_STEPS = 5e6  # ngspice keeps every point of every saved vector in memory


@dataclass(frozen=True)
class Scales:
    """Model unit -> SI conversions of one circuit."""

    time_sec: float
    signal_volt: float
    error_volt: float
    weight_volt: float


@dataclass(frozen=True)
class Element:
    """One deck line: ``name nodes... value``; the name's first letter is the type."""

    name: str
    nodes: tuple[str, ...]
    value: str


@dataclass(frozen=True)
class Probe:
    """Model signal = ngspice vector `vector` times `scale`."""

    signal: str
    vector: str
    scale: float


@dataclass
class CircuitPlan:
    title: str
    header: dict[str, str]
    sections: list[tuple[str, list[Element]]] = field(default_factory=list)
    initial: dict[str, float] = field(default_factory=dict)  # node -> volts
    probes: list[Probe] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    tran_step_sec: float = 0.0
    tran_stop_sec: float = 0.0
    max_step_sec: float = 0.0
    time_sec_per_unit: float = 1.0
    raw_name: str = "vle_hw"
    # Cell definitions (``.subckt ... .ends``, ``.model``) written by vle_hw's own
    # cell generators, emitted before the elements; never user text.
    library: list[str] = field(default_factory=list)

    def element_count(self) -> int:
        return sum(len(elements) for _, elements in self.sections)


@dataclass(frozen=True)
class FirstOrder:
    """tau dx/dt = -x + sum_k gains[k] * input_k, read off a derived expression."""

    tau: float
    gains: dict[sp.Symbol, float]


def first_order(rate: sp.Expr, state: sp.Symbol, inputs: list[sp.Symbol]) -> FirstOrder:
    """Read tau and the input gains off dx/dt = rate (numeric parameters).

    Raises
    ------
    ValueError
        If `rate` is not linear in the state and the inputs.

    Examples
    --------
    >>> fo = first_order((d.alpha - d.v) / 0.1, d.v, [d.alpha])
    >>> round(fo.tau, 12), fo.gains
    (0.1, {alpha: 1.0})
    """
    variables = [state, *inputs]
    coeffs = [sp.diff(rate, var) for var in variables]
    remainder = sp.expand(
        rate - sum(c * var for c, var in zip(coeffs, variables, strict=True))
    )
    if any(c.free_symbols for c in coeffs) or remainder != 0:
        raise ValueError(
            f"{rate} is not linear in {variables}; cannot map it to a node"
        )
    tau = -1.0 / float(coeffs[0])
    if not tau > 0:
        raise ValueError(f"{rate}: the node would not be stable (tau = {tau})")
    return FirstOrder(
        tau, {var: float(c) * tau for var, c in zip(inputs, coeffs[1:], strict=True)}
    )


def _node_cell(
    prefix: str,
    node: str,
    fo: FirstOrder,
    drives: dict[sp.Symbol, tuple[str, float]],
    scales: Scales,
    c_farad: float,
    node_scale: float,
) -> list[Element]:
    """C, leak R and one VCCS per input: a first-order node."""
    tau_sec = fo.tau * scales.time_sec
    conductance = c_farad / tau_sec
    elements = [
        Element(f"c{prefix}", (node, "0"), number(c_farad)),
        Element(f"r{prefix}", (node, "0"), number(1.0 / conductance)),
    ]
    for sym, gain in fo.gains.items():
        if gain == 0.0:
            continue
        source_node, source_scale = drives[sym]
        g = conductance * gain * node_scale / source_scale
        elements.append(
            Element(
                f"g{prefix}_{sym.name.lower()}",
                ("0", node, source_node, "0"),
                number(g),
            )
        )
    return elements


def _bv(name: str, node: str, expr: sp.Expr) -> Element:
    return Element(name, (node, "0"), f"v = {to_spice(expr)}")


def _bi_into(name: str, node: str, expr: sp.Expr) -> Element:
    return Element(name, ("0", node), f"i = {to_spice(expr)}")


def _tag(layer: int, neuron: int) -> str:
    return f"l{layer}_n{neuron}"


def max_step(spec: Spec, network: Network, inputs: list[Signal]) -> tuple[float, str]:
    """Simulator maximum step (model units) and how it was chosen.

    min(shortest tau / steps_per_tau, fastest input feature / steps_per_feature),
    unless the spec sets ``simulation.max_step``.
    """
    sim = spec.simulation
    if sim.max_step is not None:
        return sim.max_step, "set by simulation.max_step"
    taus = [np.min(layer.tau_m) for layer in network.layers]
    taus += [np.min(layer.tau_r) for layer in network.layers]
    for layer in network.teacher or ():
        taus += [np.min(layer.tau_m), np.min(layer.tau_r)]
    tau_min = float(min(taus))
    feature = float(min(sig.feature for sig in inputs))
    by_tau = tau_min / sim.steps_per_tau
    by_feature = feature / sim.steps_per_feature
    step = min(by_tau, by_feature)
    how = (
        f"min(tau_min {tau_min:g} / steps_per_tau {sim.steps_per_tau:g}, "
        f"input feature {feature:g} / steps_per_feature {sim.steps_per_feature:g})"
    )
    return step, how


def check_tau_m_fixed(eta_tau: float) -> None:
    """Refuse tau_m learning for a circuit: the decks hold tau_m fixed."""
    if eta_tau > 0:
        # LIMITATION(circuit): the behavioural deck has fixed membrane time
        #   constants. Consequence: tau_m learning runs in the ODE reference only.
        raise SpecError(
            f"network.eta_tau = {eta_tau:g}: tau_m learning is not in the "
            "circuit (the behavioural deck has fixed tau_m); fix: set "
            "network.eta_tau: 0 for netlist, verify, explore and train --spice, or "
            "run train without --spice."
        )


def check_step_budget(
    spec: Spec,
    network: Network,
    inputs: list[Signal],
    span: float | None = None,
    shorten: str = "simulation.t_stop",
) -> tuple[float, str]:
    """The maximum step and its rule, once `span` (default t_stop) fits the budget.

    ngspice and the ODE reference both resolve the shortest time constant and
    the fastest input feature, so the same count bounds both: ``train`` and
    ``gradients`` apply it to the ODE alone, ``explore`` to every run up front.

    Raises
    ------
    SpecError
        If span / max step exceeds :data:`MAX_STEPS`, naming the rule and the fix.
    """
    # LIMITATION(circuit): the count is span / max step, an upper bound on the
    #   step size only. Consequence: ngspice can take far more (smaller) steps
    #   than estimated (taus of 1e9 at 1e3 s per unit crawl); such a run ends at
    #   simulation.timeout_sec with exit 3. Issue #6 note.
    span = spec.simulation.t_stop if span is None else span
    step, how = max_step(spec, network, inputs)
    steps = span / step
    if not steps <= MAX_STEPS:
        raise SpecError(
            f"simulation: a run of {span:g} model units at a maximum step of "
            f"{step:.3g} ({how}) needs {steps:.3g} time steps, above "
            f"{MAX_STEPS:.0e}; fix: shorten {shorten} or raise the shortest "
            "time constant, the input's feature size or simulation.max_step."
        )
    return step, how


def _source(name: str, node: str, signal: Signal, scales: Scales) -> Element:
    src = signal.source
    if isinstance(src, SineSum):
        time_units = current_time() / scales.time_sec
        expr = sp.Float(src.offset)
        for a, w, p in zip(src.amplitudes, src.omegas, src.phases, strict=True):
            expr = expr + sp.Float(a) * sp.sin(sp.Float(w) * time_units + sp.Float(p))
        return _bv(f"b{name}", node, scales.signal_volt * expr)
    if isinstance(src, Analytic):
        expr = src.expr.subs(T_MODEL, current_time() / scales.time_sec)
        return _bv(f"b{name}", node, scales.signal_volt * expr)
    assert isinstance(src, Pwl)
    if len(src.times) > PWL_WARN_POINTS:
        # LIMITATION(runner): ngspice 39 looks PWL points up by a linear search, so
        #   a long table costs samples x time steps. Consequence: tables of tens of
        #   thousands of samples make the run many times slower. Issue #2 note.
        warnings.warn(
            f"{name}: a table of {len(src.times)} samples; ngspice 39 searches PWL "
            "tables linearly, so the run slows with samples x steps "
            "[LIMITATION(runner), #2]. Fewer samples (a larger input.dt) run faster.",
            VleLimitationWarning,
            stacklevel=2,
        )
    pairs = " ".join(
        f"{number(t * scales.time_sec)} {number(v * scales.signal_volt)}"
        for t, v in zip(src.times, src.values, strict=True)
    )
    repeat = " r=0" if src.period is not None else ""
    return Element(f"v{name}", (node, "0"), f"pwl({pairs}){repeat}")


def plan_behavioural(
    spec: Spec,
    network: Network,
    inputs: list[Signal],
    targets: list[Signal] | None,
    header: dict[str, str],
) -> CircuitPlan:
    """The behavioural circuit of `network`, driven by `inputs`.

    Parameters
    ----------
    spec : Spec
        For the hardware scales, tolerances and simulated span.
    network : Network
    inputs : list of Signal
    targets : list of Signal or None
        CSV target channels; None when the teacher in the same deck makes y.
    header : dict
        Lines for the deck header (spec hash, tool version).

    Returns
    -------
    CircuitPlan
    """
    hw = spec.hardware
    scales = Scales(
        hw.time_sec_per_unit,
        hw.signal_volt_per_unit,
        hw.error_volt_per_unit,
        hw.weight_volt_per_unit,
    )
    s_x, s_e, s_w = scales.signal_volt, scales.error_volt, scales.weight_volt
    plastic = network.eta > 0
    step, how = check_step_budget(spec, network, inputs)
    plan = CircuitPlan(
        title=f"vle_hw behavioural deck {network.name}",
        header={
            **header,
            "level": "behavioural",
            "time_sec_per_unit": number(scales.time_sec),
            "signal_volt_per_unit": number(s_x),
            "error_volt_per_unit": number(s_e),
            "weight_volt_per_unit": number(s_w),
            "max_step": f"{number(step)} model units: {how}",
            "initial_state": spec.initial_state,
        },
        tran_step_sec=step * scales.time_sec,
        tran_stop_sec=spec.simulation.t_stop * scales.time_sec,
        max_step_sec=step * scales.time_sec,
        time_sec_per_unit=scales.time_sec,
        raw_name=network.name,
        options={
            "reltol": number(spec.simulation.reltol),
            "vntol": "1e-09",
            "abstol": "1e-15",
            "method": "trap",
        },
    )
    equations = {
        name: d.derive(name)
        for name in {lay.phi for lay in network.layers}
        | {lay.phi for lay in network.teacher or ()}
    }
    g_sum = 1.0 / hw.r_sum_ohm

    # --- sources ----------------------------------------------------------------
    elements = []
    for j, signal in enumerate(inputs):
        elements.append(_source(f"x_n{j}", f"x_n{j}", signal, scales))
        if isinstance(signal.source, Analytic):
            plan.header[f"input_n{j}_source"] = (
                f"{signal.name} closed form, max deviation from the exact signal "
                f"{signal.source.max_error:.3g} model units"
            )
        elif isinstance(signal.source, Pwl):
            plan.header[f"input_n{j}_source"] = (
                f"{signal.name} table of {len(signal.source.times)} points"
            )
        plan.probes.append(Probe(f"x_n{j}", f"x_n{j}", 1.0 / s_x))
    out_layer = network.layers[-1]
    for i in range(out_layer.size):
        if targets is not None:
            elements.append(_source(f"y_n{i}", f"y_n{i}", targets[i], scales))
        else:
            teacher_out = f"tr_{_tag(out_layer.index, i)}"
            elements.append(
                Element(f"ey_n{i}", (f"y_n{i}", "0", teacher_out, "0"), "1.0")
            )
        plan.probes.append(Probe(f"y_n{i}", f"y_n{i}", 1.0 / s_x))
    plan.sections.append(("input and target", elements))

    # --- teacher: forward only, fixed weights --------------------------------------
    for layer in network.teacher or ():
        plan.sections.append(
            (
                f"teacher layer {layer.index}",
                _forward_layer(
                    layer,
                    equations[layer.phi],
                    scales,
                    hw.c_mem_farad,
                    g_sum,
                    prefix="t",
                    pre_nodes=_pre_nodes(network, layer.index, "t"),
                    plastic=False,
                    with_errors=False,
                    plan=plan,
                ),
            )
        )

    # --- student: forward neurons, error units, synapses ---------------------------
    for k, layer in enumerate(network.layers):
        eq = equations[layer.phi]
        layer_plastic = plastic and layer.plastic
        elements = _forward_layer(
            layer,
            eq,
            scales,
            hw.c_mem_farad,
            g_sum,
            prefix="",
            pre_nodes=_pre_nodes(network, layer.index, ""),
            plastic=layer_plastic,
            with_errors=True,
            plan=plan,
        )
        next_layer = network.layers[k + 1] if k + 1 < len(network.layers) else None
        elements += _error_units(
            layer,
            next_layer,
            eq,
            network,
            scales,
            hw.c_mem_farad,
            g_sum,
            plastic and next_layer is not None and next_layer.plastic,
            plan,
        )
        if layer_plastic:
            elements += _plasticity(
                layer,
                eq,
                network,
                scales,
                hw.c_weight_farad,
                _pre_nodes(network, layer.index, ""),
                plan,
            )
        plan.sections.append((f"student layer {layer.index}", elements))

    # --- initial state: weights always; membranes and error units when zero ------
    if spec.initial_state == "zero":
        for layer in network.layers:
            for i in range(layer.size):
                plan.initial[f"u_{_tag(layer.index, i)}"] = 0.0
                plan.initial[f"v_{_tag(layer.index, i)}"] = 0.0
        for layer in network.teacher or ():
            for i in range(layer.size):
                plan.initial[f"tu_{_tag(layer.index, i)}"] = 0.0
    return plan


def _pre_nodes(network: Network, index: int, prefix: str) -> list[str]:
    if index == 1:
        return [f"x_n{j}" for j in range(network.inputs)]
    size = network.layers[index - 2].size
    return [f"{prefix}r_{_tag(index - 1, j)}" for j in range(size)]


def _forward_layer(
    layer: Layer,
    eq: d.LocalEquations,
    scales: Scales,
    c_mem: float,
    g_sum: float,
    prefix: str,
    pre_nodes: list[str],
    plastic: bool,
    with_errors: bool,
    plan: CircuitPlan,
) -> list[Element]:
    s_x, s_e, s_w = scales.signal_volt, scales.error_volt, scales.weight_volt
    who = "teacher_" if prefix else ""
    # I = g_sum s_x * (w / s_w) * (r_pre / s_x), one template for every synapse
    synapse = SpiceTemplate(lambda w, r: (g_sum / s_w) * w * r, 2)
    # neurons with the same (tau_m, tau_r, gamma) share their derived cell: the
    # sympy work is done once per distinct parameter set, not once per neuron
    cells: dict[tuple[float, ...], tuple[FirstOrder, SpiceTemplate, SpiceTemplate]]
    cells = {}
    out = []
    for i in range(layer.size):
        tag = _tag(layer.index, i)
        params = {
            d.tau_m: float(layer.tau_m[i]),
            d.tau_r: float(layer.tau_r[i]),
            d.gamma: layer.gamma if with_errors else 0.0,
        }
        isyn, u_node = f"{prefix}isyn_{tag}", f"{prefix}u_{tag}"
        up_node, r_node = f"{prefix}uprosp_{tag}", f"{prefix}r_{tag}"
        e_node = f"e_{tag}"
        # synaptic drive I_syn = W r_pre + b, summed by KCL on a resistor
        out.append(Element(f"r{prefix}isyn_{tag}", (isyn, "0"), number(1.0 / g_sum)))
        for j, pre in enumerate(pre_nodes):
            name = f"{prefix}syn_l{layer.index}_i{i}_j{j}"
            if plastic:
                w_node = f"w_l{layer.index}_i{i}_j{j}"
                out.append(
                    Element(f"b{name}", ("0", isyn), f"i = {synapse.fill(w_node, pre)}")
                )
            else:
                gain = g_sum * float(layer.weights[i, j])
                if gain != 0.0:
                    out.append(Element(f"g{name}", ("0", isyn, pre, "0"), number(gain)))
        if layer.biases is not None:
            if plastic:
                out.append(
                    Element(
                        f"g{prefix}bias_{tag}",
                        ("0", isyn, f"b_{tag}", "0"),
                        number(g_sum * s_x / s_w),
                    )
                )
            elif layer.biases[i] != 0.0:
                out.append(
                    Element(
                        f"i{prefix}bias_{tag}",
                        ("0", isyn),
                        f"dc {number(g_sum * s_x * float(layer.biases[i]))}",
                    )
                )
        key = tuple(params.values())
        if key not in cells:
            cells[key] = _neuron_cell(eq, params, with_errors, s_x, s_e)
        fo, up_text, r_text = cells[key]
        # membrane (F1): a first-order node read off du/dt
        out += _node_cell(
            f"{prefix}mem_{tag}",
            u_node,
            fo,
            {d.I_syn: (isyn, s_x), d.e: (e_node, s_e)},
            scales,
            c_mem,
            s_x,
        )
        # prospective readout (F2) and rate (F3)
        out.append(
            Element(
                f"b{prefix}uprosp_{tag}",
                (up_node, "0"),
                f"v = {up_text.fill(u_node, isyn, e_node)}",
            )
        )
        out.append(
            Element(f"b{prefix}r_{tag}", (r_node, "0"), f"v = {r_text.fill(up_node)}")
        )
        for name, node in (("u", u_node), ("u_prosp", up_node), ("r", r_node)):
            plan.probes.append(Probe(f"{who}{name}_{tag}", node, 1.0 / s_x))
        if with_errors and plastic:
            for j in range(len(pre_nodes)):
                w_node = f"w_l{layer.index}_i{i}_j{j}"
                plan.initial[w_node] = float(layer.weights[i, j]) * s_w
        if with_errors and plastic and layer.biases is not None:
            plan.initial[f"b_{tag}"] = float(layer.biases[i]) * s_w
    return out


def _neuron_cell(
    eq: d.LocalEquations,
    params: dict[sp.Symbol, float],
    with_errors: bool,
    s_x: float,
    s_e: float,
) -> tuple[FirstOrder, SpiceTemplate, SpiceTemplate]:
    """The membrane node and the B-source texts of one neuron's parameter set.

    Slots: u_prosp reads (u, I_syn, e); r reads u_prosp.
    """
    rate = eq.du_dt.subs(params)
    if not with_errors:
        rate = rate.subs(d.e, 0)
    fo = first_order(rate, d.u, [d.I_syn, d.e])
    u_prosp = eq.u_prosp.subs(params)
    up_text = SpiceTemplate(
        lambda u, isyn, e: (
            s_x
            * u_prosp.subs(
                {
                    d.u: u / s_x,
                    d.I_syn: isyn / s_x,
                    d.e: (e / s_e) if with_errors else 0,
                }
            )
        ),
        3,
    )
    r_text = SpiceTemplate(lambda up: s_x * eq.phi.subs(d.u_prosp, up / s_x), 1)
    return fo, up_text, r_text


def _error_cell(
    eq: d.LocalEquations,
    params: dict[sp.Symbol, float],
    output: bool,
    s_x: float,
    s_e: float,
) -> tuple[FirstOrder, SpiceTemplate, SpiceTemplate]:
    """The error node and B-source texts of one error unit's parameter set.

    Slots: alpha reads (u_prosp, y) at the output and (u_prosp, fb) in a hidden
    layer; e reads (v, alpha).
    """
    # the output reads its target y (signal scale), a hidden unit its feedback fb
    if output:
        alpha, other, other_scale = eq.alpha_output.subs(params), d.y, s_x
    else:
        alpha, other, other_scale = eq.alpha_hidden.subs(params), d.fb, s_e
    alpha_text = SpiceTemplate(
        lambda up, z: s_e * alpha.subs({d.u_prosp: up / s_x, other: z / other_scale}),
        2,
    )
    fo = first_order(eq.dv_dt.subs(params), d.v, [d.alpha])
    e_expr = eq.e.subs(params)
    e_text = SpiceTemplate(
        lambda v, a: s_e * e_expr.subs({d.v: v / s_e, d.alpha: a / s_e}), 2
    )
    return fo, alpha_text, e_text


def _error_units(
    layer: Layer,
    next_layer: Layer | None,
    eq: d.LocalEquations,
    network: Network,
    scales: Scales,
    c_mem: float,
    g_sum: float,
    next_plastic: bool,
    plan: CircuitPlan,
) -> list[Element]:
    s_x, s_e, s_w = scales.signal_volt, scales.error_volt, scales.weight_volt
    # fb current g_sum s_e * (w / s_w) * (e_next / s_e), one template per layer
    backward = SpiceTemplate(lambda w, e: (g_sum / s_w) * w * e, 2)
    cells: dict[tuple[float, ...], tuple[FirstOrder, SpiceTemplate, SpiceTemplate]]
    cells = {}
    out = []
    for i in range(layer.size):
        tag = _tag(layer.index, i)
        params = {
            d.tau_m: float(layer.tau_m[i]),
            d.tau_r: float(layer.tau_r[i]),
            d.beta: network.beta,
        }
        key = tuple(params.values())
        if key not in cells:
            cells[key] = _error_cell(eq, params, next_layer is None, s_x, s_e)
        fo, alpha_text, e_text = cells[key]
        up_node = f"uprosp_{tag}"
        alpha_node, v_node, e_node = f"alpha_{tag}", f"v_{tag}", f"e_{tag}"
        if next_layer is None:
            alpha = alpha_text.fill(up_node, f"y_n{i}")
        else:
            # backward sum fb = W_next^T e_next, by KCL on a resistor
            fb_node = f"fb_{tag}"
            out.append(Element(f"rfb_{tag}", (fb_node, "0"), number(1.0 / g_sum)))
            for k in range(next_layer.size):
                e_next = f"e_{_tag(next_layer.index, k)}"
                name = f"back_l{next_layer.index}_i{k}_j{i}"
                if next_plastic:
                    w_node = f"w_l{next_layer.index}_i{k}_j{i}"
                    out.append(
                        Element(
                            f"b{name}",
                            ("0", fb_node),
                            f"i = {backward.fill(w_node, e_next)}",
                        )
                    )
                else:
                    gain = g_sum * float(next_layer.weights[k, i])
                    if gain != 0.0:
                        out.append(
                            Element(
                                f"g{name}", ("0", fb_node, e_next, "0"), number(gain)
                            )
                        )
            alpha = alpha_text.fill(up_node, fb_node)
        out.append(Element(f"balpha_{tag}", (alpha_node, "0"), f"v = {alpha}"))
        # error unit (B2): first-order node read off dv/dt; readout e (B3)
        out += _node_cell(
            f"err_{tag}", v_node, fo, {d.alpha: (alpha_node, s_e)}, scales, c_mem, s_e
        )
        e_value = f"v = {e_text.fill(v_node, alpha_node)}"
        out.append(Element(f"be_{tag}", (e_node, "0"), e_value))
        plan.probes.append(Probe(f"v_{tag}", v_node, 1.0 / s_e))
        plan.probes.append(Probe(f"e_{tag}", e_node, 1.0 / s_e))
    return out


def _plasticity(
    layer: Layer,
    eq: d.LocalEquations,
    network: Network,
    scales: Scales,
    c_weight: float,
    pre_nodes: list[str],
    plan: CircuitPlan,
) -> list[Element]:
    """Weight capacitors integrating C s_w / s_t * dW/dt (and db/dt)."""
    s_x, s_e, s_w = scales.signal_volt, scales.error_volt, scales.weight_volt
    to_current = c_weight * s_w / scales.time_sec
    # the derived dW/dt, printed once with slots for the error and rate nodes
    weight_rate = SpiceTemplate(
        lambda e, r: (
            to_current
            * eq.dW_dt.subs({d.eta: network.eta, d.e: e / s_e, d.r_pre: r / s_x})
        ),
        2,
    )
    out = []
    for i in range(layer.size):
        e_node = f"e_{_tag(layer.index, i)}"
        e = node_voltage(e_node) / s_e
        for j, pre in enumerate(pre_nodes):
            w_node = f"w_l{layer.index}_i{i}_j{j}"
            out.append(
                Element(f"cw_l{layer.index}_i{i}_j{j}", (w_node, "0"), number(c_weight))
            )
            out.append(
                Element(
                    f"bw_l{layer.index}_i{i}_j{j}",
                    ("0", w_node),
                    f"i = {weight_rate.fill(e_node, pre)}",
                )
            )
            plan.probes.append(Probe(w_node, w_node, 1.0 / s_w))
        if layer.biases is not None:
            b_node = f"b_{_tag(layer.index, i)}"
            rate = eq.db_dt.subs({d.eta: network.eta, d.e: e})
            out.append(
                Element(f"cb_{_tag(layer.index, i)}", (b_node, "0"), number(c_weight))
            )
            out.append(
                _bi_into(f"bb_{_tag(layer.index, i)}", b_node, to_current * rate)
            )
            plan.probes.append(Probe(b_node, b_node, 1.0 / s_w))
    return out
