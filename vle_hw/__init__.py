"""vle_hw: Variational / Generalized Latent Equilibrium networks as analog circuits.

The public API: load a spec, derive the local equations, simulate the ODE
reference, build an ngspice deck, run it, and compare the two traces.
"""

__version__ = "0.1.0"

from vle_hw.compare import Comparison, compare  # noqa: E402
from vle_hw.components import ComponentPlan, plan_components  # noqa: E402
from vle_hw.derivation import LocalEquations, derive, render  # noqa: E402
from vle_hw.errors import (  # noqa: E402
    NgspiceMissingError,
    NgspiceRunError,
    OutputExistsError,
    SpecError,
)
from vle_hw.gradients import (  # noqa: E402
    GradientResult,
    alignment,
    finite_difference_gradient,
    frequency_alignment,
    train_windowed_adjoint,
    window_gradient,
)
from vle_hw.learning import TrainResult, train  # noqa: E402
from vle_hw.network import build_network, network_graph  # noqa: E402
from vle_hw.pipeline import VerifyPaths, build_deck, verify  # noqa: E402
from vle_hw.reference import simulate_reference  # noqa: E402
from vle_hw.spec import Spec, load_spec, parse_spec_text  # noqa: E402
from vle_hw.trace import Trace, load_traces  # noqa: E402

__all__ = [
    "Comparison",
    "ComponentPlan",
    "GradientResult",
    "LocalEquations",
    "NgspiceMissingError",
    "NgspiceRunError",
    "OutputExistsError",
    "Spec",
    "SpecError",
    "Trace",
    "TrainResult",
    "VerifyPaths",
    "__version__",
    "alignment",
    "build_deck",
    "build_network",
    "compare",
    "derive",
    "finite_difference_gradient",
    "frequency_alignment",
    "load_spec",
    "load_traces",
    "network_graph",
    "parse_spec_text",
    "plan_components",
    "render",
    "simulate_reference",
    "train_windowed_adjoint",
    "train",
    "verify",
    "window_gradient",
]
