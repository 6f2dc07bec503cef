"""One bot per database file: an exclusive advisory lock on `<database>.lock`, next to it.

`open_services` takes it before opening the database and gives it back when it closes, so
a second bot started on the same `storage.database` is refused at once, with the first one's
pid, instead of both writing the same jobs. The lock is flock(2)'s: it belongs to an open
file description, so a second take conflicts whether it comes from another process or from
this one (a second `open_services` while the first is open), and the kernel drops it when
the holder dies, so a crash leaves nothing to clean up. Not blocking. ":memory:" needs no
lock; where there is no flock (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from types import TracebackType

from bot.db.connection import DatabaseOpenError

if sys.platform != "win32":
    import fcntl


class DatabaseInUse(DatabaseOpenError):
    """Another bot (another process, or another open in this one) holds the lock."""

    def __init__(self, database: Path | str, pid: int | None) -> None:
        holder = f" (pid {pid})" if pid else ""
        super().__init__(
            f"another Greenheart is already running on {database}{holder}; stop it first, "
            f"or give this one its own storage.database"
        )
        self.database, self.pid = database, pid


def lock_path(database: Path | str) -> Path:
    """The lock file of a database: beside the file itself (symbolic links followed)."""
    real = Path(database).resolve()
    return real.with_name(real.name + ".lock")


class DatabaseLock:
    """A held lock (`acquire`); `release` (or leaving the `with`) gives it back."""

    def __init__(self, path: Path | None, fd: int | None) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, database: Path | str) -> DatabaseLock:
        """Take the lock of `database`, or raise DatabaseInUse naming the holder's pid
        (DatabaseOpenError when the lock file cannot be made)."""
        if str(database) in ("", ":memory:") or sys.platform == "win32":
            return cls(None, None)
        path = lock_path(database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        except OSError as exc:
            raise DatabaseOpenError(
                f"the lock file {path} of the database {database} could not be created "
                f"({exc.strerror or exc}); check that its folder is writable"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DatabaseInUse(database, pid) from None
        except OSError as exc:  # e.g. ENOLCK: a file system without locks
            os.close(fd)
            raise DatabaseOpenError(
                f"the lock file {path} of the database {database} could not be locked "
                f"({exc.strerror or exc}); keep storage.database on a local disk"
            ) from exc
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise DatabaseOpenError(
                f"the lock file {path} of the database {database} could not be written "
                f"({exc.strerror or exc}); check the disk"
            ) from exc
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the lock back (again: nothing)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale pid for whoever reads the file
        os.close(fd)  # closing the only descriptor drops the flock

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
