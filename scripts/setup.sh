#!/usr/bin/env bash
# Set up vle_hw on a fresh Debian machine: ngspice (shared library included) from
# Debian's packages, then a virtual environment in .venv with the package and its
# test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
if [ "${VLE_HW_NGSPICE:-debian}" = "backports" ]; then
  # Opt-in: ngspice 46 from Debian's bookworm-backports, built with the KLU
  # solver (faster on large plastic decks; benchmarks/ in the README). The
  # default stays Debian 12's own ngspice 39.
  if ! ngspice --version 2>/dev/null | grep -q 'ngspice-4[6-9]'; then
    echo "setup: installing ngspice 46 and libngspice0-dev from bookworm-backports"
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "deb http://deb.debian.org/debian bookworm-backports main" \
        | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq -t bookworm-backports ngspice libngspice0-dev >/dev/null
  fi
elif ! ldconfig -p 2>/dev/null | grep -q 'libngspice\.so '; then
  echo "setup: installing ngspice and libngspice0-dev (Debian packages)"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq ngspice libngspice0-dev >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    # stock Debian ships venv without ensurepip; python3-venv brings it
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
  fi
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test]"
echo "setup: done ($(.venv/bin/vle-hw --version), $(ngspice --version 2>/dev/null | grep -m1 -o 'ngspice-[0-9.]*'))"
