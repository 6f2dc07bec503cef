"""`python -m bot story`: write an illustrated story without Discord, same code as the bot.

The story lives in a throw-away database for the run; the export (HTML, Markdown and
images/) is what `/story end` posts in Discord.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bot.app import open_services, with_model
from bot.config import Settings, StorageSettings
from bot.db.connection import DatabaseOpenError
from bot.pipelines.errors import ModelLoadError
from bot.story import (
    Author,
    StoryError,
    StoryLine,
    StoryOptionError,
    clean_line,
    clean_title,
    resolve_style,
)
from bot.story.export import build_export, write_export

MAX_CLI_LINES = 50


async def write_story(settings: Settings, args: argparse.Namespace) -> int:
    settings = with_model(settings, args.model)
    if args.story_model:
        settings = replace(settings, story=replace(settings.story, model=args.story_model))
    try:
        if not 1 <= args.lines <= MAX_CLI_LINES:
            raise StoryOptionError(f"--lines {args.lines} is out of range; choose "
                                   f"1-{MAX_CLI_LINES}.")
        seed = clean_line(args.seed, settings, option="seed")
        style = resolve_style(args.style, settings)
        title = clean_title(args.title, seed, settings)
    except StoryOptionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="greenheart-story-") as work:
        settings = replace(settings, storage=StorageSettings(
            database=Path(work) / "story.sqlite3", images=Path(work) / "images"))
        try:
            return await _write(settings, args, seed, style, title)
        except (ModelLoadError, DatabaseOpenError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1


async def _write(settings: Settings, args: argparse.Namespace, seed: str, style: str | None,
                 title: str) -> int:
    print(f"loading {settings.image.model} ...", file=sys.stderr)
    # open_services loads both models first: a missing one is reported with the loader's
    # advice, not as a failed line.
    async with open_services(settings) as services:
        stories, teller = services.stories, services.teller
        author = Author(0, _user_name())
        story, _ = await teller.start(seed=seed, title=title, style=style, author=author)
        try:
            _show(await teller.illustrate(story, 1, author, op="seed"))
            for _ in range(args.lines):
                _show(await teller.continue_story(story, author))
        except StoryError as exc:
            print(f"error: {exc.reason}", file=sys.stderr)
            return 1
        await stories.end(story.id)
        final = await stories.get(story.id)
        assert final is not None
        lines = await stories.lines(story.id)
        export = await asyncio.to_thread(build_export, final, lines)
        paths = await asyncio.to_thread(write_export, export, args.out)
    for path in paths[:2]:  # the HTML and the Markdown; images/ sits next to them
        print(path)
    return 0


def _show(line: StoryLine) -> None:
    note = f"  (no picture: {line.image_error})" if line.image_error else ""
    print(f"{line.number:>3}. {line.text}{note}", file=sys.stderr)


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "you"
