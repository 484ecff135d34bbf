"""Exact gradients of the ODE reference's cost by the continuous adjoint, and how
well the local learning signals align with them (DESIGN.md section 2).

For a window [t0, t1] of the FREE network (gamma = 0, weights frozen, the state
at t0 held fixed) the cost is C = integral of c(r_N, y) dt with the spec's MSE
c = 1/2 |y - r_N|**2. :func:`window_gradient` integrates the forward network
with :func:`vle_hw.reference.simulate_reference`, then the adjoint equations of
:func:`vle_hw.derivation.derive_gradients` backwards from lambda(t1) = 0, with
the parameter-gradient integrals as extra quadrature states. Every equation
comes from the derivation; nothing here restates one.

Parameters are named ``W1``, ``b1``, ``tau_m1``, ``tau_r1``, ... (1-based layer
index); gradients are dC/dtheta, shaped like the parameter.

:func:`alignment` compares the window-integrated local updates of the spec's
nudged network (learning frozen) with -dC/dtheta; :func:`frequency_alignment`
does it for sine inputs against the predicted amplitude ratio
(1 + w**2 tau_m**2) / (1 + w**2 tau_r**2); :func:`train_windowed_adjoint` learns
by the exact gradient, window after window.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

from vle_hw import derivation as d
from vle_hw.errors import ReferenceSolveError, SpecError
from vle_hw.network import Layer, Network
from vle_hw.reference import NetworkModel, _bcast, _lambdify, simulate_reference
from vle_hw.signals import Signal, SineSum

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]  # (phase, fraction done in [0, 1])
KINDS: tuple[str, ...] = d.GRADIENT_PARAMETERS
_NAME = re.compile(r"^(W|b|tau_m|tau_r)([1-9][0-9]{0,2})$")
_GAUSS_NODES = 8  # Gauss-Legendre nodes per solver step: exact to degree 15
# LIMITATION(gradients): one frequency-alignment run integrates warm-up plus
#   window in Python (about 1 s per 25 sine periods on LagLine). Consequence:
#   omegas are refused when a run would span more than MAX_SINE_PERIODS periods
#   or more than MAX_SPAN_TAU times the largest tau_m, and lists are capped.
MAX_OMEGAS = 64
MAX_SINE_PERIODS = 2000
MAX_SPAN_TAU = 1000
# LIMITATION(gradients): the windowed adjoint runs at most MAX_ADJOINT_WINDOWS windows
#   (15 ms to 1 s each measured on LagLine / LagNet); more is refused up front.
MAX_ADJOINT_WINDOWS = 10_000


# --- parameters -------------------------------------------------------------------


def parameter_names(network: Network) -> list[str]:
    """Names of every parameter of `network`, layer by layer.

    Examples
    --------
    >>> from vle_hw.network import build_network
    >>> from vle_hw.spec import load_spec
    >>> parameter_names(build_network(load_spec()[0]))
    ['W1', 'tau_m1', 'tau_r1', 'W2', 'tau_m2', 'tau_r2']
    """
    names = []
    for layer in network.layers:
        names.append(f"W{layer.index}")
        if layer.biases is not None:
            names.append(f"b{layer.index}")
        names += [f"tau_m{layer.index}", f"tau_r{layer.index}"]
    return names


def check_parameter_names(network: Network, params) -> list[str]:
    """The selected names in network order; all of them for None.

    Raises
    ------
    SpecError
        For a name the network does not have, listing the valid ones.
    """
    valid = parameter_names(network)
    if params is None:
        return valid
    params = list(params)
    unknown = [p for p in params if p not in valid]
    if unknown or not params:
        shown = ", ".join(repr(p) for p in unknown) or "(none)"
        raise SpecError(
            f"--param: unknown parameter name(s) {shown}; this network has "
            f"{', '.join(valid)}; fix: pick from these (W, b, tau_m, tau_r + 1-based "
            "layer index; b only where the network has biases)."
        )
    return [name for name in valid if name in params]


def _split(name: str) -> tuple[str, int]:
    match = _NAME.fullmatch(name)
    if match is None:
        raise SpecError(f"malformed parameter name {name!r}")
    return match.group(1), int(match.group(2))


_FIELD = {"W": "weights", "b": "biases", "tau_m": "tau_m", "tau_r": "tau_r"}


def parameter_value(network: Network, name: str) -> np.ndarray:
    kind, index = _split(name)
    return np.array(getattr(network.layers[index - 1], _FIELD[kind]), dtype=float)


def with_parameter(network: Network, name: str, value: np.ndarray) -> Network:
    """A copy of `network` with parameter `name` set to `value`."""
    kind, index = _split(name)
    layers = list(network.layers)
    old = layers[index - 1]
    value = np.array(value, dtype=float).reshape(np.shape(getattr(old, _FIELD[kind])))
    layers[index - 1] = replace(old, **{_FIELD[kind]: value})
    return replace(network, layers=tuple(layers))


# LIMITATION(gradients): the exact gradient is that of the FREE network (gamma = 0,
#   weights frozen); the local signals it is compared with come from the nudged
#   network (spec's gamma). Consequence: for gamma beta not small the two runs
#   follow different trajectories and part of any misalignment is that. Issue #3.
def free_network(network: Network) -> Network:
    """The network whose cost is differentiated: gamma = 0, eta = 0."""
    layers = tuple(replace(layer, gamma=0.0) for layer in network.layers)
    return replace(network, layers=layers, eta=0.0)


def _check_target(network: Network, targets) -> None:
    if network.teacher is None and targets is None:
        raise SpecError(
            "target: the network has no teacher and no target signals, so the "
            "cost c = 1/2 |y - r_N|^2 has no y; fix: add a teacher section with "
            "target.kind: teacher, or give target.kind: csv."
        )


def check_beta(network: Network, what: str = "--alignment") -> None:
    """Refuse a comparison with the local updates when beta is 0.

    The local errors are beta times the adjoint errors, so with beta = 0 they
    vanish and the cosine and the norm ratio |local| / (beta |exact|) are 0/0.
    """
    if not network.beta > 0:
        raise SpecError(
            f"{what}: network.beta = {network.beta:g}, so the local errors (beta "
            "times the adjoint errors) are all zero and there is nothing to "
            "compare; fix: set network.beta > 0 (e.g. 0.01) or drop the option."
        )


def check_omegas(
    omegas: list[float],
    network: Network,
    periods: int = 40,
    warmup_tau: float = 30.0,
) -> None:
    """Refuse frequencies whose run (warm-up + `periods` periods) cannot finish.

    Raises
    ------
    SpecError
        For more than MAX_OMEGAS frequencies, a non-positive or non-finite one,
        one whose run spans more than MAX_SINE_PERIODS periods (too fast) or
        more than MAX_SPAN_TAU times the largest tau_m (too slow), a network
        with more than one input, or beta = 0.
    """
    if not 1 <= len(omegas) <= MAX_OMEGAS:
        raise SpecError(
            f"--omegas: {len(omegas)} frequencies given; fix: give 1 to "
            f"{MAX_OMEGAS} (each one is a separate run)."
        )
    if network.inputs != 1:
        raise SpecError(
            f"--omegas: frequency alignment drives one input channel, the network "
            f"has {network.inputs}; fix: use a spec with network.inputs: 1."
        )
    check_beta(network, "--omegas")
    tau_max = max(float(np.max(layer.tau_m)) for layer in network.layers)
    warmup = warmup_tau * tau_max
    # span(w) = warmup + periods 2 pi / w; fast: span w / (2 pi) <= P_max,
    # slow: span <= MAX_SPAN_TAU tau_max
    hi = 2 * math.pi * (MAX_SINE_PERIODS - periods) / warmup
    room = MAX_SPAN_TAU * tau_max - warmup
    lo = periods * 2 * math.pi / room if room > 0 else math.inf
    for omega in omegas:
        if not (math.isfinite(omega) and omega > 0):
            raise SpecError(
                f"--omegas: each frequency must be a number > 0, got {omega!r}; "
                "fix: give positive frequencies, e.g. --omegas 0.5,1,2."
            )
        if not lo <= omega <= hi:
            raise SpecError(
                f"--omegas: {omega:g} rad per time unit is outside [{lo:.3g}, "
                f"{hi:.3g}] for this network (tau_m up to {tau_max:g}): the run "
                f"of a warm-up of {warmup:g} and {periods} periods would span more "
                f"than {MAX_SINE_PERIODS} periods or {MAX_SPAN_TAU} x tau_max; "
                "fix: choose frequencies within that range."
            )


def _check_window(t0: float, t1: float, what: str = "--window") -> None:
    if not (math.isfinite(t0) and math.isfinite(t1)) or t0 < 0 or t1 <= t0:
        raise SpecError(
            f"{what}: need 0 <= T0 < T1, got T0 = {t0!r}, T1 = {t1!r}; fix: give "
            "a start and a later end in model time units."
        )


# --- lambdified gradient equations ---------------------------------------------


@dataclass(frozen=True)
class _GradFunctions:
    cost: object
    a_output: object
    a_hidden: object
    dlambda_dt: object
    eps: object
    grad: dict
    local: dict


def _grad_functions(phi_name: str) -> _GradFunctions:
    g = d.derive_gradients(phi_name)
    adj = [d.lam, d.a_adj, d.tau_m, d.tau_r]
    integrand = [d.eps_sym, d.a_adj, d.r_pre, d.du_dt_sym]
    local_args = [d.e, d.r_pre, d.du_dt_sym]
    r_sym = sp.Symbol("r", real=True)
    return _GradFunctions(
        cost=_lambdify(g.cost, [r_sym, d.y], "cost"),
        a_output=_lambdify(g.a_output, [d.u_prosp, d.y], "a_output"),
        a_hidden=_lambdify(g.a_hidden, [d.u_prosp, d.fb], "a_hidden"),
        dlambda_dt=_lambdify(g.dlambda_dt, adj, "dlambda_dt"),
        eps=_lambdify(g.eps, adj, "eps"),
        grad={k: _lambdify(v, integrand, f"grad_{k}") for k, v in g.grad.items()},
        local={k: _lambdify(v, local_args, f"local_{k}") for k, v in g.local.items()},
    )


@dataclass
class _Terms:
    """Forward quantities of one layer at a batch of times (B, size)."""

    r_pre: np.ndarray
    u: np.ndarray
    drive: np.ndarray
    u_prosp: np.ndarray
    du_dt: np.ndarray
    r: np.ndarray
    e: np.ndarray | None = None


class _Evaluator:
    """Evaluates forward terms, errors and integrands on a reference solution."""

    def __init__(self, network: Network, inputs, targets):
        self.net = network
        self.model = NetworkModel(network, targets)
        self.inputs = inputs
        self.g = {
            name: _grad_functions(name) for name in {lay.phi for lay in network.layers}
        }
        sizes = [layer.size for layer in network.layers]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.n_neurons = int(self.offsets[-1])
        # gradient layout: per layer W, b (if any), tau_m, tau_r
        self.layout: dict[str, tuple[slice, tuple[int, ...]]] = {}
        pos = self.n_neurons
        for name in parameter_names(network):
            shape = parameter_value(network, name).shape
            size = int(np.prod(shape))
            self.layout[name] = (slice(pos, pos + size), shape)
            pos += size
        self.n_adjoint = pos

    def x(self, t: np.ndarray) -> np.ndarray:
        return np.stack([np.atleast_1d(sig(t)) for sig in self.inputs], axis=-1)

    def forward(self, t: np.ndarray, states: np.ndarray):
        """Per-layer terms and the target y at times t (states: (B, n_state))."""
        x = self.x(t)
        y = self.model.target(t, states, x)
        if all(layer.gamma == 0 for layer in self.net.layers):
            return self._free_terms(states, x), y
        return self._nudged_terms(states, x, y), y

    def _free_terms(self, states, x) -> list[_Terms]:
        terms = []
        r_prev = x
        for layer in self.net.layers:
            f = self.model.funcs[layer.phi]
            u = self.model.get(states, "u", layer.index)
            drive = r_prev @ layer.weights.T
            if layer.biases is not None:
                drive = drive + layer.biases
            args = (u, drive, 0.0, layer.tau_m, layer.tau_r, 0.0)
            up = _bcast(f.u_prosp(*args), u.shape)
            du = _bcast(f.du_dt(*args), u.shape)
            r = _bcast(f.phi(up), u.shape)
            terms.append(_Terms(r_prev, u, drive, up, du, r))
            r_prev = r
        return terms

    def _nudged_terms(self, states, x, y) -> list[_Terms]:
        z, drives, rates = self.model.solve_loop(states, x, y)
        n = self.model.n_loop
        offs = self.model.loop_offsets
        terms = []
        r_prev = x
        for k, layer in enumerate(self.net.layers):
            f = self.model.funcs[layer.phi]
            u = self.model.get(states, "u", layer.index)
            e = z[:, n + offs[k] : n + offs[k + 1]]
            args = (u, drives[k], e, layer.tau_m, layer.tau_r, layer.gamma)
            up = z[:, offs[k] : offs[k + 1]]
            du = _bcast(f.du_dt(*args), u.shape)
            terms.append(_Terms(r_prev, u, drives[k], up, du, rates[k], e))
            r_prev = rates[k]
        return terms

    def cost_rate(self, terms: list[_Terms], y: np.ndarray) -> np.ndarray:
        out = self.net.layers[-1]
        c = self.g[out.phi].cost(terms[-1].r, y)
        return np.sum(_bcast(c, y.shape), axis=-1)

    def errors(self, terms, y, lam: list[np.ndarray] | None):
        """a and eps per layer, top-down; lam None gives instantaneous backprop."""
        layers = self.net.layers
        a: list = [None] * len(layers)
        eps: list = [None] * len(layers)
        for k in range(len(layers) - 1, -1, -1):
            layer = layers[k]
            g = self.g[layer.phi]
            shape = terms[k].u.shape
            if k == len(layers) - 1:
                a[k] = _bcast(g.a_output(terms[k].u_prosp, y), shape)
            else:
                feedback = eps[k + 1] @ layers[k + 1].weights
                a[k] = _bcast(g.a_hidden(terms[k].u_prosp, feedback), shape)
            if lam is None:
                eps[k] = a[k]
            else:
                eps[k] = _bcast(g.eps(lam[k], a[k], layer.tau_m, layer.tau_r), shape)
        return a, eps

    def integrands(self, terms, a, eps) -> dict[str, np.ndarray]:
        """-dC/dtheta integrands (B, *shape) of every parameter."""
        out = {}
        for k, layer in enumerate(self.net.layers):
            g = self.g[layer.phi].grad
            t_ = terms[k]
            args = (eps[k], a[k], t_.r_pre, t_.du_dt)
            lay = layer.index
            out[f"W{lay}"] = _bcast(
                g["W"](eps[k][:, :, None], a[k][:, :, None], t_.r_pre[:, None, :], 0.0),
                (eps[k].shape[0], *layer.weights.shape),
            )
            if layer.biases is not None:
                out[f"b{lay}"] = _bcast(g["b"](*args), eps[k].shape)
            out[f"tau_m{lay}"] = _bcast(g["tau_m"](*args), eps[k].shape)
            out[f"tau_r{lay}"] = _bcast(g["tau_r"](*args), eps[k].shape)
        return out

    def local_integrands(self, terms) -> dict[str, np.ndarray]:
        """Local learning signals e r^T, e, -e du/dt of the nudged network."""
        out = {}
        for layer, t_ in zip(self.net.layers, terms, strict=True):
            g = self.g[layer.phi].local
            lay = layer.index
            out[f"W{lay}"] = _bcast(
                g["W"](t_.e[:, :, None], t_.r_pre[:, None, :], 0.0),
                (t_.e.shape[0], *layer.weights.shape),
            )
            if layer.biases is not None:
                out[f"b{lay}"] = _bcast(g["b"](t_.e, t_.r_pre, t_.du_dt), t_.e.shape)
            out[f"tau_m{lay}"] = _bcast(
                g["tau_m"](t_.e, t_.r_pre, t_.du_dt), t_.e.shape
            )
        return out


def _gauss_nodes(step_times: np.ndarray, t0: float, t1: float):
    """Gauss-Legendre nodes and weights on every solver step inside [t0, t1]."""
    edges = step_times[(step_times > t0) & (step_times < t1)]
    edges = np.concatenate([[t0], edges, [t1]])
    xi, wi = np.polynomial.legendre.leggauss(_GAUSS_NODES)
    left, width = edges[:-1, None], np.diff(edges)[:, None]
    nodes = left + 0.5 * width * (xi + 1.0)
    weights = 0.5 * width * wi
    return nodes.ravel(), weights.ravel()


def _integrate(values_at, sol, t0, t1, chunk: int = 4000) -> dict[str, np.ndarray]:
    """Integral over [t0, t1] of each array values_at(t, states) returns."""
    nodes, weights = _gauss_nodes(sol.t, t0, t1)
    total: dict[str, np.ndarray] = {}
    for start in range(0, len(nodes), chunk):
        tc = nodes[start : start + chunk]
        wc = weights[start : start + chunk]
        for name, value in values_at(tc, sol.sol(tc).T).items():
            part = np.tensordot(wc, value, axes=(0, 0))
            total[name] = total.get(name, 0.0) + part
    return total


# --- the exact gradient -----------------------------------------------------------


@dataclass
class GradientResult:
    """The exact gradient of one window's cost (plain data).

    ``gradient[name]`` is dC/dtheta, shaped like the parameter; the learning
    direction is its negative. ``samples`` holds, at the requested times,
    per layer l: ``eps_l<l>``, ``a_l<l>`` (adjoint), ``backprop_l<l>``
    (instantaneous backprop error of the same forward state).
    """

    t0: float
    t1: float
    cost: float
    gradient: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    state0: np.ndarray
    state1: np.ndarray
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict (lists for arrays)."""
        return {
            "t0": self.t0,
            "t1": self.t1,
            "cost": self.cost,
            "gradient": {k: v.tolist() for k, v in self.gradient.items()},
            "values": {k: v.tolist() for k, v in self.values.items()},
            "stats": self.stats,
        }


def initial_state(
    network: Network,
    inputs: list[Signal],
    targets: list[Signal] | None,
    t0: float,
    how: str = "zero",
    run_from: float | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> np.ndarray:
    """The free network's state at `t0`.

    With `run_from` None: the spec's initial-state rule (``how``) applied at
    t0. Otherwise the free network is run from `run_from` (started by that
    rule) to t0 with its weights frozen, so a window can start after the
    transient.
    """
    free = free_network(network)
    model = NetworkModel(free, targets)
    start = t0 if run_from is None else run_from
    x0 = np.array([sig(start) for sig in inputs], dtype=float)
    y0 = None
    if targets is not None:
        y0 = np.array([[sig(start) for sig in targets]], dtype=float)
    state = model.initial_state(how, x0, y0)
    if run_from is None or run_from == t0:
        return state
    sol = simulate_reference(
        free, inputs, t0, how, targets, rtol, atol, t_start=run_from, state0=state
    )
    return sol.solution.sol(t0)


def window_gradient(
    network: Network,
    inputs: list[Signal],
    targets: list[Signal] | None,
    t0: float,
    t1: float,
    state0: np.ndarray | None = None,
    params: list[str] | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    initial_state_rule: str = "zero",
    sample_times: np.ndarray | None = None,
    on_progress: Progress | None = None,
) -> GradientResult:
    """Exact dC/dtheta of C = integral_{t0}^{t1} 1/2 |y - r_N|^2 dt by the adjoint.

    Parameters
    ----------
    network : Network
        Its weights, biases and time constants are the point of evaluation;
        gamma and eta are set to 0 (the free network).
    inputs, targets : list of Signal
        Input channels; target channels (None: the teacher's output).
    t0, t1 : float
        The window, model time units.
    state0 : ndarray, optional
        Free-network state at t0 (see :func:`initial_state`); it is held fixed.
        Default: the initial-state rule `initial_state_rule` applied at t0.
    params : list of str, optional
        Parameter names to return (default: all, see :func:`parameter_names`).
    rtol, atol : float
        DOP853 tolerances of the forward and the adjoint integration.
    sample_times : ndarray, optional
        Times in [t0, t1] at which to return eps, a and the backprop errors.
    on_progress : callable, optional
        Called with (phase, fraction) during the forward and adjoint passes.

    Returns
    -------
    GradientResult

    Raises
    ------
    SpecError
        For a bad window, an unknown parameter name or no target.
    ReferenceSolveError
        If an integration fails.

    Examples
    --------
    >>> from vle_hw.network import build_network
    >>> from vle_hw.signals import build_inputs
    >>> from vle_hw.spec import load_spec
    >>> spec = load_spec()[0]
    >>> res = window_gradient(build_network(spec), build_inputs(spec), None, 0, 2)
    >>> sorted(res.gradient), res.gradient["W1"].shape
    (['W1', 'W2', 'tau_m1', 'tau_m2', 'tau_r1', 'tau_r2'], (1, 1))
    """
    _check_window(t0, t1)
    _check_target(network, targets)
    names = check_parameter_names(network, params)
    free = free_network(network)
    started = time.perf_counter()

    # --- forward: the free network, weights frozen -------------------------------
    def forward_progress(t):
        if on_progress is not None:
            on_progress("forward", (t - t0) / (t1 - t0))

    if state0 is None:
        state0 = initial_state(free, inputs, targets, t0, initial_state_rule)
    fwd = simulate_reference(
        free,
        inputs,
        t1,
        initial_state_rule,
        targets,
        rtol,
        atol,
        t_start=t0,
        state0=state0,
        on_progress=forward_progress,
    )
    ev = _Evaluator(free, inputs, targets)
    sol = fwd.solution

    def cost_at(t, states):
        terms, y = ev.forward(t, states)
        return {"cost": ev.cost_rate(terms, y)}

    cost = float(_integrate(cost_at, sol, t0, t1)["cost"])
    forward_sec = time.perf_counter() - started

    # --- adjoint: lambda(t1) = 0, backwards to t0 --------------------------------
    calls = {"n": 0}

    def rhs(t, flat):
        calls["n"] += 1
        if on_progress is not None and calls["n"] % 500 == 0:
            on_progress("adjoint", (t1 - t) / (t1 - t0))
        states = sol.sol(t)[None, :]
        terms, y = ev.forward(np.atleast_1d(t), states)
        lam = [flat[None, ev.offsets[k] : ev.offsets[k + 1]] for k in range(len(terms))]
        a, eps = ev.errors(terms, y, lam)
        out = np.empty_like(flat)
        for k, layer in enumerate(free.layers):
            g = ev.g[layer.phi]
            out[ev.offsets[k] : ev.offsets[k + 1]] = _bcast(
                g.dlambda_dt(lam[k][0], a[k][0], layer.tau_m, layer.tau_r),
                (layer.size,),
            )
        for name, value in ev.integrands(terms, a, eps).items():
            out[ev.layout[name][0]] = value.ravel()
        return out

    # LIMITATION(gradients): lambda(t1) = 0 makes this the gradient of the
    #   window's own cost: what the parameters do to the cost after t1 is not
    #   counted. Consequence: a window of a few tau_m sees only part of the
    #   credit of slow paths (train_windowed_adjoint is truncated BPTT). Issue #3.
    started_adj = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        back = solve_ivp(
            rhs,
            (t1, t0),
            np.zeros(ev.n_adjoint),
            method="DOP853",
            rtol=rtol,
            atol=atol,
            dense_output=sample_times is not None,
        )
    if not back.success:
        raise ReferenceSolveError(f"the adjoint integration failed: {back.message}")
    if not np.all(np.isfinite(back.y[:, -1])):
        raise ReferenceSolveError(
            "the adjoint overflowed (a value beyond the range of a double): the "
            "spec drives the network far outside its working range; fix: scale "
            "down network.weights, the input, network.beta or the tau_r / tau_m "
            "ratios"
        )
    # d(quadrature)/dt = integrand from t1 down to t0: the state at t0 is
    # -(integral of the integrand) = -(-dC/dtheta) = dC/dtheta.
    final = back.y[:, -1]
    gradient = {
        name: final[ev.layout[name][0]].reshape(ev.layout[name][1]).copy()
        for name in names
    }
    adjoint_sec = time.perf_counter() - started_adj

    samples: dict[str, np.ndarray] = {}
    if sample_times is not None:
        ts = np.asarray(sample_times, dtype=float)
        terms, y = ev.forward(ts, sol.sol(ts).T)
        lam_all = back.sol(ts).T
        lam = [lam_all[:, ev.offsets[k] : ev.offsets[k + 1]] for k in range(len(terms))]
        a, eps = ev.errors(terms, y, lam)
        _, backprop = ev.errors(terms, y, None)
        samples["t"] = ts
        for k, layer in enumerate(free.layers):
            samples[f"eps_l{layer.index}"] = eps[k]
            samples[f"a_l{layer.index}"] = a[k]
            samples[f"backprop_l{layer.index}"] = backprop[k]
            samples[f"r_l{layer.index}"] = terms[k].r
    stats = {
        "forward_steps": int(len(sol.t) - 1),
        "adjoint_steps": int(len(back.t) - 1),
        "adjoint_rhs_evaluations": int(back.nfev),
        "forward_sec": forward_sec,
        "adjoint_sec": adjoint_sec,
        "rtol": rtol,
        "atol": atol,
    }
    log.info(
        "gradient window=[%g, %g] cost=%.6g forward_sec=%.2f adjoint_sec=%.2f",
        t0,
        t1,
        cost,
        forward_sec,
        adjoint_sec,
    )
    return GradientResult(
        t0=float(t0),
        t1=float(t1),
        cost=cost,
        gradient=gradient,
        values={name: parameter_value(network, name) for name in names},
        state0=np.asarray(state0, dtype=float).copy(),
        state1=sol.sol(t1).copy(),
        samples=samples,
        stats=stats,
    )


def window_cost(
    network: Network,
    inputs: list[Signal],
    targets: list[Signal] | None,
    t0: float,
    t1: float,
    state0: np.ndarray,
    rtol: float = 1e-12,
    atol: float = 1e-14,
) -> float:
    """C = integral_{t0}^{t1} 1/2 |y - r_N|^2 dt of the free network from state0."""
    free = free_network(network)
    fwd = simulate_reference(
        free, inputs, t1, "zero", targets, rtol, atol, t_start=t0, state0=state0
    )
    ev = _Evaluator(free, inputs, targets)

    def cost_at(t, states):
        terms, y = ev.forward(t, states)
        return {"cost": ev.cost_rate(terms, y)}

    return float(_integrate(cost_at, fwd.solution, t0, t1)["cost"])


# order -> (steps in h, weights, denominator): central difference stencils
_STENCILS = {2: ((1, -1), (1, -1), 2), 4: ((2, 1, -1, -2), (-1, 8, -8, 1), 12)}


def finite_difference_gradient(
    network: Network,
    inputs: list[Signal],
    targets: list[Signal] | None,
    t0: float,
    t1: float,
    state0: np.ndarray | None = None,
    params: list[str] | None = None,
    rel_step: float = 1e-4,
    order: int = 2,
    rtol: float = 1e-12,
    atol: float = 1e-14,
    initial_state_rule: str = "zero",
    on_progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """dC/dtheta by central differences of :func:`window_cost`.

    Each entry theta is stepped by h = rel_step * max(|theta|, 1). Order 2:
    (C(+h) - C(-h)) / (2 h), truncation O(h**2) (about 1e-8 relative at the
    default step); order 4: (-C(+2h) + 8 C(+h) - 8 C(-h) + C(-2h)) / (12 h).
    The integrator's error over h adds about rtol / rel_step relative to C.
    The state at t0 is the same for every run.

    Returns
    -------
    dict
        name -> dC/dtheta array shaped like the parameter.
    """
    _check_window(t0, t1)
    _check_target(network, targets)
    if order not in _STENCILS:
        raise ValueError(f"order must be one of {sorted(_STENCILS)}, got {order!r}")
    names = check_parameter_names(network, params)
    if state0 is None:
        state0 = initial_state(network, inputs, targets, t0, initial_state_rule)
    total = sum(parameter_value(network, n).size for n in names)
    done = 0
    out = {}
    for name in names:
        base = parameter_value(network, name)
        grad = np.zeros(base.size)
        for i in range(base.size):
            h = rel_step * max(abs(base.flat[i]), 1.0)
            costs = []
            for step in _STENCILS[order][0]:
                trial = base.copy()
                trial.flat[i] += step * h
                costs.append(
                    window_cost(
                        with_parameter(network, name, trial),
                        inputs,
                        targets,
                        t0,
                        t1,
                        state0,
                        rtol,
                        atol,
                    )
                )
            weights, denominator = _STENCILS[order][1:]
            grad[i] = float(np.dot(weights, costs)) / (denominator * h)
            done += 1
            if on_progress is not None:
                on_progress("finite differences", done / total)
        out[name] = grad.reshape(base.shape)
    return out


def relative_errors(
    exact: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> dict[str, float]:
    """Largest |exact - reference| / |reference| per parameter (entry-wise)."""
    return {
        name: float(
            np.max(
                np.abs(exact[name] - reference[name])
                / np.maximum(np.abs(reference[name]), 1e-300)
            )
        )
        for name in reference
    }


# --- alignment --------------------------------------------------------------------


def local_updates(
    network: Network,
    inputs: list[Signal],
    targets: list[Signal] | None,
    t0: float,
    t1: float,
    state0: np.ndarray,
    rtol: float = 1e-10,
    atol: float = 1e-12,
) -> dict[str, np.ndarray]:
    """Window integrals of the local signals of the nudged network, learning off.

    ``W<l>``: integral of e_l r_{l-1}^T; ``b<l>``: of e_l; ``tau_m<l>``: of
    -e_l du_l/dt. They scale with beta (e is about beta eps).
    """
    frozen = replace(network, eta=0.0)
    fwd = simulate_reference(
        frozen, inputs, t1, "zero", targets, rtol, atol, t_start=t0, state0=state0
    )
    ev = _Evaluator(frozen, inputs, targets)

    def local_at(t, states):
        terms, y = ev.forward(t, states)
        if terms[0].e is None:  # every gamma is 0: the loop still gives e
            terms = ev._nudged_terms(states, ev.x(t), y)
        return ev.local_integrands(terms)

    return _integrate(local_at, fwd.solution, t0, t1)


def _compare(local: np.ndarray, exact: np.ndarray, beta: float) -> dict:
    a, b = np.ravel(local), np.ravel(exact)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    cosine = float(a @ b / (na * nb)) if na > 0 and nb > 0 else float("nan")
    ratio = na / (beta * nb) if beta > 0 and nb > 0 else float("nan")
    return {"cosine": cosine, "norm_ratio": ratio, "local_norm": na, "exact_norm": nb}


def alignment(
    network: Network,
    inputs: list[Signal],
    targets: list[Signal] | None,
    t0: float,
    t1: float,
    state0: np.ndarray | None = None,
    gradient: GradientResult | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    initial_state_rule: str = "zero",
    on_progress: Progress | None = None,
) -> dict:
    """How well the local updates align with the exact -dC/dtheta on a window.

    For each parameter (``W<l>``, ``b<l>``, ``tau_m<l>``) and overall (all
    weights and biases together; all tau_m together): the cosine between the
    window-integrated local update of the nudged network (spec's beta and
    gamma, learning frozen) and -dC/dtheta of the free network, and the norm
    ratio |local| / (beta |exact|). The local errors are about beta times the
    adjoint errors, so the ratio is 1 where the local rule has the adjoint's
    amplitude (DC, or tau_r = tau_m).

    Returns
    -------
    dict
        ``{"beta", "t0", "t1", "params": {name: {cosine, norm_ratio, ...}},
        "overall": {"weights": {...}, "tau_m": {...}}}``
    """
    _check_window(t0, t1)
    _check_target(network, targets)
    check_beta(network)
    if state0 is None:
        state0 = initial_state(network, inputs, targets, t0, initial_state_rule)
    if gradient is None:
        gradient = window_gradient(
            network,
            inputs,
            targets,
            t0,
            t1,
            state0,
            rtol=rtol,
            atol=atol,
            on_progress=on_progress,
        )
    if on_progress is not None:
        on_progress("local updates", 0.0)
    local = local_updates(network, inputs, targets, t0, t1, state0, rtol, atol)
    beta = network.beta
    rows = {}
    for name, value in local.items():
        if name in gradient.gradient:
            rows[name] = _compare(value, -gradient.gradient[name], beta)
    groups = {
        "weights": [n for n in rows if n[0] in "Wb"],
        "tau_m": [n for n in rows if n.startswith("tau_m")],
    }
    overall = {}
    for group, members in groups.items():
        if members:
            overall[group] = _compare(
                np.concatenate([np.ravel(local[n]) for n in members]),
                np.concatenate([-np.ravel(gradient.gradient[n]) for n in members]),
                beta,
            )
    return {
        "beta": beta,
        "t0": float(t0),
        "t1": float(t1),
        "params": rows,
        "overall": overall,
    }


def predicted_ratio(omega: float, tau_m: float, tau_r: float) -> float:
    """(1 + w**2 tau_m**2) / (1 + w**2 tau_r**2): local over adjoint amplitude.

    Examples
    --------
    >>> round(predicted_ratio(1.0, 1.0, 0.1), 4)
    1.9802
    """
    return (1 + omega**2 * tau_m**2) / (1 + omega**2 * tau_r**2)


def single_neuron(tau_m: float = 1.0, tau_r: float = 0.1) -> Network:
    """A linear neuron (weight 1) learning toward a teacher of weight 2, gamma 0."""

    def layer(w):
        return Layer(
            index=1,
            size=1,
            phi="linear",
            tau_m=np.array([tau_m]),
            tau_r=np.array([tau_r]),
            gamma=0.0,
            plastic=True,
            weights=np.array([[w]]),
            biases=None,
        )

    return Network("single_neuron", 1, (layer(1.0),), 1.0, 0.0, (layer(2.0),))


def sine_input(omega: float, amplitude: float = 1.0) -> Signal:
    source = SineSum((amplitude,), (omega,), (0.0,), 0.0)
    return Signal("sines", source, feature=1.0 / omega)


def frequency_alignment(
    omegas: list[float],
    network: Network | None = None,
    periods: int = 40,
    warmup_tau: float = 30.0,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    on_progress: Progress | None = None,
) -> list[dict]:
    """Local / exact weight-update ratio for a sine input at each omega.

    The input is sin(omega t); the window starts after a warm-up of
    `warmup_tau` times the largest tau_m (the free network run from zero)
    and lasts `periods` periods. Per layer l the measured ratio is
    |integral of e_l r_{l-1}^T| / (beta |-dC/dW_l|); for linear units with one
    (tau_m, tau_r) per layer the prediction is the product over layers k >= l
    of (1 + w**2 tau_m_k**2) / (1 + w**2 tau_r_k**2), since the error of layer
    l passes through every filter above it. With nonlinear units the same
    product is given as the linearised prediction (``prediction_exact``
    False: phi' mixes frequencies); with per-neuron time constants that
    differ within a layer it is None.

    Parameters
    ----------
    omegas : list of float, rad per model time unit
    network : Network, optional
        Default: :func:`single_neuron` (tau_m 1, tau_r 0.1). One input channel.

    Returns
    -------
    list of dict
        One row per (omega, layer): ``omega``, ``layer``, ``measured``,
        ``predicted``, ``prediction_exact``, ``cosine``.
    """
    # LIMITATION(gradients): the predicted ratio is exact for linear units with
    #   one (tau_m, tau_r) per layer; for nonlinear units it is the linearised
    #   value, and with time constants that differ within a layer none is given
    #   (each path through the network has its own product). Issue #3.
    network = network or single_neuron()
    check_omegas(omegas, network, periods, warmup_tau)
    tau_max = max(float(np.max(layer.tau_m)) for layer in network.layers)
    rows = []
    for n, omega in enumerate(omegas):
        inputs = [sine_input(omega)]
        t0 = warmup_tau * tau_max
        t1 = t0 + periods * 2 * math.pi / omega
        state0 = initial_state(network, inputs, None, t0, "zero", 0.0, rtol, atol)
        result = alignment(network, inputs, None, t0, t1, state0, rtol=rtol, atol=atol)
        for layer in network.layers:
            above = network.layers[layer.index - 1 :]
            predicted = None
            uniform = all(
                np.ptp(lay.tau_m) == 0 and np.ptp(lay.tau_r) == 0 for lay in above
            )
            if uniform:
                predicted = float(
                    np.prod(
                        [
                            predicted_ratio(omega, lay.tau_m[0], lay.tau_r[0])
                            for lay in above
                        ]
                    )
                )
            row = result["params"][f"W{layer.index}"]
            rows.append(
                {
                    "omega": float(omega),
                    "layer": layer.index,
                    "measured": row["norm_ratio"],
                    "predicted": predicted,
                    "prediction_exact": all(lay.phi == "linear" for lay in above),
                    "cosine": row["cosine"],
                    "t0": t0,
                    "t1": t1,
                }
            )
        if on_progress is not None:
            on_progress("frequencies", (n + 1) / len(omegas))
    return rows


# --- learning by the exact gradient ---------------------------------------------


def _plastic_names(network: Network) -> list[str]:
    names = []
    for layer in network.layers:
        if layer.plastic:
            names.append(f"W{layer.index}")
            if layer.biases is not None:
                names.append(f"b{layer.index}")
    return names


def teacher_distance(network: Network) -> float | None:
    """sqrt(sum over plastic layers of |W - W_teacher|_F**2 (+ biases)), or None."""
    if network.teacher is None:
        return None
    total = 0.0
    for layer, teacher in zip(network.layers, network.teacher, strict=True):
        if not layer.plastic:
            continue
        total += float(np.sum((layer.weights - teacher.weights) ** 2))
        if layer.biases is not None and teacher.biases is not None:
            total += float(np.sum((layer.biases - teacher.biases) ** 2))
    return math.sqrt(total)


def _count_text(count: float) -> str:
    """A window count as an integer while exact, else in e-notation."""
    return f"{count:d}" if isinstance(count, int) and count < 10**15 else f"{count:.3g}"


def check_adjoint_windows(span: float, window: float, name: str) -> None:
    """Refuse an adjoint window that is not > 0 or makes too many windows.

    Raises
    ------
    SpecError
        Naming `name`, the value, the window count and the fix.
    """
    if not (math.isfinite(window) and window > 0):
        raise SpecError(
            f"{name} must be a number > 0, got {window!r}; fix: give the window "
            "length in model time units, e.g. 10."
        )
    ratio = span / window  # inf for a subnormal window
    count = math.ceil(ratio) if math.isfinite(ratio) else math.inf
    if count > MAX_ADJOINT_WINDOWS:
        raise SpecError(
            f"{name} = {window:g} makes {_count_text(count)} adjoint windows over "
            f"{span:g} model units, more than {MAX_ADJOINT_WINDOWS}; fix: give a "
            "window of at "
            f"least {span / MAX_ADJOINT_WINDOWS:.3g} or a shorter run."
        )


def train_windowed_adjoint(
    network: Network,
    inputs: list[Signal],
    targets: list[Signal] | None,
    t_stop: float,
    window: float,
    eta: float | None = None,
    t_start: float = 0.0,
    initial_state_rule: str = "zero",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    on_progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Learn the plastic weights (and biases) by the exact gradient, window by window.

    Each window [t, t + window] runs the free network with the weights frozen
    from the previous window's end state, computes -dC/dtheta of that window
    and steps every plastic weight and bias by

        delta theta = eta * beta * (-dC/dtheta) = eta * beta * window * mean gradient.

    This is the local rule's step over the same window if e were exactly
    beta eps: the local rule integrates dW/dt = eta e r^T, and -dC/dW is the
    integral of eps r^T. The factor beta keeps both at the same learning rate
    for any beta (for LagNet beta = 1).

    Returns
    -------
    dict
        ``t`` (window ends), ``loss`` (mean 1/2 |y - r_N|**2 over the window
        just finished), ``weights`` ({"W1": [matrix after each window's
        update], ...}, plastic layers), ``teacher_distance`` (see
        :func:`teacher_distance`, after each update), and ``initial`` (the
        weights and teacher distance at t_start), ``window``, ``eta``,
        ``step_rule``, ``wall_sec``, and ``complete`` (False when
        `should_stop` ended the run between two windows).
    """
    _check_window(t_start, t_stop, "t_start, t_stop")
    check_adjoint_windows(t_stop - t_start, window, "window")
    eta = network.eta if eta is None else eta
    # LIMITATION(gradients): only weights and biases learn here; tau_m and tau_r
    #   stay fixed although their exact gradients are computed. Issue #3.
    names = _plastic_names(network)
    if not names:
        raise SpecError(
            "train_windowed_adjoint: no layer is plastic; fix: set plastic: true "
            "on at least one layer."
        )
    started = time.perf_counter()
    state = initial_state(network, inputs, targets, t_start, initial_state_rule)
    curves: dict = {
        "t": [],
        "loss": [],
        "weights": {n: [] for n in names if n.startswith("W")},
        "biases": {n: [] for n in names if n.startswith("b")},
        "teacher_distance": [],
        "initial": {
            "t": float(t_start),
            "weights": {
                n: parameter_value(network, n).tolist()
                for n in names
                if n.startswith("W")
            },
            "teacher_distance": teacher_distance(network),
        },
        "window": float(window),
        "eta": float(eta),
        "step_rule": "delta theta = eta * beta * (-dC/dtheta) per window",
    }
    t = t_start
    curves["complete"] = True
    while t < t_stop - 1e-12 * max(1.0, t_stop):
        if should_stop is not None and should_stop():
            curves["complete"] = False
            break
        t_end = min(t + window, t_stop)
        result = window_gradient(
            network, inputs, targets, t, t_end, state, names, rtol, atol
        )
        for name in names:
            new = (
                parameter_value(network, name)
                - eta * network.beta * (result.gradient[name])
            )
            network = with_parameter(network, name, new)
        curves["t"].append(float(t_end))
        curves["loss"].append(result.cost / (t_end - t))
        for name in names:
            key = "weights" if name.startswith("W") else "biases"
            curves[key][name].append(parameter_value(network, name).tolist())
        curves["teacher_distance"].append(teacher_distance(network))
        state = result.state1
        t = t_end
        if on_progress is not None:
            on_progress("windows", (t - t_start) / (t_stop - t_start))
    curves["wall_sec"] = time.perf_counter() - started
    return curves
