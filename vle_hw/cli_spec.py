"""``vle-hw spec``: the component plan of a network (printing lives here and in cli).

Writes the plan of :func:`vle_hw.components.plan_components` as a table on
standard output and, on request, as CSV, JSON or Markdown files.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from pathlib import Path

import click

from vle_hw.cli_types import OUTPUT_FILE
from vle_hw.components import ComponentPlan, ComponentWarning
from vle_hw.errors import OutputExistsError


def csv_text(plan: ComponentPlan) -> str:
    rows = plan.rows()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        )
    return buffer.getvalue()


def markdown_text(plan: ComponentPlan) -> str:
    s = plan.summary
    lines = [
        f"# Component plan: {plan.network} (series {plan.series})",
        "",
        "| unit | element | role | ideal | chosen | rounding |",
        "|---|---|---|---|---|---|",
    ]
    for row in plan.rows():
        lines.append(
            f"| {row['unit']} | {row['element']} | {row['role']} | "
            f"{row['ideal']:.4g} {row['unit_si']} | {row['value']:.4g} | "
            f"{100 * row['rounding_rel']:+.2f} % |"
        )
    lines += [
        "",
        "| stage | kind | noise gain (dc) | tau error | worst gain error | "
        "A0 min | GBW min (Hz) |",
        "|---|---|---|---|---|---|---|",
    ]
    for st, req in zip(plan.stages, plan.requirements, strict=True):
        worst = max((abs(v) for v in st.gain_error_rel.values()), default=0.0)
        lines.append(
            f"| {st.name} | {st.kind} | {st.noise_gain_dc:.4g} | "
            f"{100 * st.tau_error_rel:+.3f} % | {100 * worst:.3f} % | "
            f"{req.a0_min:.3g} | {req.gbw_min_hz:.3g} |"
        )
    lines += ["", "## Summary", ""]
    for key, value in s.items():
        if isinstance(value, dict):
            continue
        lines.append(
            f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}"
        )
    lines += ["", "## Formulas", ""]
    lines += [f"- {k}: `{v}`" for k, v in plan.formulas.items()]
    lines += ["", "## Process constants", ""]
    lines += [f"- {k}: {v:g}" for k, v in plan.process.items()]
    if plan.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in plan.warnings]
    return "\n".join(lines) + "\n"


def summary_lines(plan: ComponentPlan) -> list[str]:
    s = plan.summary
    out = [
        f"component plan of {plan.network}: {s['opamps']} op-amps, "
        f"{s['resistors']} resistors, {s['capacitors']} capacitors "
        f"(series {plan.series})",
        "",
        f"{'stage':<18}{'kind':<11}{'NG':>7}{'tau err':>10}{'gain err':>10}"
        f"{'A0 min':>10}{'GBW min Hz':>12}",
    ]
    for st, req in zip(plan.stages, plan.requirements, strict=True):
        worst = max((abs(v) for v in st.gain_error_rel.values()), default=0.0)
        out.append(
            f"{st.name:<18}{st.kind:<11}{st.noise_gain_dc:>7.3g}"
            f"{100 * st.tau_error_rel:>9.3f}%{100 * worst:>9.3f}%"
            f"{req.a0_min:>10.3g}{req.gbw_min_hz:>12.3g}"
        )
    out += [
        "",
        f"op-amp need for tracking error {s['tracking_error_rel']:g} at tau_min "
        f"{s['tau_min_sec']:.3g} s: A0 >= {s['a0_min_db']:.1f} dB, GBW >= "
        f"{s['gbw_min_hz']:.3g} Hz (have {s['a0_db']:g} dB, {s['gbw_hz']:.3g} Hz)",
        f"area {s['area_total_m2'] * 1e12:.4g} um^2 "
        f"(C {s['area_capacitors_m2'] * 1e12:.4g}, "
        f"R {s['area_resistors_m2'] * 1e12:.4g}, "
        f"op-amps {s['area_opamps_m2'] * 1e12:.4g}); "
        f"static power {s['power_watt'] * 1e3:.4g} mW "
        f"({s['opamp_iq_amp'] * 1e6:.3g} uA per op-amp); worst kT/C noise "
        f"{s['ktc_noise_worst_volt_rms'] * 1e6:.3g} uV rms",
    ]
    return out


def _distinct_outputs(outputs: list[tuple[Path, str]]) -> None:
    """Refuse two of --csv/--json/--md naming one file (one would be lost)."""
    from vle_hw.outputs import resolved

    seen: dict[Path, str] = {}
    for path, kind in outputs:
        other = seen.setdefault(resolved(path, f"--{kind}"), kind)
        if other != kind:
            raise OutputExistsError(
                f"--{other} and --{kind} both name {path}; one plan would "
                "overwrite the other; fix: give each format its own file, e.g. "
                "plan.csv and plan.json."
            )


@click.command("spec")
@click.argument("spec", required=False)
@click.option(
    "--series",
    type=click.Choice(["E96", "E24", "exact"]),
    default=None,
    help="Override components.series.",
)
@click.option(
    "--csv",
    "csv_path",
    type=OUTPUT_FILE,
    default=None,
    help="Write the component plan as CSV to this file.",
)
@click.option(
    "--json",
    "json_path",
    type=OUTPUT_FILE,
    default=None,
    help="Write the component plan as JSON to this file.",
)
@click.option(
    "--md",
    "md_path",
    type=OUTPUT_FILE,
    default=None,
    help="Write the component plan as Markdown to this file.",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def spec_command(spec, series, csv_path, json_path, md_path, force) -> None:
    """Print (and write) the op-amp-level component plan of SPEC (default: LagLine).

    Every resistor and capacitor of each neuron and error unit with its ideal
    value, the series value chosen and the tau/gain error the rounding causes;
    the synaptic transconductances; the op-amp requirements; area, power and
    kT/C noise with the formulas and process constants used.
    """
    from vle_hw.cli import EXIT_INPUT, _fail, _load
    from vle_hw.components import plan_components
    from vle_hw.errors import SpecError
    from vle_hw.network import build_network
    from vle_hw.outputs import (
        check_not_inputs,
        check_writable,
        spec_inputs,
        write_atomic,
    )

    outputs = [
        (Path(p), kind)
        for p, kind in ((csv_path, "csv"), (json_path, "json"), (md_path, "md"))
        if p is not None
    ]
    try:
        _distinct_outputs(outputs)
        parsed, _ = _load(spec)
        if series is not None:
            parsed = parsed.model_copy(
                update={
                    "components": parsed.components.model_copy(
                        update={"series": series}
                    )
                }
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ComponentWarning)
            plan = plan_components(parsed, build_network(parsed))
        check_not_inputs([path for path, _ in outputs], spec_inputs(spec, parsed))
        check_writable([path for path, _ in outputs], force)
    except (SpecError, OutputExistsError) as exc:
        _fail(str(exc), EXIT_INPUT)
    except OSError as exc:
        _fail(str(exc), EXIT_INPUT)
    for line in summary_lines(plan):
        click.echo(line)
    for text in plan.warnings:
        click.echo(f"warning: {text}", err=True)
    writers = {
        "csv": csv_text,
        "json": lambda p: json.dumps(p.to_dict(), indent=2, sort_keys=True) + "\n",
        "md": markdown_text,
    }
    for path, kind in outputs:
        try:
            write_atomic(path, writers[kind](plan))
        except OSError as exc:
            _fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_INPUT)
        click.echo(f"wrote {path}")
