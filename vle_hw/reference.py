"""The ideal ODE reference: the derived local equations, lambdified and integrated.

Every right-hand side comes from :func:`vle_hw.derivation.derive`; nothing here
restates an equation. The state holds, per student layer, the membranes ``u``
and error units ``v``, the plastic weights and biases, and the teacher's
membranes. The prospective potentials ``u_prosp`` and errors ``e`` are not
states: with gamma != 0 they form an instantaneous algebraic loop
(u_prosp depends on e, e on phi'(u_prosp) and on the output rate). The
reference solves that loop by Newton's method with the analytic Jacobian at
every evaluation, to 1e-13; ngspice solves the same loop, written the same
way, by its own Newton iteration. The integrator is scipy's DOP853 (8th order)
with tight tolerances and dense output, so the reference can be evaluated at
the circuit's own time points.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp
from scipy.optimize import root

from vle_hw import derivation as d
from vle_hw.errors import ReferenceSolveError
from vle_hw.network import Layer, Network
from vle_hw.signals import Signal
from vle_hw.trace import Trace

log = logging.getLogger(__name__)

NEWTON_TOL = 1e-13
NEWTON_MAX_ITER = 50
# LIMITATION(reference): a learned tau_m is clamped at TAU_M_FLOOR_REL x its initial
#   value: below it the tau_m rule is switched off for that neuron (and the
#   equations read the floor). Consequence: a run that drives tau_m toward 0 stalls
#   at the floor instead of going stiff or negative. Issue #3.
TAU_M_FLOOR_REL = 1e-2


class ReferenceStopped(Exception):
    """The caller asked the integration to stop (e.g. the circuit run failed)."""


def _lambdify(expr: sp.Expr, args: list[sp.Symbol], what: str):
    stray = expr.free_symbols - set(args)
    if stray:
        raise ReferenceSolveError(
            f"derived expression {what} has undeclared symbols "
            f"{sorted(map(str, stray))}; the derivation and the reference disagree."
        )
    return sp.lambdify(args, expr, modules="numpy", cse=True)


@dataclass(frozen=True)
class LayerFunctions:
    """Lambdified local equations of one transfer function phi."""

    u_prosp: object
    du_dt: object
    du_prosp_d_drive: object
    du_prosp_de: object
    phi: object
    phi_prime: object
    alpha_hidden: object
    dalpha_hidden_du_prosp: object
    dalpha_hidden_dfb: object
    alpha_output: object
    dalpha_output_du_prosp: object
    dv_dt: object
    e: object
    de_dalpha: object
    dW_dt: object
    db_dt: object
    dtau_m_dt: object


def layer_functions(eq: d.LocalEquations) -> LayerFunctions:
    """Lambdify the equations of `eq` (and the partials Newton needs)."""
    fwd = [d.u, d.I_syn, d.e, d.tau_m, d.tau_r, d.gamma]
    return LayerFunctions(
        u_prosp=_lambdify(eq.u_prosp, fwd, "u_prosp"),
        du_dt=_lambdify(eq.du_dt, fwd, "du_dt"),
        du_prosp_d_drive=_lambdify(sp.diff(eq.u_prosp, d.I_syn), fwd, "du_prosp/dI"),
        du_prosp_de=_lambdify(sp.diff(eq.u_prosp, d.e), fwd, "du_prosp/de"),
        phi=_lambdify(eq.phi, [d.u_prosp], "phi"),
        phi_prime=_lambdify(eq.phi_prime, [d.u_prosp], "phi'"),
        alpha_hidden=_lambdify(eq.alpha_hidden, [d.u_prosp, d.fb], "alpha_hidden"),
        dalpha_hidden_du_prosp=_lambdify(
            sp.diff(eq.alpha_hidden, d.u_prosp), [d.u_prosp, d.fb], "dalpha/du_prosp"
        ),
        dalpha_hidden_dfb=_lambdify(
            sp.diff(eq.alpha_hidden, d.fb), [d.u_prosp, d.fb], "dalpha/dfb"
        ),
        alpha_output=_lambdify(
            eq.alpha_output, [d.u_prosp, d.y, d.beta], "alpha_output"
        ),
        dalpha_output_du_prosp=_lambdify(
            sp.diff(eq.alpha_output, d.u_prosp),
            [d.u_prosp, d.y, d.beta],
            "dalpha_output/du_prosp",
        ),
        dv_dt=_lambdify(eq.dv_dt, [d.v, d.alpha, d.tau_m, d.tau_r], "dv_dt"),
        e=_lambdify(eq.e, [d.v, d.alpha, d.tau_m, d.tau_r], "e"),
        de_dalpha=_lambdify(
            sp.diff(eq.e, d.alpha), [d.v, d.alpha, d.tau_m, d.tau_r], "de/dalpha"
        ),
        dW_dt=_lambdify(eq.dW_dt, [d.e, d.r_pre, d.eta], "dW_dt"),
        db_dt=_lambdify(eq.db_dt, [d.e, d.eta], "db_dt"),
        dtau_m_dt=_lambdify(eq.dtau_m_dt, [d.e, d.u_dot, d.eta_tau], "dtau_m_dt"),
    )


@functools.cache
def _functions_of(phi_name: str) -> LayerFunctions:
    """Lambdified equations of `phi_name`, built once per process (pure functions)."""
    return layer_functions(d.derive(phi_name))


def _bcast(value, shape) -> np.ndarray:
    if type(value) is np.ndarray and value.shape == shape:
        return value
    return np.broadcast_to(np.asarray(value, dtype=float), shape)


class NetworkModel:
    """Vectorised evaluation of a network's equations with a batch axis.

    Arrays carry a leading batch axis B: B = 1 inside the integrator, B = the
    number of output time points when a solution is turned into a trace.
    """

    def __init__(self, network: Network, targets: list[Signal] | None = None):
        self.net = network
        self.targets = targets
        names = sorted({layer.phi for layer in network.layers})
        if network.teacher is not None:
            names = sorted(set(names) | {layer.phi for layer in network.teacher})
        self.funcs = {name: _functions_of(name) for name in names}
        self.plastic = network.eta > 0
        self.learn_tau = network.eta_tau > 0
        self._layout()
        self._z_guess: np.ndarray | None = None

    # --- state layout ---------------------------------------------------------
    def _layout(self) -> None:
        slots: list[tuple[str, int, tuple[int, ...]]] = []
        for layer in self.net.layers:
            slots.append(("u", layer.index, (layer.size,)))
            slots.append(("v", layer.index, (layer.size,)))
        for layer in self.net.layers:
            if self.plastic and layer.plastic:
                slots.append(("W", layer.index, layer.weights.shape))
                if layer.biases is not None:
                    slots.append(("b", layer.index, (layer.size,)))
            if self.learn_tau and layer.plastic:
                slots.append(("T", layer.index, (layer.size,)))
        for layer in self.net.teacher or ():
            slots.append(("U", layer.index, (layer.size,)))
        self.slots = {}
        offset = 0
        for kind, index, shape in slots:
            size = int(np.prod(shape))
            self.slots[(kind, index)] = (slice(offset, offset + size), shape)
            offset += size
        self.n_state = offset
        sizes = [layer.size for layer in self.net.layers]
        self.loop_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.n_loop = int(sum(sizes))

    def get(self, state: np.ndarray, kind: str, index: int) -> np.ndarray:
        """View of one block of a batched state array (B, n_state)."""
        cut, shape = self.slots[(kind, index)]
        return state[:, cut].reshape((state.shape[0], *shape))

    def initial_state(self, how: str, x0: np.ndarray, y0: np.ndarray | None):
        state = np.zeros((1, self.n_state))
        for layer in self.net.layers:
            if self.plastic and layer.plastic:
                self.get(state, "W", layer.index)[0] = layer.weights
                if layer.biases is not None:
                    self.get(state, "b", layer.index)[0] = layer.biases
            if self.learn_tau and layer.plastic:
                self.get(state, "T", layer.index)[0] = layer.tau_m
        if how == "steady":
            state = self._steady_state(state, x0, y0)
        return state[0]

    def _steady_state(self, state, x0, y0):
        """Fixed point of u, v (and the teacher) with the weights held."""
        dyn = [k for k in self.slots if k[0] in {"u", "v", "U"}]

        def residual(values):
            trial = state.copy()
            pos = 0
            for key in dyn:
                block = self.get(trial, *key)
                block[...] = values[pos : pos + block[0].size].reshape(block.shape)
                pos += block[0].size
            derivative = self.derivative(0.0, trial, x0[None, :], y0)
            out = []
            for key in dyn:
                out.append(self.get(derivative, *key).ravel())
            return np.concatenate(out)

        guess = np.zeros(sum(self.get(state, *k)[0].size for k in dyn))
        sol = root(residual, guess, method="hybr", tol=1e-14)
        # hybr may report "no further improvement" at its tolerance floor; the
        # residual itself is what decides.
        if not np.all(np.isfinite(sol.x)) or np.max(np.abs(residual(sol.x))) > 1e-10:
            raise ReferenceSolveError(
                f"steady initial state not found ({sol.message}); "
                "use initial_state: zero."
            )
        residual(sol.x)
        pos = 0
        out = state.copy()
        for key in dyn:
            block = self.get(out, *key)
            block[...] = sol.x[pos : pos + block[0].size].reshape(block.shape)
            pos += block[0].size
        return out

    # --- parameters --------------------------------------------------------------
    def weights(self, state: np.ndarray, layer: Layer) -> np.ndarray:
        if self.plastic and layer.plastic:
            return self.get(state, "W", layer.index)
        return layer.weights[None, :, :]

    def tau_m(self, state: np.ndarray, layer: Layer) -> np.ndarray:
        """tau_m of `layer`: the learned state (floored) or the fixed value."""
        if self.learn_tau and layer.plastic:
            floor = TAU_M_FLOOR_REL * layer.tau_m
            return np.maximum(self.get(state, "T", layer.index), floor)
        return layer.tau_m

    def biases(self, state: np.ndarray, layer: Layer):
        if layer.biases is None:
            return 0.0
        if self.plastic and layer.plastic:
            return self.get(state, "b", layer.index)
        return layer.biases[None, :]

    # --- teacher: feed-forward, no errors -----------------------------------------
    def teacher_forward(self, state: np.ndarray, x: np.ndarray):
        rates, prosp = [], []
        r_prev = x
        for layer in self.net.teacher or ():
            f = self.funcs[layer.phi]
            drive = r_prev @ layer.weights.T
            if layer.biases is not None:
                drive = drive + layer.biases
            u_t = self.get(state, "U", layer.index)
            up = f.u_prosp(u_t, drive, 0.0, layer.tau_m, layer.tau_r, 0.0)
            up = _bcast(up, u_t.shape)
            r_prev = f.phi(up)
            prosp.append((drive, up))
            rates.append(r_prev)
        return rates, prosp

    # --- the algebraic loop ------------------------------------------------------
    def _loop_terms(self, state, x, y, z):
        """Residual and Jacobian of the loop in z = (u_prosp..., e...)."""
        layers = self.net.layers
        batch = state.shape[0]
        n = self.n_loop
        offs = self.loop_offsets
        P = [z[:, offs[k] : offs[k + 1]] for k in range(len(layers))]
        E = [z[:, n + offs[k] : n + offs[k + 1]] for k in range(len(layers))]
        res = np.empty_like(z)
        jac = np.zeros((batch, 2 * n, 2 * n))
        eye = np.arange(2 * n)
        jac[:, eye, eye] = 1.0
        r_prev, dr_prev = x, None
        drives, rates = [], []
        for k, layer in enumerate(layers):
            f = self.funcs[layer.phi]
            w = self.weights(state, layer)
            drive = np.einsum("bij,bj->bi", w, r_prev) + self.biases(state, layer)
            u = self.get(state, "u", layer.index)
            tau = self.tau_m(state, layer)
            args = (u, drive, E[k], tau, layer.tau_r, layer.gamma)
            lo, hi = offs[k], offs[k + 1]
            res[:, lo:hi] = P[k] - _bcast(f.u_prosp(*args), u.shape)
            diag = np.arange(lo, hi)
            jac[:, diag, n + diag] -= _bcast(f.du_prosp_de(*args), u.shape)
            if dr_prev is not None:
                gain = _bcast(f.du_prosp_d_drive(*args), u.shape)
                plo, phi_ = offs[k - 1], offs[k]
                jac[:, lo:hi, plo:phi_] -= gain[:, :, None] * w * dr_prev[:, None, :]
            r_prev = f.phi(P[k])
            dr_prev = _bcast(f.phi_prime(P[k]), P[k].shape)
            drives.append(drive)
            rates.append(r_prev)
        for k in range(len(layers) - 1, -1, -1):
            layer = layers[k]
            f = self.funcs[layer.phi]
            lo, hi = offs[k], offs[k + 1]
            diag = np.arange(lo, hi)
            v = self.get(state, "v", layer.index)
            if k == len(layers) - 1:
                alpha = _bcast(f.alpha_output(P[k], y, self.net.beta), v.shape)
                dalpha_dp = _bcast(
                    f.dalpha_output_du_prosp(P[k], y, self.net.beta), v.shape
                )
            else:
                w_next = self.weights(state, layers[k + 1])
                feedback = np.einsum("bji,bj->bi", w_next, E[k + 1])
                alpha = _bcast(f.alpha_hidden(P[k], feedback), v.shape)
                dalpha_dp = _bcast(f.dalpha_hidden_du_prosp(P[k], feedback), v.shape)
                dalpha_dfb = _bcast(f.dalpha_hidden_dfb(P[k], feedback), v.shape)
            e_args = (v, alpha, self.tau_m(state, layer), layer.tau_r)
            res[:, n + lo : n + hi] = E[k] - _bcast(f.e(*e_args), v.shape)
            gain = _bcast(f.de_dalpha(*e_args), v.shape)
            jac[:, n + diag, diag] -= gain * dalpha_dp
            if k < len(layers) - 1:
                nlo, nhi = offs[k + 1], offs[k + 2]
                block = (gain * dalpha_dfb)[:, :, None] * np.swapaxes(w_next, 1, 2)
                jac[:, n + lo : n + hi, n + nlo : n + nhi] -= block
        return res, jac, drives, rates

    def _forward(self, state, x, z):
        """Synaptic drives and rates of every layer for loop values z."""
        drives, rates = [], []
        r_prev = x
        for k, layer in enumerate(self.net.layers):
            w = self.weights(state, layer)
            drives.append(
                np.einsum("bij,bj->bi", w, r_prev) + self.biases(state, layer)
            )
            up = z[:, self.loop_offsets[k] : self.loop_offsets[k + 1]]
            r_prev = self.funcs[layer.phi].phi(up)
            rates.append(r_prev)
        return drives, rates

    def solve_loop(self, state, x, y, z0=None):
        """Solve the algebraic loop; returns (z, drives, rates)."""
        if z0 is None:
            z0 = np.concatenate(
                [self.get(state, "u", layer.index) for layer in self.net.layers]
                + [self.get(state, "v", layer.index) for layer in self.net.layers],
                axis=1,
            )
        z = z0.copy()
        for _ in range(NEWTON_MAX_ITER):
            res, jac, _, _ = self._loop_terms(state, x, y, z)
            if not (np.all(np.isfinite(res)) and np.all(np.isfinite(jac))):
                raise ReferenceSolveError(_overflow_text(self.net, None, None))
            step = np.linalg.solve(jac, res[..., None])[..., 0]
            z -= step
            # Newton converges quadratically: once a step is below sqrt(tol),
            # the remaining error is of order step**2, below tol.
            scale = 1.0 + np.max(np.abs(z))
            if np.max(np.abs(step)) <= np.sqrt(NEWTON_TOL) * scale:
                drives, rates = self._forward(state, x, z)
                return z, drives, rates
        raise ReferenceSolveError(
            f"the algebraic loop (gamma e in u_prosp) did not converge in "
            f"{NEWTON_MAX_ITER} Newton steps (last step {np.max(np.abs(step)):.3g}); "
            "reduce gamma or beta."
        )

    # --- right-hand side -----------------------------------------------------------
    def target(self, t, state, x):
        if self.targets is not None:
            return np.stack([sig(t) for sig in self.targets], axis=-1).reshape(
                state.shape[0], -1
            )
        rates, _ = self.teacher_forward(state, x)
        return rates[-1]

    def derivative(self, t, state, x, y=None, z0=None):
        """d(state)/dt for a batch of states (B, n_state) at inputs x (B, n_in)."""
        teacher = self.teacher_forward(state, x)  # once: for y and for dU/dt
        if y is None:
            y = self.target(t, state, x) if self.targets is not None else teacher[0][-1]
        z, drives, rates = self.solve_loop(state, x, y, z0)
        self._z_last = z
        out = np.zeros_like(state)
        n = self.n_loop
        offs = self.loop_offsets
        r_prev = x
        for k, layer in enumerate(self.net.layers):
            f = self.funcs[layer.phi]
            e_k = z[:, n + offs[k] : n + offs[k + 1]]
            u = self.get(state, "u", layer.index)
            v = self.get(state, "v", layer.index)
            tau = self.tau_m(state, layer)
            du = f.du_dt(u, drives[k], e_k, tau, layer.tau_r, layer.gamma)
            self.get(out, "u", layer.index)[...] = du
            # alpha from e = (1 - rho) v + rho alpha is recomputed by the equation
            # itself: dv/dt needs alpha, which the loop already fixed.
            if k == len(self.net.layers) - 1:
                alpha = f.alpha_output(z[:, offs[k] : offs[k + 1]], y, self.net.beta)
            else:
                w_next = self.weights(state, self.net.layers[k + 1])
                e_next = z[:, n + offs[k + 1] : n + offs[k + 2]]
                feedback = np.einsum("bji,bj->bi", w_next, e_next)
                alpha = f.alpha_hidden(z[:, offs[k] : offs[k + 1]], feedback)
            self.get(out, "v", layer.index)[...] = f.dv_dt(v, alpha, tau, layer.tau_r)
            if self.learn_tau and layer.plastic:
                rate = _bcast(f.dtau_m_dt(e_k, du, self.net.eta_tau), u.shape)
                held = self.get(state, "T", layer.index) <= TAU_M_FLOOR_REL * (
                    layer.tau_m
                )
                self.get(out, "T", layer.index)[...] = np.where(
                    held & (rate < 0), 0.0, rate
                )
            if self.plastic and layer.plastic:
                self.get(out, "W", layer.index)[...] = f.dW_dt(
                    e_k[:, :, None], r_prev[:, None, :], self.net.eta
                )
                if layer.biases is not None:
                    self.get(out, "b", layer.index)[...] = _bcast(
                        f.db_dt(e_k, self.net.eta), e_k.shape
                    )
            r_prev = rates[k]
        for layer, (drive, _) in zip(self.net.teacher or (), teacher[1], strict=True):
            f = self.funcs[layer.phi]
            u_t = self.get(state, "U", layer.index)
            self.get(out, "U", layer.index)[...] = f.du_dt(
                u_t, drive, 0.0, layer.tau_m, layer.tau_r, 0.0
            )
        return out

    # --- signals -------------------------------------------------------------------
    def signals(self, t: np.ndarray, states: np.ndarray, x: np.ndarray) -> dict:
        """Every named model signal at times t from states (B, n_state)."""
        y = self.target(t, states, x)
        z, _, rates = self.solve_loop(states, x, y)
        n = self.n_loop
        offs = self.loop_offsets
        out: dict[str, np.ndarray] = {}
        for j in range(x.shape[1]):
            out[f"x_n{j}"] = x[:, j]
        for j in range(y.shape[1]):
            out[f"y_n{j}"] = y[:, j]
        for k, layer in enumerate(self.net.layers):
            l_ = layer.index
            u = self.get(states, "u", l_)
            v = self.get(states, "v", l_)
            for i in range(layer.size):
                tag = f"l{l_}_n{i}"
                out[f"u_{tag}"] = u[:, i]
                out[f"u_prosp_{tag}"] = z[:, offs[k] + i]
                out[f"r_{tag}"] = rates[k][:, i]
                out[f"v_{tag}"] = v[:, i]
                out[f"e_{tag}"] = z[:, n + offs[k] + i]
            if self.learn_tau and layer.plastic:
                tau = self.tau_m(states, layer)
                for i in range(layer.size):
                    out[f"tau_m_l{l_}_n{i}"] = tau[:, i]
            if not (self.plastic and layer.plastic):
                continue  # frozen weights are parameters, not signals
            w = self.get(states, "W", l_)
            for i in range(layer.size):
                for j in range(layer.weights.shape[1]):
                    out[f"w_l{l_}_i{i}_j{j}"] = w[:, i, j]
            if layer.biases is not None:
                b = self.get(states, "b", l_)
                for i in range(layer.size):
                    out[f"b_l{l_}_n{i}"] = b[:, i]
        if self.net.teacher is not None:
            rates_t, prosp_t = self.teacher_forward(states, x)
            for layer, r_t, (_, up_t) in zip(
                self.net.teacher, rates_t, prosp_t, strict=True
            ):
                u_t = self.get(states, "U", layer.index)
                for i in range(layer.size):
                    tag = f"l{layer.index}_n{i}"
                    out[f"teacher_u_{tag}"] = u_t[:, i]
                    out[f"teacher_u_prosp_{tag}"] = up_t[:, i]
                    out[f"teacher_r_{tag}"] = r_t[:, i]
        return {name: np.ascontiguousarray(value) for name, value in out.items()}


@dataclass
class ReferenceSolution:
    """A dense ODE solution; ``trace(t)`` evaluates every signal at times t."""

    model: NetworkModel
    inputs: list[Signal]
    solution: object
    t_stop: float
    stats: dict

    def states(self, t: np.ndarray) -> np.ndarray:
        return self.solution.sol(t).T

    def trace(self, t: np.ndarray, chunk: int | None = None) -> Trace:
        """Evaluate every signal at model times `t` (dense output, 8th order)."""
        t = np.asarray(t, dtype=float)
        if chunk is None:
            # one dense (2n x 2n) loop Jacobian per time point: bound the memory
            per_point = (2 * self.model.n_loop) ** 2 * 8 * 4
            chunk = int(max(1, min(20_000, 200e6 // per_point)))
        parts: list[dict] = []
        for start in range(0, len(t), chunk):
            tc = t[start : start + chunk]
            x = np.stack([sig(tc) for sig in self.inputs], axis=-1)
            parts.append(self.model.signals(tc, self.states(tc), x))
        signals = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        return Trace(t, signals, "ode", meta=dict(self.stats))


def _overflow_text(network: Network, inputs, t: float | None) -> str:
    """Say that the reference overflowed, and which spec values drive it."""
    weights = max(float(np.max(np.abs(layer.weights))) for layer in network.layers)
    gamma = max(layer.gamma for layer in network.layers)
    ratio = max(float(np.max(layer.tau_r / layer.tau_m)) for layer in network.layers)
    when = "" if t is None else f" at t = {t:.6g}"
    peak = ""
    if inputs and t is not None:
        peak = f", |input| now {max(abs(float(sig(t))) for sig in inputs):.3g}"
    return (
        f"the network's values overflowed{when} (a membrane, rate or error went "
        "beyond the range of a double): the spec drives it far outside its working "
        f"range (largest |weight| {weights:.3g}{peak}, beta {network.beta:.3g}, "
        f"gamma {gamma:.3g}, eta {network.eta:.3g}, largest tau_r / tau_m "
        f"{ratio:.3g}); fix: scale down network.weights, the input, network.beta, "
        "network.gamma, network.eta or the tau_r / tau_m ratios"
    )


def simulate_reference(
    network: Network,
    inputs: list[Signal],
    t_stop: float,
    initial_state: str = "zero",
    targets: list[Signal] | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    should_stop: Callable[[], bool] | None = None,
    t_start: float = 0.0,
    state0: np.ndarray | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> ReferenceSolution:
    """Integrate the network's derived equations from `t_start` to `t_stop`.

    Parameters
    ----------
    network : Network
    inputs : list of Signal, one per input channel
    t_stop : float, model time units
    initial_state : {"zero", "steady"}
    targets : list of Signal, optional
        Target channels; by default the teacher's output.
    rtol, atol : float
        DOP853 tolerances (relative; absolute in model units).
    should_stop : callable, optional
        Polled every few hundred evaluations; when it returns True the
        integration ends with :class:`ReferenceStopped`.
    t_start : float
        Start time (model units); the inputs are read at absolute time.
    state0 : ndarray, optional
        Flat state at `t_start` in the model's layout (for example the last
        state of an earlier window); by default built from `initial_state`.
    on_progress : callable, optional
        Called with the current model time every few hundred evaluations.

    Returns
    -------
    ReferenceSolution

    Raises
    ------
    ReferenceSolveError
        If the loop does not converge or the integrator fails.
    """
    model = NetworkModel(network, targets)
    if state0 is None:
        x0 = np.array([sig(t_start) for sig in inputs], dtype=float)
        y0 = None
        if targets is not None:
            y0 = np.array([[sig(t_start) for sig in targets]], dtype=float)
        state0 = model.initial_state(initial_state, x0, y0)
    else:
        state0 = np.asarray(state0, dtype=float)
        if state0.shape != (model.n_state,):
            raise ValueError(
                f"state0 has shape {state0.shape}; this network's state has "
                f"({model.n_state},)"
            )
    cache = {"z": None, "calls": 0}

    def rhs(t, flat):
        cache["calls"] += 1
        if cache["calls"] % 500 == 0:
            if should_stop is not None and should_stop():
                raise ReferenceStopped(f"stopped by the caller at t = {t:.6g}")
            if on_progress is not None:
                on_progress(float(t))
        x = np.array([[sig(t) for sig in inputs]], dtype=float)
        if not np.all(np.isfinite(flat)):
            raise ReferenceSolveError(_overflow_text(network, inputs, t))
        out = model.derivative(t, flat[None, :], x, z0=cache["z"])
        if not np.all(np.isfinite(out)):
            raise ReferenceSolveError(_overflow_text(network, inputs, t))
        cache["z"] = model._z_last
        return out[0]

    started = time.perf_counter()
    # An overflow shows as inf or nan in the state or its derivative, checked
    # above and reported with the spec values that drive it; numpy's own
    # warnings would only repeat it without saying which value is to blame.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sol = solve_ivp(
            rhs,
            (t_start, t_stop),
            state0,
            method="DOP853",
            rtol=rtol,
            atol=atol,
            dense_output=True,
        )
    wall = time.perf_counter() - started
    if not sol.success:
        raise ReferenceSolveError(sol.message)
    stats = {
        "method": "DOP853",
        "rtol": rtol,
        "atol": atol,
        "steps": int(len(sol.t) - 1),
        "rhs_evaluations": int(sol.nfev),
        "wall_sec": wall,
        "loop": "newton",
        "newton_tol": NEWTON_TOL,
    }
    log.info(
        "reference done method=DOP853 rtol=%g steps=%d nfev=%d wall_sec=%.2f",
        rtol,
        stats["steps"],
        sol.nfev,
        wall,
    )
    return ReferenceSolution(model, inputs, sol, t_stop, stats)
