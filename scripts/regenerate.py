"""Regenerate the committed generated files: netlists/<name>.cir from every
examples/*.yaml spec, and the cell libraries of circuits/: behavioural.lib from
the derivation, opamp.lib from vle_hw.opamp and mos.lib from vle_hw.transistor.

Run from the project root: python scripts/regenerate.py
"""

import sys
from pathlib import Path

from vle_hw import cells, opamp, transistor
from vle_hw.pipeline import build_deck
from vle_hw.spec import load_spec

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
    for module in (cells, opamp, transistor):
        path = module.LIBRARY_PATH
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(module.library_text(), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
