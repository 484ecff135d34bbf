"""Writing result files: never over an existing file unless asked, always atomic.

Each file is written to a temporary file in the same folder and renamed into
place, so a crash or a full disk leaves either the old file or none, never a
truncated one.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from vle_hw.errors import OutputExistsError, SpecError

NAME_MAX = 255  # bytes in one file or folder name on Linux file systems


class UnusablePathError(SpecError):
    """A path cannot be used at all: a name longer than the file system allows,
    a path through a symbolic-link loop. The message names the path and the
    fix; the CLI exits with status 2."""


def shown(text: str, limit: int = 80) -> str:
    """`text` quoted, shortened in the middle when it is longer than `limit`."""
    if len(text) <= limit:
        return repr(text)
    return f"'{text[: limit // 2]}...{text[-limit // 4 :]}' ({len(text)} characters)"


def path_problem(exc: BaseException, path: Path | str | None = None) -> str | None:
    """Why `exc` means that `path` cannot be used at all, with the fix; None
    when `exc` is another failure (a missing file, a permission, a full disk).

    Covers a name longer than the file system allows (ENAMETOOLONG) and a
    symbolic-link loop (ELOOP, or the RuntimeError of ``Path.resolve`` on
    Python < 3.13).
    """
    if isinstance(exc, RuntimeError) and str(exc).startswith("Symlink loop"):
        loop = True
    elif isinstance(exc, OSError) and exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
        loop = exc.errno == errno.ELOOP
    else:
        return None
    target = Path(path if path is not None else failed_path(exc))
    if loop:
        link = _first_loop(target)
        where = f" at {shown(str(link))}" if link is not None else ""
        return (
            f"it runs into a symbolic-link loop{where}; fix: remove or repoint "
            "that link, or choose another path."
        )
    long = _long_names(target)
    if long:
        which = "" if long[0] == str(target) else f" {shown(long[0])} in it"
        return (
            f"the name{which} is {len(os.fsencode(long[0]))} bytes long, more "
            f"than the file system allows ({NAME_MAX}); fix: choose a shorter "
            "file or folder name."
        )
    return (
        "the path is longer than the system allows; fix: choose a shorter path "
        "(or work from a folder nearer to it)."
    )


def _long_names(path: Path) -> list[str]:
    return [part for part in path.parts if len(os.fsencode(part)) > NAME_MAX]


def failed_path(exc: BaseException) -> str:
    """The path an OSError, or the RuntimeError of a symbolic-link loop, names."""
    name = getattr(exc, "filename", None)
    if name is not None:
        return os.fsdecode(name)
    quoted = str(exc).partition(" from ")[2]
    return quoted[1:-1] if quoted[:1] in "'\"" and len(quoted) > 1 else quoted


def _first_loop(path: Path) -> Path | None:
    """The first part of `path` that is a symbolic-link loop, if any."""
    for part in [*reversed(path.parents), path]:
        try:
            os.stat(part)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return part
    return None


def resolved(path: Path, what: str = "output path") -> Path:
    """`path` made absolute with its links followed (it need not exist).

    Raises
    ------
    UnusablePathError
        For a name too long or a symbolic-link loop, naming `what`, the path
        and the fix.
    """
    if _long_names(path):  # refused even below a folder that does not exist
        reason = path_problem(OSError(errno.ENAMETOOLONG, "File name too long"), path)
        raise UnusablePathError(f"{what} {shown(str(path))}: {reason}")
    try:
        absolute = path.resolve()
        try:
            os.stat(absolute)
        except (FileNotFoundError, NotADirectoryError):
            pass  # an output not written yet, or a path through a file
    except (OSError, RuntimeError) as exc:
        reason = path_problem(exc, path)
        if reason is None:
            raise
        raise UnusablePathError(f"{what} {shown(str(path))}: {reason}") from None
    return absolute


def check_writable(paths: list[Path], force: bool) -> None:
    """Check every output before any work is done.

    Refuses duplicates among `paths`, anything that exists and is not a regular
    file (even with `force`), existing files without `force`, and paths whose
    folder cannot be created or written.

    Raises
    ------
    OutputExistsError
        For an existing output, naming every one and the ``--force`` fix.
    UnusablePathError
        For a name too long or a path through a symbolic-link loop.
    OSError
        For a path that cannot be written, with the reason.
    """
    absolute = [resolved(p) for p in paths]
    first: dict[Path, int] = {}
    for index, (path, key) in enumerate(zip(paths, absolute, strict=True)):
        other = paths[first.setdefault(key, index)]
        if first[key] == index:
            continue
        if str(other) == str(path):
            raise OutputExistsError(
                f"two outputs would be written to the same file {path} (two "
                "output options name it, or one names a file this run writes "
                "itself, e.g. in <out>/ngspice/); fix: give each output option "
                "its own path."
            )
        raise OutputExistsError(
            f"two outputs would be written to the same file ({other} and "
            f"{path}); give each output option its own path."
        )
    for path in paths:
        if path.exists() and not path.is_file():
            raise OutputExistsError(
                f"output path {path} exists and is not a regular file; choose "
                "another path."
            )
        ancestor = path.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
            raise OSError(f"cannot write {path}: {ancestor} is not a writable folder")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise OutputExistsError(
            f"output file(s) already exist: {', '.join(existing)}; choose other "
            "output paths (or another --out folder) or pass --force to "
            "overwrite them."
        )


def check_not_inputs(outputs: list[Path], inputs: list[Path]) -> None:
    """Refuse an output that is one of the run's input files, even with --force.

    Raises
    ------
    OutputExistsError
        Naming the output and the input it would replace.
    UnusablePathError
        For a name too long or a path through a symbolic-link loop.
    """
    kept = {resolved(p, "input file") for p in inputs}
    for path in outputs:
        if resolved(path) in kept:
            raise OutputExistsError(
                f"output {path} is an input of this run (the spec or a CSV it "
                "names); inputs are never overwritten, even with --force; fix: "
                "choose another output path."
            )


def spec_inputs(spec_path: str | None, spec) -> list[Path]:
    """The spec file and every CSV file it reads (already resolved)."""
    paths = [Path(spec_path)] if spec_path else []
    sources = spec.input if isinstance(spec.input, list) else [spec.input]
    for source in [*sources, spec.target]:
        if getattr(source, "kind", None) == "csv":
            paths.append(Path(source.path))
    return paths


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; give the file the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
