"""The trace type both engines return: time in model units and named signals.

Signal names are shared by the ODE reference and the SPICE runner, so that
comparison and plots never ask where a trace came from:
``u_l1_n0``, ``u_prosp_l1_n0``, ``r_l1_n0``, ``v_l1_n0``, ``e_l1_n0`` for
neuron 0 of layer 1, ``w_l2_i0_j0`` for W_2[0, 0], ``b_l1_n0`` for a bias,
``teacher_u_l1_n0`` (and ``teacher_u_prosp_*``, ``teacher_r_*``) for the
teacher, ``x_n0`` for the input and ``y_n0`` for the target.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Trace:
    """Signals over time; every value in model units.

    Attributes
    ----------
    t : ndarray, shape (n,)
        Time in model time units, strictly increasing.
    signals : dict of str -> ndarray, shape (n,)
    source : str
        A label for reports ("ode", "spice"); never used for dispatch.
    """

    t: np.ndarray
    signals: dict[str, np.ndarray]
    source: str
    meta: dict = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.signals)

    def npz_bytes(self, prefix: str = "") -> dict[str, np.ndarray]:
        out = {f"{prefix}t": self.t}
        out.update({f"{prefix}{name}": data for name, data in self.signals.items()})
        return out

    def csv_text(self) -> str:
        """CSV with a header ``t,<signal>,...`` and one row per time point."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        names = self.names()
        writer.writerow(["t", *names])
        table = np.column_stack([self.t, *(self.signals[n] for n in names)])
        for row in table:
            writer.writerow([repr(float(value)) for value in row])
        return buffer.getvalue()


def load_traces(path: str | Path) -> dict[str, Trace]:
    """Load the ``ode`` and ``spice`` traces written by ``vle-hw verify``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tr.npz")
    >>> np.savez(path, ode__t=np.arange(3.0), ode__u_l1_n0=np.zeros(3))
    >>> load_traces(path)["ode"].names()
    ['u_l1_n0']
    """
    data = np.load(path)
    traces: dict[str, Trace] = {}
    for key in data.files:
        source, name = key.split("__", 1)
        trace = traces.setdefault(source, Trace(np.empty(0), {}, source))
        if name == "t":
            trace.t = data[key]
        else:
            trace.signals[name] = data[key]
    return traces
