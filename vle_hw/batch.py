"""A fixed-step, batched ODE reference for large networks (DESIGN.md 5.3).

The adaptive reference (:mod:`vle_hw.reference`) integrates one sample with
DOP853 and a dense Newton solve of the algebraic loop: right for verifying a
circuit, slow for an MNIST-1D-sized network and a batch of 100 sequences.
:class:`BatchStepper` integrates the same derived equations with a fixed step
dt for a whole batch at once:

- every neuron-wise expression (u_prosp, phi, phi', alpha, e) is lambdified
  from the sympy derivation of :func:`vle_hw.derivation.derive`, with the
  layer's per-neuron tau_m and tau_r substituted once;
- the membranes and error units are first-order nodes read off the derived
  du/dt and dv/dt (:func:`vle_hw.circuit.first_order`), advanced by the
  exponential-Euler rule x <- x + (1 - exp(-dt/tau)) (drive - x), exact for a
  drive held over the step;
- within one evaluation the prospective chain runs forward through the layers
  and the errors backward, as in the adaptive reference (instantaneous
  readouts, no delay inserted);
- the weights move by dt eta <e r_pre^T> (the batch mean of the local rule).

The input and target are sampled at the start of each step and held.

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


def _neuronwise(expr: sp.Expr, args: list[sp.Symbol]):
    """A numpy function of `args` from `expr`; names any symbol left over."""
    stray = expr.free_symbols - set(args)
    if stray:
        raise ValueError(f"{expr} depends on {sorted(map(str, stray))} beyond {args}")
    return sp.lambdify(args, expr, modules="numpy", cse=True)


class _LayerFunctions:
    """One layer's derived equations, numeric in its per-neuron tau_m, tau_r."""

    def __init__(self, phi: str, tau_m: np.ndarray, tau_r: np.ndarray, beta: float):
        eq = d.derive(phi)
        self.tau_m, self.tau_r = tau_m, tau_r
        # symbolic per-neuron parameters become array arguments
        up = eq.u_prosp.subs(d.gamma, 0)
        self.u_prosp = _neuronwise(up, [d.u, d.I_syn, d.tau_m, d.tau_r])
        self.phi = _neuronwise(eq.phi, [d.u_prosp])
        self.alpha_hidden = _neuronwise(eq.alpha_hidden, [d.u_prosp, d.fb])
        self.alpha_output = _neuronwise(
            eq.alpha_output.subs(d.beta, beta), [d.u_prosp, d.y]
        )
        self.e = _neuronwise(eq.e, [d.v, d.alpha, d.tau_m, d.tau_r])
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

    Raises
    ------
    ValueError
        If a layer has gamma != 0 (the field is named), or dt or batch is not
        positive.

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

    def __init__(self, network: Network, dt: float, batch: int, learn: bool = True):
        if not dt > 0 or not batch >= 1:
            raise ValueError(f"dt = {dt!r} and batch = {batch!r} must be positive")
        for k, layer in enumerate(network.layers):
            if layer.gamma != 0.0:
                raise ValueError(
                    f"network.layers[{k}].gamma = {layer.gamma:g}: the batch stepper "
                    "needs gamma = 0 (it does not solve the algebraic loop); fix: set "
                    "network.gamma: 0 (and the layers' gamma), or use the adaptive "
                    "reference vle_hw.simulate_reference."
                )
        self.network, self.dt, self.batch, self.learn = network, dt, batch, learn
        self.layers = [
            _LayerFunctions(layer.phi, layer.tau_m, layer.tau_r, network.beta)
            for layer in network.layers
        ]
        self.a_m = [-np.expm1(-dt / f.tau_m) for f in self.layers]
        self.a_r = [-np.expm1(-dt / f.tau_r) for f in self.layers]
        self.plastic = [
            learn and layer.plastic and network.eta > 0 for layer in network.layers
        ]
        self.rate = dt * network.eta / batch  # batch mean of the update

    def initial_state(self) -> BatchState:
        """Zero membranes and error units; the network's initial weights."""
        shape = [(self.batch, layer.size) for layer in self.network.layers]
        return BatchState(
            u=[np.zeros(s) for s in shape],
            v=[np.zeros(s) for s in shape],
            weights=[layer.weights.copy() for layer in self.network.layers],
            biases=[
                None if layer.biases is None else layer.biases.copy()
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
        rates, drives, prosp = [x], [], []
        # --- forward: the prospective chain, layer by layer ----------------------
        for k, f in enumerate(self.layers):
            drive = rates[-1] @ state.weights[k].T
            if state.biases[k] is not None:
                drive += state.biases[k]
            up = f.u_prosp(state.u[k], drive, f.tau_m, f.tau_r)
            drives.append(drive)
            prosp.append(up)
            rates.append(f.phi(up))
        # --- backward: error readouts from the output down --------------------------
        alphas: list[np.ndarray] = [None] * count  # type: ignore[list-item]
        errors: list[np.ndarray] = [None] * count  # type: ignore[list-item]
        for k in range(count - 1, -1, -1):
            f = self.layers[k]
            if k == count - 1:
                alphas[k] = f.alpha_output(prosp[k], y)
            else:
                alphas[k] = f.alpha_hidden(
                    prosp[k], errors[k + 1] @ state.weights[k + 1]
                )
            errors[k] = f.e(state.v[k], alphas[k], f.tau_m, f.tau_r)
        # --- update: exponential Euler for the nodes, local rule for W --------------
        for k in range(count):
            state.u[k] += self.a_m[k] * (drives[k] - state.u[k])
            state.v[k] += self.a_r[k] * (alphas[k] - state.v[k])
            if self.plastic[k]:
                state.weights[k] += self.rate * (errors[k].T @ rates[k])
                if state.biases[k] is not None:
                    state.biases[k] += self.rate * errors[k].sum(axis=0)
        return rates[-1]

    def run(
        self, state: BatchState, x: np.ndarray, y: np.ndarray
    ) -> tuple[BatchState, np.ndarray]:
        """Step through sequences x (steps, batch, inputs) and y (steps, batch, out).

        Returns
        -------
        (BatchState, ndarray of shape (steps, batch, outputs)): the output rates.
        """
        outputs = np.empty((x.shape[0], self.batch, self.network.layers[-1].size))
        for n in range(x.shape[0]):
            outputs[n] = self.step(state, x[n], y[n])
        return state, outputs
