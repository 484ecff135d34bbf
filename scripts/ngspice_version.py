"""Print the version of the ngspice shared library that vle_hw loads.

    .venv/bin/python scripts/ngspice_version.py      ->  ngspice-39

The library is the one the runner finds (``NGSPICE_LIBRARY_PATH`` if set), so
this tells which engine a test run is about to use.
"""

import logging
import os

from vle_hw.runner import find_ngspice_library

os.environ["NGSPICE_LIBRARY_PATH"] = find_ngspice_library()
logging.disable(logging.CRITICAL)  # PySpice warns about versions it does not know

from PySpice.Spice.NgSpice.Shared import NgSpiceShared  # noqa: E402

banner = NgSpiceShared.new_instance().exec_command("version -s")
print(
    next(line.strip("* ").strip() for line in banner.splitlines() if "ngspice-" in line)
)
