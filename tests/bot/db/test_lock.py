"""One bot per database file: the lock beside it, refused with the holder's pid (from this
process or another), given back on close and on every failed start, taken again after."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import open_services
from bot.config import Settings, settings_from_mapping
from bot.db.connection import DatabaseOpenError
from bot.db.lock import DatabaseInUse, DatabaseLock, lock_path
from bot.pipelines.errors import ModelLoadError
from bot.pipelines.tiny import TinyModelPaths

ROOT = Path(__file__).resolve().parents[3]

HOLDER = """
import sys
from bot.db.lock import DatabaseLock
lock = DatabaseLock.acquire(sys.argv[1])
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
lock.release()
"""


def refusal(database: Path | str, pid: int) -> str:
    return (f"another Greenheart is already running on {database} (pid {pid}); stop it "
            f"first, or give this one its own storage.database")


def test_the_lock_file_sits_beside_the_database_and_names_the_holder(tmp_path: Path) -> None:
    database = tmp_path / "data" / "x.sqlite3"
    with DatabaseLock.acquire(database) as lock:
        assert lock.held
        assert lock.path == lock_path(database) == tmp_path / "data" / "x.sqlite3.lock"
        assert lock.path.read_text() == f"{os.getpid()}\n"
    assert not lock.held
    assert lock.path.read_text() == ""  # no stale pid left behind
    lock.release()  # again: nothing


def test_a_second_take_in_this_process_is_refused_until_released(tmp_path: Path) -> None:
    database = tmp_path / "x.sqlite3"
    first = DatabaseLock.acquire(database)
    with pytest.raises(DatabaseInUse) as refused:
        DatabaseLock.acquire(database)
    assert str(refused.value) == refusal(database, os.getpid())
    assert refused.value.pid == os.getpid()
    # The same file by another name is the same lock.
    with pytest.raises(DatabaseInUse):
        DatabaseLock.acquire(tmp_path / "." / "x.sqlite3")
    (tmp_path / "link.sqlite3").symlink_to(database)
    with pytest.raises(DatabaseInUse):
        DatabaseLock.acquire(tmp_path / "link.sqlite3")
    first.release()
    for _ in range(3):  # released: taken and given back again, as restarts do
        DatabaseLock.acquire(database).release()
    # Another database is another lock.
    with DatabaseLock.acquire(database), DatabaseLock.acquire(tmp_path / "y.sqlite3"):
        pass


def test_another_process_holding_the_lock_is_named(tmp_path: Path) -> None:
    database = tmp_path / "x.sqlite3"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(database)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DatabaseInUse) as refused:
            DatabaseLock.acquire(database)
        assert str(refused.value) == refusal(database, holder.pid)
    finally:
        holder.kill()  # a crash: the kernel drops the lock with the process
        holder.wait(timeout=30)
    DatabaseLock.acquire(database).release()


def test_memory_databases_need_no_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with DatabaseLock.acquire(":memory:") as first, DatabaseLock.acquire(":memory:") as second:
        assert not first.held and not second.held
    assert list(tmp_path.iterdir()) == []


def test_a_lock_file_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DatabaseOpenError, match=r"lock file .* could not be created"):
        DatabaseLock.acquire(tmp_path / "file" / "x.sqlite3")


def tiny_settings(tiny: TinyModelPaths, tmp: Path) -> Settings:
    return settings_from_mapping({
        "image": {"model": str(tiny.image)}, "story": {"model": str(tiny.story)},
        "storage": {"database": str(tmp / "db.sqlite3"), "images": str(tmp / "img")}})


async def test_open_services_holds_the_lock_while_open(
    tiny_models: TinyModelPaths, tmp_path: Path,
) -> None:
    settings = tiny_settings(tiny_models, tmp_path)
    database = settings.storage.database
    # A second bot's model is missing: refused for the database, before any model loads.
    second = replace(settings, image=replace(settings.image, model=str(tmp_path / "none")))
    async with open_services(settings):
        with pytest.raises(DatabaseInUse, match=rf"\(pid {os.getpid()}\)"):
            async with open_services(second):
                pass
        with pytest.raises(DatabaseInUse):
            DatabaseLock.acquire(database)
    DatabaseLock.acquire(database).release()
    # Closed: a restart in the same process opens it again.
    async with open_services(settings):
        pass
    # A start that fails after the lock (here: the model) gives it back too.
    with pytest.raises(ModelLoadError):
        async with open_services(second):
            pass
    DatabaseLock.acquire(database).release()


async def test_a_corrupt_database_gives_the_lock_back(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    database.write_bytes(b"not a database at all " * 100)
    settings = settings_from_mapping({"storage": {"database": str(database),
                                                  "images": str(tmp_path / "img")}})
    with pytest.raises(DatabaseOpenError, match="is not a valid SQLite database"):
        async with open_services(settings):
            pass
    DatabaseLock.acquire(database).release()
