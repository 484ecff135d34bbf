"""Dask worker preload of ``vle-hw explore``'s local cluster.

Ctrl-C in a terminal sends SIGINT to every process of the foreground group,
the local Dask workers included. The client (``vle-hw explore``) handles it:
it keeps the finished runs and stops the cluster, which ends the workers and
their ngspice processes. A worker that took SIGINT itself would print its own
traceback, so the workers ignore it.
"""

from __future__ import annotations

import signal
import threading


def dask_setup(worker) -> None:  # noqa: ARG001 - the preload hook's signature
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
