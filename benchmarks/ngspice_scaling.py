"""ngspice CPU time against network size, and KLU against Sparse 1.3.

The decks are those of ``benchmarks/netlist_speed.py`` (``k -> h -> o``
teacher-student networks, behavioural level, fixed or plastic weights), run
for ``--t-stop`` model time units with ``ngspice -b`` in a fresh folder. The
CPU time is the child's user + system time (``os.wait4``). Each deck runs on
every engine given:

- ``ngspice``: the one on PATH (Debian 12: ngspice 39, Sparse 1.3 only);
- ``--ngspice46 PATH``: an ngspice 46 binary (Debian bookworm-backports,
  built with KLU), once as shipped (``.options klu``) and once with
  ``.options sparse``.

The scaling exponent is the least-squares slope of log CPU time against log
synapse count over the decks of at least 100 synapses.

    .venv/bin/python benchmarks/ngspice_scaling.py [--t-stop 5] [--ngspice46 PATH]

Writes ``benchmarks/results/ngspice_scaling.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from netlist_speed import SIZES, spec_for  # noqa: E402

from vle_hw.pipeline import build_deck  # noqa: E402

HERE = Path(__file__).resolve().parent


def deck_text(k: int, h: int, o: int, plastic: bool, t_stop: float, option: str):
    spec, text = spec_for(k, h, o, plastic, t_stop)
    deck = build_deck(spec, text).text
    if option:
        deck = deck.replace("\n.tran ", f"\n.options {option}\n.tran ", 1)
    return deck


def run(binary: str, deck: str, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deck.cir"
        path.write_text(deck, encoding="utf-8")
        log = Path(tmp) / "ngspice.log"
        started = time.perf_counter()
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [binary, "-b", str(path)],
                cwd=tmp,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        stderr = log.read_text(errors="replace")
        raws = list(Path(tmp).glob("*.raw"))
        ok = os.waitstatus_to_exitcode(status) == 0 and bool(raws)
    return {
        "ok": ok,
        "cpu_sec": usage.ru_utime + usage.ru_stime,
        "wall_sec": wall,
        "stderr_tail": "" if ok else stderr[-300:],
    }


def exponent(rows: list[dict]) -> float | None:
    pts = [(r["synapses"], r["cpu_sec"]) for r in rows if r["synapses"] >= 100]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def ngspice_engines(ngspice46: str | None, sparse_too: bool):
    """(label, binary, .options word, environment) of every engine to run.

    The system's ngspice (Debian 12: 39, Sparse 1.3) and, if given, an unpacked
    ngspice 46 with KLU (and with its own sparse solver when `sparse_too`).
    """
    engines = [("ngspice 39 (sparse)", shutil.which("ngspice"), "", dict(os.environ))]
    if ngspice46:
        env46 = dict(os.environ)
        root = Path(ngspice46).resolve().parents[2]
        env46["SPICE_LIB_DIR"] = str(root / "usr" / "share" / "ngspice")
        env46["SPICE_EXEC_DIR"] = str(root / "usr" / "bin")
        engines.append(("ngspice 46 klu", ngspice46, "klu", env46))
        if sparse_too:
            engines.append(("ngspice 46 sparse", ngspice46, "sparse", env46))
    return engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-stop", type=float, default=5.0)
    parser.add_argument("--ngspice46", default=None)
    args = parser.parse_args()
    engines = ngspice_engines(args.ngspice46, sparse_too=True)
    rows = []
    for plastic in (False, True):
        for k, h, o in SIZES:
            for engine, binary, option, env in engines:
                deck = deck_text(k, h, o, plastic, args.t_stop, option)
                result = run(binary, deck, env)
                row = {
                    "engine": engine,
                    "network": f"{k} -> {h} -> {o}",
                    "plastic": plastic,
                    "synapses": 2 * (k * h + h * o),
                    **result,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    fits = {}
    for engine, *_ in engines:
        for plastic in (False, True):
            sel = [r for r in rows if r["engine"] == engine and r["plastic"] == plastic]
            fits[f"{engine}, {'plastic' if plastic else 'fixed'}"] = exponent(sel)
    result = {"t_stop_model_units": args.t_stop, "rows": rows, "exponents": fits}
    out = HERE / "results" / "ngspice_scaling.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        "| network | plastic | synapses | " + " | ".join(e[0] for e in engines) + " |"
    )
    print("|---|---|---|" + "---|" * len(engines))
    for i in range(0, len(rows), len(engines)):
        group = rows[i : i + len(engines)]
        cells = " | ".join(f"{r['cpu_sec']:.2f} s" for r in group)
        r = group[0]
        print(f"| {r['network']} | {r['plastic']} | {r['synapses']} | {cells} |")
    for name, slope in fits.items():
        print(f"scaling exponent, {name}: {slope}")


if __name__ == "__main__":
    main()
