"""`python -m vle_hw` runs the command line, as the `vle-hw` script does."""

from vle_hw.cli import main

main()
