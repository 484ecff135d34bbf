"""Exception types of vle_hw; each refines the built-in it specialises."""

from __future__ import annotations


class SpecError(ValueError):
    """A network spec (or a file it names) is invalid. The message names the
    field, the value found and the fix; the CLI exits with status 2."""


class OutputExistsError(FileExistsError):
    """An output file exists and overwriting was not asked for (``--force``)."""


class NgspiceMissingError(RuntimeError):
    """The ngspice shared library (or PySpice) cannot be loaded."""


class NgspiceRunError(RuntimeError):
    """ngspice did not finish a run: error, non-convergence, crash or timeout."""


class ReferenceSolveError(ArithmeticError):
    """The ODE reference could not be computed (the algebraic loop did not
    converge, no steady state, or the integrator failed)."""


class VleLimitationWarning(UserWarning):
    """A known limitation changed the numbers of this run."""
