"""Writing a file so that a reader sees the old one or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

FILE_MODE = 0o644  # mkstemp's 0600 would hide the file from a web server's user


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` through a temporary file beside it, renamed over it; a file
    that already holds exactly `data` is left alone (its time stays, for rsync and
    caches). Returns whether the file was written."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass  # missing (or unreadable: replace it)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return True


def is_temporary(name: str) -> bool:
    """A leftover of `write_atomic` (a crash between writing and renaming)."""
    return name.startswith(".") and name.endswith(".tmp")
