"""Symbolic derivation of the local VLE / GLE equations (DESIGN.md section 2).

This module owns the single source of truth of the project: starting from the
prospective energy

    E = 1/2 m**2 + (next layer) + beta c(r_N, y),   m = D+_{tau_m}[u] - W r_pre - b,

it derives, for one generic neuron, the forward dynamics (F1-F3), the exact
adjoint (continuous-time BPTT) and the local error dynamics (B1-B3) together
with the plasticity rule. The ODE reference lambdifies these expressions and the
netlist writer prints them as ngspice expressions; neither retypes them.

The derivation knows nothing of SPICE, files or the command line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal, get_args

import sympy as sp

PhiName = Literal["softplus", "tanh", "linear", "sigmoid"]
PHI_NAMES: tuple[str, ...] = get_args(PhiName)

# --- symbols, named as in DESIGN.md (each sympy name is the Python name) ---
t = sp.Symbol("t", real=True)
tau_m = sp.Symbol("tau_m", positive=True)
tau_r = sp.Symbol("tau_r", positive=True)
gamma = sp.Symbol("gamma", nonnegative=True)
beta = sp.Symbol("beta", nonnegative=True)
eta = sp.Symbol("eta", nonnegative=True)
eta_tau = sp.Symbol("eta_tau", nonnegative=True)  # learning rate of tau_m
u = sp.Symbol("u", real=True)
u_prosp = sp.Symbol("u_prosp", real=True)
v = sp.Symbol("v", real=True)
e = sp.Symbol("e", real=True)
alpha = sp.Symbol("alpha", real=True)
I_syn = sp.Symbol("I_syn", real=True)  # synaptic drive W r_pre + b
fb = sp.Symbol("fb", real=True)  # backpropagated drive W_next^T e_next
r_pre = sp.Symbol("r_pre", real=True)
u_dot = sp.Symbol("u_dot", real=True)  # du/dt of the neuron, in the tau_m rule
y = sp.Symbol("y", real=True)
lam = sp.Symbol("lambda", real=True)
a_adj = sp.Symbol("a", real=True)
W = sp.Symbol("W", real=True)
b = sp.Symbol("b", real=True)
x = sp.Symbol("x", real=True)
s = sp.Symbol("s")  # Laplace variable, s = i w
kappa = tau_r / tau_m
rho = tau_m / tau_r


def phi_expression(name: str, arg: sp.Expr = x) -> sp.Expr:
    """Return the transfer function phi(arg) named `name`.

    Parameters
    ----------
    name : {"softplus", "tanh", "linear", "sigmoid"}
    arg : sympy expression, dimensionless (model signal units)

    Raises
    ------
    ValueError
        If `name` is not one of ``PHI_NAMES``.

    Examples
    --------
    >>> phi_expression("softplus")
    log(exp(x) + 1)
    """
    table = {
        "softplus": sp.log(1 + sp.exp(arg)),
        "tanh": sp.tanh(arg),
        "linear": arg,
        "sigmoid": 1 / (1 + sp.exp(-arg)),
    }
    if name not in table:
        raise ValueError(f"unknown phi {name!r}; choose one of {list(PHI_NAMES)}.")
    return table[name]


@dataclass(frozen=True)
class LocalEquations:
    """Local equations of one neuron, its error unit and its synapses.

    Every expression is in model units and uses the module-level symbols. The
    membrane and error-unit dynamics are given as time derivatives; the
    prospective readouts as weighted sums of a state and its drive.
    """

    phi_name: str
    phi: sp.Expr  # r as a function of u_prosp
    phi_prime: sp.Expr
    phi_second: sp.Expr
    du_dt: sp.Expr  # (F1), in u, I_syn, e
    u_prosp: sp.Expr  # (F2), in u, I_syn, e
    alpha_hidden: sp.Expr  # (B1) hidden, in u_prosp, fb
    alpha_output: sp.Expr  # (B1) output, in u_prosp, y
    dv_dt: sp.Expr  # (B2), in v, alpha
    e: sp.Expr  # (B3), in v, alpha
    dW_dt: sp.Expr  # plasticity, in e, r_pre
    db_dt: sp.Expr
    dtau_m_dt: sp.Expr  # tau_m plasticity, in e, u_dot
    dlambda_dt: sp.Expr  # exact adjoint, in lambda, a
    eps: sp.Expr  # adjoint error, in lambda, a
    steps: dict[str, sp.Expr] = field(default_factory=dict, compare=False)

    def expressions(self) -> dict[str, sp.Expr]:
        """Name -> expression of every derived equation, in print order."""
        return {
            "du_dt": self.du_dt,
            "u_prosp": self.u_prosp,
            "r": self.phi,
            "alpha_hidden": self.alpha_hidden,
            "alpha_output": self.alpha_output,
            "dv_dt": self.dv_dt,
            "e": self.e,
            "dW_dt": self.dW_dt,
            "db_dt": self.db_dt,
            "dlambda_dt": self.dlambda_dt,
            "eps": self.eps,
        }


def _cost_mse(r_out: sp.Expr) -> sp.Expr:
    return sp.Rational(1, 2) * (r_out - y) ** 2


@functools.cache
def derive(phi_name: str = "softplus") -> LocalEquations:
    """Derive the local equations of a neuron with transfer function `phi_name`.

    The three steps of DESIGN.md section 2 are carried out symbolically and
    kept in ``LocalEquations.steps`` for display:

    1. forward dynamics: the mismatch m = D+_{tau_m}[u] - I_syn is set to
       gamma e and solved for du/dt; plasticity is -dE/dW with e in place of m;
    2. exact adjoint: the Euler-Lagrange equation of the action with respect to
       u gives D-_{tau_m}[m] = D-_{tau_r}[a]; with m = kappa a + lambda this is
       a first-order equation for lambda, integrated backwards in time;
    3. local rule: the acausal adjoint filter (1 - s tau_r)/(1 - s tau_m) has
       each factor replaced by the causal factor with the same phase
       (D-_{tau} -> I-_{tau}, I+_{tau} -> D+_{tau}), which gives
       e = D+_{tau_m} I-_{tau_r}[alpha], realised as (B2)-(B3).

    Parameters
    ----------
    phi_name : {"softplus", "tanh", "linear", "sigmoid"}

    Returns
    -------
    LocalEquations

    Raises
    ------
    ValueError
        If `phi_name` is unknown.

    Examples
    --------
    >>> eq = derive("tanh")
    >>> eq.u_prosp
    I_syn*tau_r/tau_m + e*gamma*tau_r/tau_m + u*(1 - tau_r/tau_m)
    """
    phi = phi_expression(phi_name, u_prosp)
    phi_prime = sp.diff(phi, u_prosp)
    phi_second = sp.diff(phi_prime, u_prosp)
    steps: dict[str, sp.Expr] = {}

    # --- step 1: forward dynamics from the energy -----------------------------
    u_f = sp.Function("u")(t)
    r_pre_f = sp.Function("r_pre")(t)
    mismatch = u_f + tau_m * sp.diff(u_f, t) - (W * r_pre_f + b)
    energy = sp.Rational(1, 2) * mismatch**2
    steps["energy"] = energy
    du = sp.Symbol("du_dt")
    m_local = mismatch.subs(sp.diff(u_f, t), du).subs(u_f, u)
    m_local = m_local.subs(W * r_pre_f + b, I_syn)
    du_dt = sp.solve(sp.Eq(m_local, gamma * e), du)[0]
    u_prosp_expr = sp.expand(u + tau_r * du_dt)
    u_prosp_expr = sp.collect(u_prosp_expr, u)
    steps["forward"] = sp.Eq(m_local, gamma * e)

    # plasticity: -dE/dW and -dE/db, with the prospective error e in place of m
    m_sym = sp.Symbol("m", real=True)
    neg_grad_w = -sp.diff(energy, W).subs(mismatch, m_sym)
    neg_grad_b = -sp.diff(energy, b).subs(mismatch, m_sym)
    dW_dt = eta * neg_grad_w.subs({m_sym: e, r_pre_f: r_pre})
    db_dt = eta * neg_grad_b.subs(m_sym, e)
    steps["plasticity"] = sp.Eq(sp.Symbol("-dE/dW"), neg_grad_w.subs(r_pre_f, r_pre))
    # tau_m plasticity: -dE/dtau_m = -m du/dt, again with e in place of m
    neg_grad_tau = -sp.diff(energy, tau_m).subs(mismatch, m_sym)
    neg_grad_tau = neg_grad_tau.subs(sp.diff(u_f, t), u_dot)
    dtau_m_dt = eta_tau * neg_grad_tau.subs(m_sym, e)
    steps["tau_m_plasticity"] = sp.Eq(sp.Symbol("-dE/dtau_m"), neg_grad_tau)

    # --- step 2: exact adjoint from the Euler-Lagrange equation ---------------
    # The layer's own mismatch m(t) and the next layer's, which sees this
    # neuron through r = phi(D+_{tau_r}[u]); a(t) = phi' W_next m_next.
    w_next = sp.Symbol("W_next", real=True)
    m_next_f = sp.Function("m_next")(t)
    u_prosp_f = u_f + tau_r * sp.diff(u_f, t)
    phi_f = sp.Function("phi")
    lagrangian = (
        sp.Rational(1, 2) * mismatch**2
        + sp.Rational(1, 2) * (m_next_f - w_next * phi_f(u_prosp_f)) ** 2
    )
    (el_equation,) = sp.euler_equations(lagrangian, u_f, t)
    # The Euler-Lagrange equation must read D-_{tau_m}[m] = D-_{tau_r}[a] with
    # a = W_next phi'(u_prosp) (m_next - W_next phi): its residual against that
    # operator form is kept and is zero (checked in the tests).
    a_expr = (
        w_next * sp.diff(phi_f(u_prosp_f), u_f) * (m_next_f - w_next * phi_f(u_prosp_f))
    )
    operator_form = (mismatch - tau_m * sp.diff(mismatch, t)) - (
        a_expr - tau_r * sp.diff(a_expr, t)
    )
    steps["_el_residual"] = sp.simplify(el_equation.lhs - operator_form)
    m_f = sp.Function("m")(t)
    a_f = sp.Function("a")(t)
    steps["adjoint_operator_form"] = sp.Eq(
        m_f - tau_m * sp.diff(m_f, t), a_f - tau_r * sp.diff(a_f, t)
    )
    # Substitute m = kappa a + lambda and solve for lambda'.
    lam_f = sp.Function("lambda")(t)
    lhs = steps["adjoint_operator_form"].lhs - steps["adjoint_operator_form"].rhs
    lhs = lhs.subs(m_f, kappa * a_f + lam_f).doit()
    dlam = sp.solve(sp.Eq(lhs, 0), sp.diff(lam_f, t))[0]
    dlambda_dt = sp.simplify(dlam.subs({lam_f: lam, a_f: a_adj}))
    eps = kappa * a_adj + lam

    # --- step 3: local rule, the causal filter with the adjoint's phase -------
    # The adjoint filter I+_{tau_m} D-_{tau_r} = (1 - s tau_r)/(1 - s tau_m). Each
    # acausal factor becomes the causal one with the same phase: D-_tau = 1 - s tau
    # -> I-_tau = 1/(1 + s tau) and I+_tau = 1/(1 - s tau) -> D+_tau = 1 + s tau,
    # i.e. numerator and denominator trade places with s -> -s.
    h_adjoint = (1 - s * tau_r) / (1 - s * tau_m)
    numerator, denominator = sp.fraction(h_adjoint)
    h_local = denominator.subs(s, -s) / numerator.subs(s, -s)
    steps["adjoint_filter"] = h_adjoint
    steps["local_filter"] = h_local
    dv_dt = (alpha - v) / tau_r  # v = I-_{tau_r}[alpha]
    e_expr = sp.collect(sp.expand(v + tau_m * dv_dt), v)  # e = D+_{tau_m}[v]

    # (B1): hidden units see W_next^T e_next; the output sees e_star = -beta dc/dr.
    alpha_hidden = phi_prime * fb
    r_out = sp.Symbol("r", real=True)
    e_star = -beta * sp.diff(_cost_mse(r_out), r_out)
    alpha_output = phi_prime * e_star.subs(r_out, phi)

    return LocalEquations(
        phi_name=phi_name,
        phi=phi,
        phi_prime=phi_prime,
        phi_second=phi_second,
        du_dt=du_dt,
        u_prosp=u_prosp_expr,
        alpha_hidden=alpha_hidden,
        alpha_output=alpha_output,
        dv_dt=dv_dt,
        e=e_expr,
        dW_dt=dW_dt,
        db_dt=db_dt,
        dtau_m_dt=dtau_m_dt,
        dlambda_dt=dlambda_dt,
        eps=eps,
        steps=steps,
    )


SYMBOL_LEGEND = (
    "symbols (one neuron, model units; DESIGN.md section 2):",
    "  u membrane, u_prosp = u + tau_r du/dt, r = phi(u_prosp), r_pre presynaptic rate",
    "  I_syn = W r_pre + b synaptic drive, y target, v error-unit state, e error",
    "  m = D+_tau_m[u] - I_syn mismatch (m = gamma e forward), u_dot = du/dt",
    "  alpha, a error before the error filter; fb = W_next^T e_next feedback",
    "  lambda adjoint state, eps = kappa a + lambda adjoint error, kappa = tau_r/tau_m",
)


def render(eq: LocalEquations, fmt: Literal["text", "latex"] = "text") -> str:
    """Render the derivation of `eq` as plain text or LaTeX, one line each.

    Examples
    --------
    >>> print(render(derive("linear")).splitlines()[0])
    # phi = linear
    """
    show = sp.latex if fmt == "latex" else sp.sstr
    lines = [f"# phi = {eq.phi_name}"]
    lines += [f"# {line}" for line in SYMBOL_LEGEND]
    lines.append("## step 1: forward dynamics and plasticity from the energy")
    lines.append(f"E = {show(eq.steps['energy'])}")
    lines.append(f"{show(eq.steps['forward'])}")
    lines.append(f"{show(eq.steps['plasticity'])}")
    lines.append(f"{show(eq.steps['tau_m_plasticity'])}")
    lines.append("## step 2: exact adjoint (Euler-Lagrange of the action)")
    lines.append(f"{show(eq.steps['adjoint_operator_form'])}")
    lines.append("## step 3: local rule (causal filter with the adjoint's phase)")
    lines.append(f"H_adjoint(s) = {show(eq.steps['adjoint_filter'])}")
    lines.append(f"H_local(s) = {show(eq.steps['local_filter'])}")
    lines.append("## local equations")
    for name, expr in eq.expressions().items():
        lines.append(f"{name} = {show(expr)}")
    lines.append(f"dtau_m_dt = {show(eq.dtau_m_dt)}")
    lines.append(f"phi'(u_prosp) = {show(eq.phi_prime)}")
    return "\n".join(lines) + "\n"


# --- exact gradients (issue #3) --------------------------------------------------
eps_sym = sp.Symbol("eps", real=True)  # adjoint error of this neuron
du_dt_sym = sp.Symbol("du_dt", real=True)

GRADIENT_PARAMETERS: tuple[str, ...] = ("W", "b", "tau_m", "tau_r")


@dataclass(frozen=True)
class GradientEquations:
    """What the exact gradient of C = integral of c(r_N, y) dt needs, per neuron.

    Every expression is per unit beta: the energy's mismatch m is beta eps on
    the weakly nudged trajectory, so dividing by beta leaves the gradient of
    the cost C alone, whatever beta the spec uses.
    """

    phi_name: str
    cost: sp.Expr  # c(r, y)
    a_output: sp.Expr  # a = -(1/beta) dE/du_prosp at the output, in u_prosp, y
    a_hidden: sp.Expr  # the same in a hidden layer, in u_prosp, fb = W_next^T eps
    dlambda_dt: sp.Expr  # from step 2 of derive(), in lambda, a, tau_m, tau_r
    eps: sp.Expr  # in lambda, a, tau_m, tau_r
    grad: dict[str, sp.Expr]  # -dC/dtheta integrand, in eps, a, r_pre, du_dt
    local: dict[str, sp.Expr]  # local learning signal, in e, r_pre, du_dt


@functools.cache
def derive_gradients(phi_name: str = "softplus") -> GradientEquations:
    """Derive the integrands of -dC/dW, -dC/db, -dC/dtau_m and -dC/dtau_r.

    The same energy as :func:`derive`, written with plain symbols for u and
    du/dt, E = 1/2 m**2 + (the next layer's 1/2 m_next**2, or beta c at the
    output), with m = u + tau_m du/dt - W r_pre - b and the rate read at
    u_prosp = u + tau_r du/dt. On the stationary trajectory of the action the
    total derivative of the action equals the partial one (the adjoint state
    absorbs the implicit dependence), so

        -dC/dtheta = integral of -(1/beta) [dE/dtheta at fixed u_prosp
                                            + dE/du_prosp du_prosp/dtheta] dt

    with m = beta eps and a = -(1/beta) dE/du_prosp. The local learning signals
    are the same partials with the prospective error e in place of m (as the
    plasticity rule of :func:`derive`).

    Examples
    --------
    >>> g = derive_gradients("linear")
    >>> g.grad["W"], g.grad["tau_m"], g.grad["tau_r"]
    (eps*r_pre, -du_dt*eps, a*du_dt)
    >>> g.a_output
    -u_prosp + y
    """
    eq = derive(phi_name)
    du = du_dt_sym
    mismatch = u + tau_m * du - (W * r_pre + b)
    prosp = u + tau_r * du
    m_sym = sp.Symbol("m", real=True)

    # --- a: what the neuron's rate passes down, per unit beta -----------------
    # Hidden: the next layer's mismatch m_next = m_rest - W_next phi(u_prosp),
    # with m_next = beta eps_next; W_next eps_next is the feedback fb.
    w_next = sp.Symbol("W_next", real=True)
    m_rest = sp.Symbol("m_rest", real=True)
    eps_next = sp.Symbol("eps_next", real=True)
    rate = phi_expression(phi_name, u_prosp)
    upper_hidden = sp.Rational(1, 2) * (m_rest - w_next * rate) ** 2
    a_hidden = -sp.diff(upper_hidden, u_prosp) / beta
    a_hidden = a_hidden.subs(m_rest, beta * eps_next + w_next * rate)
    a_hidden = sp.simplify(a_hidden.subs(eps_next, fb / w_next))
    cost = _cost_mse(sp.Symbol("r", real=True))
    upper_output = beta * _cost_mse(rate)
    a_output = sp.simplify(-sp.diff(upper_output, u_prosp) / beta)

    # --- parameter integrands: explicit partials plus the path through u_prosp
    energy = sp.Rational(1, 2) * mismatch**2
    grad: dict[str, sp.Expr] = {}
    local: dict[str, sp.Expr] = {}
    for name, theta in (("W", W), ("b", b), ("tau_m", tau_m), ("tau_r", tau_r)):
        explicit = -sp.diff(energy, theta)
        explicit = explicit.subs(b, u + tau_m * du - W * r_pre - m_sym)
        explicit = sp.expand(explicit)
        through_rate = a_adj * sp.diff(prosp, theta)
        grad[name] = sp.expand(explicit.subs(m_sym, beta * eps_sym) / beta)
        grad[name] = grad[name] + through_rate
        if theta is not tau_r:  # the spec has no tau_r plasticity
            local[name] = explicit.subs(m_sym, e)
    return GradientEquations(
        phi_name=phi_name,
        cost=cost,
        a_output=a_output,
        a_hidden=a_hidden,
        dlambda_dt=eq.dlambda_dt,
        eps=eq.eps,
        grad=grad,
        local=local,
    )
