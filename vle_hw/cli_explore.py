"""The ``vle-hw explore`` command: a tradeoff study on all cores or a Dask cluster.

Registered on the ``vle-hw`` group by :mod:`vle_hw.cli`. Exit codes: 0 every run
finished (some may have failed: they are in the table with their reason);
2 bad input (study file, knobs, existing results without ``--resume`` or
``--force``); 3 ngspice missing or the Dask scheduler unreachable; 130
interrupted (the finished runs are kept; ``--resume`` continues).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vle_hw.cli_types import OUTPUT_FOLDER


@click.command("explore")
@click.argument("study")
@click.option(
    "--out",
    "out_dir",
    type=OUTPUT_FOLDER,
    help="Results folder (default: vle_hw_out/study_<name>).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="An existing Dask scheduler (tcp://host:8786); default: a local cluster.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    help="Local worker processes (default: all cores).",
)
@click.option("--resume", is_flag=True, help="Finish a stopped study; keep its runs.")
@click.option("--force", is_flag=True, help="Start over where results exist.")
@click.option("--dry-run", is_flag=True, help="Validate and list the runs only.")
def explore(study, out_dir, scheduler, workers, resume, force, dry_run) -> None:
    """Run the tradeoff study STUDY (a .yaml or .toml file, see analysis/)."""
    from vle_hw.cli import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_NGSPICE, _fail
    from vle_hw.errors import (
        NgspiceMissingError,
        NgspiceRunError,
        OutputExistsError,
        SpecError,
    )
    from vle_hw.explore import StudyInterrupted, run_study
    from vle_hw.study import load_study

    if resume and force:
        _fail("--resume and --force exclude each other; give one.", EXIT_INPUT)
    try:
        loaded = load_study(study)
    except SpecError as exc:
        _fail(str(exc), EXIT_INPUT)
    if scheduler is not None and not _plain_address(scheduler):
        _fail(
            f"--scheduler {scheduler!r} is not a scheduler address; fix: give it "
            "as tcp://host:port, tls://host:port or host:port (port 1-65535).",
            EXIT_INPUT,
        )
    runs = loaded.runs
    click.echo(
        f"study {loaded.file.name}: {len(runs)} run(s) at the {loaded.file.level} "
        f"level; knobs: {', '.join(loaded.knob_names) or '(none)'}"
    )
    if dry_run:
        for task in runs[:50]:
            knobs = ", ".join(f"{k}={v}" for k, v in task.knobs.items())
            click.echo(f"  run {task.run_id}: {knobs} sample={task.sample}")
        if len(runs) > 50:
            click.echo(f"  ... and {len(runs) - 50} more")
        return
    out = Path(out_dir) if out_dir else Path("vle_hw_out") / f"study_{loaded.file.name}"
    bar = _bar(len(runs))
    try:
        outcome = run_study(
            loaded,
            out,
            scheduler=scheduler,
            workers=workers,
            resume=resume,
            force=force,
            on_progress=bar.update,
        )
    except (OutputExistsError, SpecError) as exc:
        bar.close()
        _fail(str(exc), EXIT_INPUT)
    except OSError as exc:
        bar.close()
        where = exc.filename or out
        journal = out / "runs.jsonl"
        try:
            kept = journal.stat().st_size > 0
        except OSError:
            kept = False
        then = (
            f"; every run finished before this is in {journal}; fix: free space "
            "or make the folder writable, then run again with --resume."
            if kept
            else "; fix: free space or make the folder writable, or choose "
            "another --out."
        )
        reason = exc.strerror or exc
        _fail(f"cannot write the study's results ({where}): {reason}{then}", EXIT_INPUT)
    except (NgspiceMissingError, NgspiceRunError) as exc:
        bar.close()
        _fail(str(exc), EXIT_NGSPICE)
    except StudyInterrupted as exc:
        bar.close()
        click.echo(f"interrupted: {exc}", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:  # before the first run or after the last
        bar.close()
        click.echo(
            f"interrupted; finished runs are in {out / 'runs.jsonl'}; continue "
            "with --resume.",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    bar.close()
    click.echo(
        f"{len(outcome.rows)} run(s): {len(outcome.rows) - outcome.failed} ok, "
        f"{outcome.failed} failed, in {outcome.wall_sec:.1f} s"
        + (f" on {outcome.workers} worker(s)" if outcome.workers else "")
    )
    for row in outcome.rows:
        if row["status"] != "ok":
            click.echo(f"  run {row['run_id']} failed: {row['error'][:300]}")
    for entry in outcome.yields:
        group = ", ".join(f"{k}={v}" for k, v in entry["group"].items()) or "all"
        p90 = f", p90 {entry['p90']:.3g}" if "p90" in entry else ""
        click.echo(
            f"yield {entry['metric']} <= {entry['max']:g} [{group}]: "
            f"{entry['yield']:.0%} of {entry['runs']}{p90}"
        )
    click.echo(f"table {outcome.paths.csv}")
    for path in outcome.figures:
        click.echo(f"figure {path}")


def _plain_address(text: str) -> bool:
    """tcp://host:port, tls://host:port or host:port, with a port of 1-65535
    and a host name, IPv4 or [IPv6] address (what a remote scheduler listens
    on; inproc:// lives in one process only, and ucx:// needs ucx-py)."""
    import re

    match = re.fullmatch(
        r"(?:(?:tcp|tls)://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][\w.\-]*):(\d{1,5})", text
    )
    return bool(match) and 1 <= int(match.group(2)) <= 65535


class _bar:
    """A tqdm bar of runs done, with the failed count and the time left.

    Made at the first report, which comes before any run, so that runs kept
    from before a resume count as done without skewing the time estimate.
    """

    def __init__(self, total: int):
        self.total = total
        self.bar = None

    def update(self, progress) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=progress.total,
                initial=progress.done,
                unit="run",
                desc="runs",
                dynamic_ncols=True,
            )
        self.bar.update(progress.done - self.bar.n)
        self.bar.set_postfix(failed=progress.failed, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
