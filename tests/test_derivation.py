"""The sympy derivation against the hand-written equations of DESIGN.md section 2,
transfer functions in closed form, and finite differences."""

import numpy as np
import pytest
import sympy as sp

from vle_hw import derivation as d
from vle_hw.derivation import PHI_NAMES, derive, phi_expression, render

kappa = d.tau_r / d.tau_m
rho = d.tau_m / d.tau_r


def _zero(expr) -> bool:
    return sp.simplify(sp.expand(expr)) == 0


@pytest.mark.parametrize("phi_name", PHI_NAMES)
def test_derived_equations_equal_the_hand_written_ones(phi_name):
    eq = derive(phi_name)
    phi = phi_expression(phi_name, d.u_prosp)
    phi_p = sp.diff(phi, d.u_prosp)
    hand = {
        # (F1) tau_m du/dt = -u + W r + b + gamma e
        "du_dt": (-d.u + d.I_syn + d.gamma * d.e) / d.tau_m,
        # (F2) u_prosp = (1 - kappa) u + kappa (W r + b + gamma e)
        "u_prosp": (1 - kappa) * d.u + kappa * (d.I_syn + d.gamma * d.e),
        "r": phi,
        # (B1) hidden and output (MSE: e_star = beta (y - r))
        "alpha_hidden": phi_p * d.fb,
        "alpha_output": phi_p * d.beta * (d.y - phi),
        # (B2), (B3)
        "dv_dt": (-d.v + d.alpha) / d.tau_r,
        "e": (1 - rho) * d.v + rho * d.alpha,
        # plasticity
        "dW_dt": d.eta * d.e * d.r_pre,
        "db_dt": d.eta * d.e,
        # adjoint: tau_m dlambda/dt = lambda - (1 - kappa) a, eps = kappa a + lambda
        "dlambda_dt": (d.lam - (1 - kappa) * d.a_adj) / d.tau_m,
        "eps": kappa * d.a_adj + d.lam,
    }
    derived = eq.expressions()
    assert set(hand) == set(derived)
    for name, expected in hand.items():
        assert _zero(derived[name] - expected), name


@pytest.mark.parametrize("phi_name", ["softplus", "tanh"])
def test_euler_lagrange_equation_is_the_adjoint_operator_form(phi_name):
    # D-_{tau_m}[m] = D-_{tau_r}[a] with a = W_next phi' m_next (DESIGN.md step 2)
    assert derive(phi_name).steps["_el_residual"] == 0


def _laplace_forward_filter(eq):
    """I_syn -> u_prosp transfer with gamma = 0, from the derived equations."""
    s = d.s
    u_of_i = sp.solve(sp.Eq(s * d.u, eq.du_dt.subs(d.gamma, 0)), d.u)[0]
    return sp.simplify(eq.u_prosp.subs(d.gamma, 0).subs(d.u, u_of_i) / d.I_syn)


def _laplace_error_filter(eq):
    """alpha -> e transfer from (B2)-(B3)."""
    s = d.s
    v_of_alpha = sp.solve(sp.Eq(s * d.v, eq.dv_dt), d.v)[0]
    return sp.simplify(eq.e.subs(d.v, v_of_alpha) / d.alpha)


def test_forward_filter_is_the_published_transfer_function():
    h_f = _laplace_forward_filter(derive("linear"))
    expected = (1 + d.s * d.tau_r) / (1 + d.s * d.tau_m)
    assert sp.simplify(h_f - expected) == 0


def test_error_filter_is_the_exact_inverse_of_the_forward_filter():
    eq = derive("linear")
    assert sp.simplify(_laplace_forward_filter(eq) * _laplace_error_filter(eq) - 1) == 0


def test_filter_gains_are_one_at_dc_and_kappa_rho_at_high_frequency():
    eq = derive("linear")
    h_f, h_e = _laplace_forward_filter(eq), _laplace_error_filter(eq)
    assert sp.simplify(h_f.subs(d.s, 0)) == 1
    assert sp.simplify(h_e.subs(d.s, 0)) == 1
    assert sp.simplify(sp.limit(h_f, d.s, sp.oo) - kappa) == 0
    assert sp.simplify(sp.limit(h_e, d.s, sp.oo) - rho) == 0


def test_latent_equilibrium_identity_when_tau_r_equals_tau_m():
    eq = derive("tanh")
    same = {d.tau_r: d.tau_m}
    assert _zero(eq.u_prosp.subs(same) - (d.I_syn + d.gamma * d.e))
    assert _zero(eq.e.subs(same) - d.alpha)


def test_steady_state_has_u_prosp_equal_to_u_and_e_equal_to_alpha():
    eq = derive("softplus")
    u_star = sp.solve(eq.du_dt, d.u)[0]
    assert _zero(u_star - (d.I_syn + d.gamma * d.e))
    assert _zero(eq.u_prosp.subs(d.u, u_star) - u_star)
    v_star = sp.solve(eq.dv_dt, d.v)[0]
    assert _zero(eq.e.subs(d.v, v_star) - d.alpha)


def test_local_filter_has_the_adjoint_phase_and_the_predicted_amplitude_ratio():
    eq = derive("linear")
    w = sp.Symbol("omega", positive=True)
    h_adj = eq.steps["adjoint_filter"].subs(d.s, sp.I * w)
    h_loc = eq.steps["local_filter"].subs(d.s, sp.I * w)
    values = {d.tau_m: 2.0, d.tau_r: 0.2}
    for omega in (0.1, 0.5, 1.0, 3.0):
        a = complex(h_adj.subs(values).subs(w, omega))
        b = complex(h_loc.subs(values).subs(w, omega))
        assert np.angle(a) == pytest.approx(np.angle(b), abs=1e-12)
        ratio = (1 + omega**2 * 2.0**2) / (1 + omega**2 * 0.2**2)
        assert abs(b) / abs(a) == pytest.approx(ratio, rel=1e-12)
    # the local filter realised by (B2)-(B3) is the one printed in step 3
    assert sp.simplify(_laplace_error_filter(eq) - eq.steps["local_filter"]) == 0


def test_adjoint_m_solves_the_operator_form():
    # m = kappa a + lambda with the derived dlambda/dt satisfies
    # m - tau_m m' = a - tau_r a' for any a(t)
    eq = derive("linear")
    a = sp.Function("a")(d.t)
    lam = sp.Function("lam")(d.t)
    dlam = eq.dlambda_dt.subs({d.lam: lam, d.a_adj: a})
    m = kappa * a + lam
    lhs = m - d.tau_m * (kappa * sp.diff(a, d.t) + dlam)
    assert sp.simplify(lhs - (a - d.tau_r * sp.diff(a, d.t))) == 0


@pytest.mark.parametrize("phi_name", PHI_NAMES)
def test_phi_prime_matches_central_finite_differences(phi_name):
    eq = derive(phi_name)
    phi = sp.lambdify(d.u_prosp, eq.phi)
    phi_prime = sp.lambdify(d.u_prosp, eq.phi_prime)
    h = 1e-5
    for x in (-2.0, -0.3, 0.0, 0.7, 2.5):
        fd = (phi(x + h) - phi(x - h)) / (2 * h)
        assert phi_prime(x) == pytest.approx(fd, rel=1e-8, abs=1e-10)


def test_plasticity_is_minus_the_energy_gradient_in_w():
    eq = derive("linear")
    mismatch = sp.Symbol("m_val", real=True)
    # E = 1/2 (D+u - W r - b)^2: -dE/dW = m r; the rule puts e in place of m.
    energy = sp.Rational(1, 2) * (mismatch - d.W * d.r_pre) ** 2
    grad = -sp.diff(energy, d.W).subs(mismatch - d.W * d.r_pre, d.e)
    assert _zero(eq.dW_dt - d.eta * grad)


def test_unknown_phi_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        phi_expression("relu6")


def test_render_shows_the_three_steps_in_text_and_latex():
    eq = derive("softplus")
    text = render(eq)
    assert "step 1" in text and "step 2" in text and "step 3" in text
    assert "u_prosp = " in text
    latex = render(eq, "latex")
    assert r"\tau_{m}" in latex
