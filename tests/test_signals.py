"""The smoothed square's closed form (the circuit's source) against erf."""

import numpy as np
import pytest
import sympy as sp
from scipy.special import erf

from vle_hw.signals import T_MODEL, smoothed_square
from vle_hw.spec import MAX_PERIOD_PER_SIGMA, SmoothedSquare


def by_hand(t, period, sigma, duty=0.5, low=-1.0, high=1.0):
    """Square wave convolved with a Gaussian, summed over nearby edges."""
    level = np.zeros_like(t)
    for k in range(-2, 5):
        rise, fall = k * period, (k + duty) * period
        level += 0.5 * (
            erf((t - rise) / (np.sqrt(2) * sigma))
            - erf((t - fall) / (np.sqrt(2) * sigma))
        )
    return low + (high - low) * level


@pytest.mark.parametrize(
    "period, sigma", [(4.0, 0.05), (1e3, 0.05), (MAX_PERIOD_PER_SIGMA * 0.05, 0.05)]
)
def test_the_closed_form_and_its_reported_error_hold_up_to_the_period_limit(
    period, sigma
):
    signal = smoothed_square(
        SmoothedSquare(kind="smoothed_square", period=period, sigma=sigma)
    )
    closed = sp.lambdify(T_MODEL, signal.source.expr, modules="numpy")
    for edge in (period / 2, period, 2.5 * period):
        t = edge + np.linspace(-6 * sigma, 6 * sigma, 1201)
        error = np.max(np.abs(closed(t) - by_hand(t, period, sigma)))
        assert error <= 1e-6
        # the reported error is measured across the edges, not between samples
        assert error <= signal.source.max_error * 1.5 + 1e-9
    assert signal.source.max_error <= 1e-6


def test_a_period_beyond_the_limit_names_sigma_and_the_longest_period():
    with pytest.raises(ValueError, match=r"sigma[\s\S]*period of at most 5e\+06"):
        SmoothedSquare(kind="smoothed_square", period=1e8, sigma=0.05)
