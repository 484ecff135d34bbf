"""Regenerate the committed generated files: netlists/<name>.cir from every
examples/*.yaml spec, circuits/behavioural.lib from the derivation and
circuits/mos.lib from vle_hw.transistor.

Run from the project root: python scripts/regenerate.py
"""

import sys
from pathlib import Path

from vle_hw.cells import main as write_cells
from vle_hw.pipeline import build_deck
from vle_hw.spec import load_spec
from vle_hw.transistor import main as write_mos_cells

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        spec, text = load_spec(path)
        if spec.network.eta_tau > 0:
            print(f"skipped {path.relative_to(ROOT)}: tau_m learning has no circuit")
            continue
        out = ROOT / "netlists" / f"{spec.name}.cir"
        out.write_text(build_deck(spec, text).text, encoding="utf-8")
        print(f"wrote {out.relative_to(ROOT)}")
    write_mos_cells()
    return write_cells()


if __name__ == "__main__":
    sys.exit(main())
