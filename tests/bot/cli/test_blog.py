"""`python -m bot blog DIR`: the blog from the bot's database, even while the bot runs."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.db.connection import open_database
from bot.db.lock import DatabaseLock
from bot.story.repository import StoryRepository
from testkit.blog import ALICE, GUILD, Line, make_story


def write_config(tmp_path: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text('[storage]\ndatabase = "bot.sqlite3"\n[blog]\ntitle = "Tales"\n',
                      encoding="utf-8")
    return config


def test_the_cli_publishes_while_the_bot_holds_the_database(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    database = tmp_path / "bot.sqlite3"
    out = tmp_path / "site"

    async def scenario() -> list[int]:
        db = await open_database(database)  # the "running bot": WAL, its lock held
        try:
            with DatabaseLock.acquire(database):
                repo = StoryRepository(db)
                await make_story(repo, tmp_path / "png", "Ours", [Line("One"), Line("Two")])
                await make_story(repo, tmp_path / "png", "Theirs", [Line("Elsewhere")],
                                 guild_id=GUILD + 1)
                await make_story(repo, tmp_path / "png", "Open", [Line("Once")],
                                 ended_at=None)
                codes = [await asyncio.to_thread(main, ["--config", str(config), "blog",
                                                        str(out)])]
                codes.append(await asyncio.to_thread(main, [
                    "--config", str(config), "blog", str(tmp_path / "one"), "--guild",
                    str(GUILD), "--base-url", "https://tales.example/"]))
                # The bot goes on writing: the CLI left no lock or transaction behind.
                await repo.end((await repo.create(title="Later", style=None,
                                                  author=ALICE)).id)
                return codes
        finally:
            await db.close()

    assert asyncio.run(scenario()) == [0, 0]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"2 stories published: {out.resolve() / 'index.html'}",
                       f"1 story published: {(tmp_path / 'one').resolve() / 'index.html'}",
                       "served at https://tales.example/"]
    assert sorted(p.name for p in (out / "stories").iterdir()) == ["1-ours", "2-theirs"]
    atom = "{http://www.w3.org/2005/Atom}"
    feed = ET.parse(tmp_path / "one" / "feed.xml").getroot()
    assert [e.findtext(f"{atom}title") for e in feed.findall(f"{atom}entry")] == ["Ours"]
    link = feed.find(f"{atom}entry/{atom}link")
    assert link is not None and link.get("href") == "https://tales.example/stories/1-ours/"


def test_the_cli_names_a_database_it_cannot_read(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["--config", str(config), "blog", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err
    assert f"there is no database at {tmp_path / 'bot.sqlite3'}" in err
    assert not (tmp_path / "bot.sqlite3").exists()  # read-only: nothing was created

    async def older() -> None:
        db = await open_database(tmp_path / "bot.sqlite3")
        await db.execute("PRAGMA user_version = 1")
        await db.close()

    asyncio.run(older())
    assert main(["--config", str(config), "blog", str(tmp_path / "site")]) == 1
    assert "older than this bot's" in capsys.readouterr().err
    assert main(["--config", str(config), "blog", str(tmp_path / "site"),
                 "--base-url", "tales.example"]) == 2
    assert "must start with http:// or https://" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
