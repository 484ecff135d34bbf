"""Click parameter types shared by the command modules."""

from __future__ import annotations

from pathlib import Path

import click


def _control_free(text: str, param, ctx, kind: click.ParamType) -> None:
    """Refuse a path with control characters (newlines, terminal escapes)."""
    if any(not ch.isprintable() for ch in text):
        kind.fail(
            f"{text!r} contains control characters; give a plain {kind.name} name",
            param,
            ctx,
        )


class OutputFile(click.ParamType):
    """A file to write: not empty, not a folder, not ending in a path separator.

    Click exits with code 2 and names the option when a value is refused.
    """

    name = "file"

    def convert(self, value, param, ctx):
        text = str(value)
        if not text.strip():
            self.fail("an empty path; give a file name", param, ctx)
        _control_free(text, param, ctx, self)
        _usable(text, param, ctx, self)
        if text.endswith(("/", "\\")) or Path(text).is_dir():
            self.fail(
                f"{text!r} names a folder; give the path of a file inside it",
                param,
                ctx,
            )
        return text


def _usable(text: str, param, ctx, kind: click.ParamType) -> None:
    """Fail on a path the system cannot even look up (too long, a link loop)."""
    from vle_hw.outputs import UnusablePathError, resolved

    try:
        resolved(Path(text))  # both types are outputs
    except UnusablePathError as exc:
        kind.fail(str(exc), param, ctx)
    except OSError as exc:
        kind.fail(f"{text!r} cannot be used ({exc})", param, ctx)


class OutputFolder(click.ParamType):
    """A folder to write into: not empty, not an existing file."""

    name = "folder"

    def convert(self, value, param, ctx):
        text = str(value)
        if not text.strip():
            self.fail("an empty path; give a folder name, e.g. out", param, ctx)
        _control_free(text, param, ctx, self)
        _usable(text, param, ctx, self)
        if Path(text).exists() and not Path(text).is_dir():
            self.fail(f"{text!r} is a file; give a folder", param, ctx)
        return text


OUTPUT_FILE, OUTPUT_FOLDER = OutputFile(), OutputFolder()
