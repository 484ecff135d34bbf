"""Writing result files: never over an existing file unless asked, always atomic.

Each file is written to a temporary file in the same folder and renamed into
place, so a crash or a full disk leaves either the old file or none, never a
truncated one.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from vle_hw.errors import OutputExistsError


def check_writable(paths: list[Path], force: bool) -> None:
    """Check every output before any work is done.

    Refuses duplicates among `paths`, anything that exists and is not a regular
    file (even with `force`), existing files without `force`, and paths whose
    folder cannot be created or written.

    Raises
    ------
    OutputExistsError
        For an existing output, naming every one and the ``--force`` fix.
    OSError
        For a path that cannot be written, with the reason.
    """
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) != len(resolved):
        raise OutputExistsError(
            "two outputs would be written to the same file "
            f"({', '.join(map(str, paths))}); give each output option its own "
            "path."
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
    """
    kept = {p.resolve() for p in inputs}
    for path in outputs:
        if path.resolve() in kept:
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
