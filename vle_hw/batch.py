"""A fixed-step, batched ODE reference for large networks (DESIGN.md 5.3).

The adaptive reference (:mod:`vle_hw.reference`) integrates one sample with
DOP853 and a dense Newton solve of the algebraic loop: right for verifying a
circuit, slow for an MNIST-1D-sized network and a batch of 100 sequences.
:class:`BatchStepper` integrates the same derived equations with a fixed step
dt for a whole batch at once:

- the rate and its slope (phi, phi') are lambdified together from the sympy
  derivation of :func:`vle_hw.derivation.derive`; the linear readouts u_prosp
  (in u and I_syn) and e (in v and alpha) are reduced to per-neuron
  coefficients, and alpha to phi' times the feedback (hidden) or the output
  error, each form checked symbolically against the derived expression;
- the membranes and error units are first-order nodes read off the derived
  du/dt and dv/dt (:func:`vle_hw.circuit.first_order`), advanced by the
  exponential-Euler rule x <- x + (1 - exp(-dt/tau)) (drive - x), exact for a
  drive held over the step;
- within one evaluation the prospective chain runs forward through the layers
  and the errors backward, as in the adaptive reference (instantaneous
  readouts, no delay inserted);
- the weights move by dt eta <e r_pre^T> (the batch mean of the local rule).

The input and target are sampled at the start of each step and held. A step
writes into buffers allocated once (no array is created per step), and the
state may be float32, which halves the bytes moved and doubles the SIMD width
(the float32 rounding is measured in ``benchmarks/ode_batch.py``).

LIMITATION(batch): gamma must be 0 (the errors do not nudge the forward
  membranes). Consequence: the algebraic loop of gamma != 0 is not solved
  here; such specs are refused with an error naming the field. Issue #6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from vle_hw import derivation as d
from vle_hw.circuit import first_order
from vle_hw.network import Network


@dataclass
class BatchState:
    """Membranes u, error units v (per layer, shape (batch, size)) and weights."""

    u: list[np.ndarray]
    v: list[np.ndarray]
    weights: list[np.ndarray]
    biases: list[np.ndarray | None]


def _neuronwise(expr, args: list[sp.Symbol]):
    """A numpy function of `args` from `expr` (or a tuple of them)."""
    exprs = expr if isinstance(expr, tuple) else (expr,)
    stray = set().union(*(x.free_symbols for x in exprs)) - set(args)
    if stray:
        raise ValueError(f"{expr} depends on {sorted(map(str, stray))} beyond {args}")
    return sp.lambdify(args, expr, modules="numpy", cse=True)


def _linear(expr: sp.Expr, a: sp.Symbol, b: sp.Symbol) -> tuple[sp.Expr, sp.Expr]:
    """(c_a, c_b) with expr == c_a a + c_b b exactly; an error otherwise."""
    c_a, c_b = sp.diff(expr, a), sp.diff(expr, b)
    if sp.simplify(expr - c_a * a - c_b * b) != 0 or {a, b} & (
        c_a.free_symbols | c_b.free_symbols
    ):
        raise ValueError(f"{expr} is not linear in {a} and {b} alone")
    return c_a, c_b


class _LayerFunctions:
    """One layer's derived equations, numeric in its per-neuron tau_m, tau_r."""

    def __init__(self, phi: str, tau_m: np.ndarray, tau_r: np.ndarray, beta: float):
        eq = d.derive(phi)
        self.tau_m, self.tau_r = tau_m, tau_r
        taus = {d.tau_m: tau_m, d.tau_r: tau_r}
        # u_prosp = c_u u + c_I I_syn and e = c_v v + c_alpha alpha, per neuron
        c_u, c_i = _linear(eq.u_prosp.subs(d.gamma, 0), d.u, d.I_syn)
        c_v, c_a = _linear(eq.e, d.v, d.alpha)
        if sp.simplify(c_u + c_i - 1) != 0 or sp.simplify(c_v + c_a - 1) != 0:
            raise ValueError(
                f"u_prosp = {eq.u_prosp}, e = {eq.e}: the readouts are not "
                "x + c (drive - x); the batch stepper needs that form"
            )
        self.c_u, self.c_i, self.c_v, self.c_a = (
            _neuronwise(c, [d.tau_m, d.tau_r])(*taus.values()) * np.ones_like(tau_m)
            for c in (c_u, c_i, c_v, c_a)
        )
        # the rate and its slope in one call (they share tanh, exp, ...)
        self.phi_and_slope = _neuronwise((eq.phi, eq.phi_prime), [d.u_prosp])
        # alpha = phi' fb (hidden) and phi' beta (y - phi) (output), checked
        y = sp.Symbol("y", real=True)
        if sp.simplify(eq.alpha_hidden - eq.phi_prime * d.fb) != 0 or sp.simplify(
            eq.alpha_output.subs(d.y, y) - eq.phi_prime * d.beta * (y - eq.phi)
        ):
            raise ValueError(
                f"phi = {phi}: alpha is not phi' times the feedback or the output "
                "error beta (y - r); the batch stepper needs that form"
            )
        self.beta = beta
        # first-order nodes: tau and unit drive gains, checked per neuron
        for k in range(len(tau_m)):
            params = {d.tau_m: float(tau_m[k]), d.tau_r: float(tau_r[k]), d.gamma: 0}
            mem = first_order(eq.du_dt.subs(params), d.u, [d.I_syn, d.e])
            err = first_order(eq.dv_dt.subs(params), d.v, [d.alpha])
            if not (
                np.isclose(mem.tau, tau_m[k])
                and np.isclose(err.tau, tau_r[k])
                and np.isclose(mem.gains[d.I_syn], 1.0)
                and np.isclose(err.gains[d.alpha], 1.0)
            ):
                raise ValueError(
                    f"neuron {k}: the derived nodes are not tau_m du/dt = -u + I, "
                    "tau_r dv/dt = -v + alpha; the batch stepper needs that form"
                )


class BatchStepper:
    """Fixed-step batched integration of a network's derived local equations.

    Parameters
    ----------
    network : Network
        From :func:`vle_hw.network.build_network`; gamma must be 0 everywhere.
    dt : float, model time units
    batch : int
        Number of sequences integrated side by side.
    learn : bool
        Whether the plastic layers' weights follow the local rule.
    dtype : "float64" (default) or "float32"
        The precision of the state and of every product.

    Raises
    ------
    ValueError
        If a layer has gamma != 0 (the field is named), if dt or batch is not
        positive, or if dtype is neither float64 nor float32.

    Examples
    --------
    >>> from vle_hw.spec import load_spec
    >>> from vle_hw.network import build_network
    >>> spec, _ = load_spec()
    >>> net = build_network(spec.model_copy(update={"network": spec.network.model_copy(
    ...     update={"gamma": 0.0})}))
    >>> stepper = BatchStepper(net, dt=0.01, batch=4)
    >>> state = stepper.initial_state()
    >>> x = np.ones((1000, 4, 1)); y = np.zeros((1000, 4, 1))
    >>> state, out = stepper.run(state, x, y)
    >>> out.shape, bool(np.all(np.isfinite(out)))
    ((1000, 4, 1), True)
    """

    def __init__(
        self,
        network: Network,
        dt: float,
        batch: int,
        learn: bool = True,
        dtype: str = "float64",
    ):
        if not dt > 0 or not batch >= 1:
            raise ValueError(f"dt = {dt!r} and batch = {batch!r} must be positive")
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype = {dtype!r}: use 'float64' or 'float32'")
        for k, layer in enumerate(network.layers):
            if layer.gamma != 0.0:
                raise ValueError(
                    f"network.layers[{k}].gamma = {layer.gamma:g}: the batch stepper "
                    "needs gamma = 0 (it does not solve the algebraic loop); fix: set "
                    "network.gamma: 0 (and the layers' gamma), or use the adaptive "
                    "reference vle_hw.simulate_reference."
                )
        self.network, self.dt, self.batch, self.learn = network, dt, batch, learn
        self.dtype = np.dtype(dtype)
        self.layers = [
            _LayerFunctions(layer.phi, layer.tau_m, layer.tau_r, network.beta)
            for layer in network.layers
        ]
        cast = self.dtype.type
        self.coef = [
            tuple(np.asarray(c, self.dtype) for c in (f.c_u, f.c_i, f.c_v, f.c_a))
            for f in self.layers
        ]
        self.a_m = [
            np.asarray(-np.expm1(-dt / f.tau_m), self.dtype) for f in self.layers
        ]
        self.a_r = [
            np.asarray(-np.expm1(-dt / f.tau_r), self.dtype) for f in self.layers
        ]
        self.plastic = [
            learn and layer.plastic and network.eta > 0 for layer in network.layers
        ]
        self.rate = cast(dt * network.eta / batch)  # batch mean of the update
        self.beta = cast(network.beta)

        # work buffers, one per layer, reused by every step
        def buffers():
            return [
                np.empty((batch, layer.size), self.dtype) for layer in network.layers
            ]

        self._drive, self._prosp, self._gap = buffers(), buffers(), buffers()
        self._slope, self._alpha, self._error, self._scratch = (
            buffers(),
            buffers(),
            buffers(),
            buffers(),
        )
        self._dw = [
            np.empty(layer.weights.shape, self.dtype) for layer in network.layers
        ]

    def initial_state(self) -> BatchState:
        """Zero membranes and error units; copies of the network's weights."""
        shape = [(self.batch, layer.size) for layer in self.network.layers]
        return BatchState(
            u=[np.zeros(s, self.dtype) for s in shape],
            v=[np.zeros(s, self.dtype) for s in shape],
            weights=[
                np.array(layer.weights, self.dtype) for layer in self.network.layers
            ],
            biases=[
                None if layer.biases is None else np.array(layer.biases, self.dtype)
                for layer in self.network.layers
            ],
        )

    def step(self, state: BatchState, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Advance `state` by dt in place, with input x and target y held.

        Parameters
        ----------
        x : ndarray, shape (batch, inputs)
        y : ndarray, shape (batch, outputs)

        Returns
        -------
        ndarray, shape (batch, outputs): the output rate r_N at the step's start.
        """
        count = len(self.layers)
        drive, prosp, slope = self._drive, self._prosp, self._slope
        alpha, error, gap, tmp = self._alpha, self._error, self._gap, self._scratch
        rates = [np.asarray(x, self.dtype)]
        # --- forward: the prospective chain, layer by layer ----------------------
        # u_prosp = c_u u + c_I I, written u + c_I (I - u) (c_u = 1 - c_I, checked
        # at construction); the membrane's exponential-Euler step shares I - u and
        # is taken now, since u is not read again in this step.
        for k, f in enumerate(self.layers):
            _, c_i, _, c_a = self.coef[k]
            np.matmul(rates[k], state.weights[k].T, out=drive[k])
            if state.biases[k] is not None:
                drive[k] += state.biases[k]
            np.subtract(drive[k], state.u[k], out=gap[k])
            np.multiply(c_i, gap[k], out=prosp[k])
            prosp[k] += state.u[k]
            np.multiply(self.a_m[k], gap[k], out=tmp[k])
            state.u[k] += tmp[k]
            r, slope[k] = f.phi_and_slope(prosp[k])
            rates.append(r)
        # --- backward: error readouts from the output down --------------------------
        # e = v + c_alpha (alpha - v), and the error unit's step, sharing alpha - v
        for k in range(count - 1, -1, -1):
            _, _, _, c_a = self.coef[k]
            if k == count - 1:
                np.subtract(y, rates[k + 1], out=alpha[k])
                alpha[k] *= self.beta
            else:
                np.matmul(error[k + 1], state.weights[k + 1], out=alpha[k])
            alpha[k] *= slope[k]
            np.subtract(alpha[k], state.v[k], out=gap[k])
            np.multiply(c_a, gap[k], out=error[k])
            error[k] += state.v[k]
            np.multiply(self.a_r[k], gap[k], out=tmp[k])
            state.v[k] += tmp[k]
        # --- update: the local rule for W and b (the batch mean) --------------------
        for k in range(count):
            if self.plastic[k]:
                np.matmul(error[k].T, rates[k], out=self._dw[k])
                self._dw[k] *= self.rate
                state.weights[k] += self._dw[k]
                if state.biases[k] is not None:
                    state.biases[k] += self.rate * error[k].sum(axis=0)
        return rates[-1]

    def run(
        self, state: BatchState, x: np.ndarray, y: np.ndarray
    ) -> tuple[BatchState, np.ndarray]:
        """Step through sequences x (steps, batch, inputs) and y (steps, batch, out).

        Returns
        -------
        (BatchState, ndarray of shape (steps, batch, outputs)): the output rates.
        """
        outputs = np.empty(
            (x.shape[0], self.batch, self.network.layers[-1].size), self.dtype
        )
        x, y = np.asarray(x, self.dtype), np.asarray(y, self.dtype)
        for n in range(x.shape[0]):
            outputs[n] = self.step(state, x[n], y[n])
        return state, outputs
