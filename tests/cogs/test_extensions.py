"""Every cog extension loads by name into the real bot, and every slash command it adds fits
Discord's limits (Discord refuses the whole command sync if one of them does not)."""

from __future__ import annotations

import importlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_app
from bot.client import EXTENSIONS, GreenheartBot
from bot.config import settings_from_mapping
from bot.pipelines.tiny import TinyModelPaths

# Discord's rules for CHAT_INPUT commands (docs: Application Commands, and the OpenAPI spec).
NAME = re.compile(r"^[-_\w]{1,32}$")
MAX_DESCRIPTION = 100
MAX_OPTIONS = 25
MAX_CHOICES = 25
MAX_CHOICE_NAME = 100
MAX_COMBINED = 8000  # name + description + option/choice names, descriptions and values


def command_problems(command: dict[str, Any]) -> list[str]:
    """What in one command's JSON (as synced) breaks Discord's limits, by path."""
    problems: list[str] = []
    combined = 0

    def check(node: dict[str, Any], path: str) -> None:
        nonlocal combined
        name, description = str(node.get("name", "")), str(node.get("description", ""))
        combined += len(name) + len(description)
        if not NAME.match(name) or name != name.lower():
            problems.append(f"{path}: name {name!r} must be 1-32 lowercase letters, digits, - _")
        if not 1 <= len(description) <= MAX_DESCRIPTION:
            problems.append(f"{path}: description is {len(description)} characters; "
                            f"Discord allows 1-{MAX_DESCRIPTION}")
        options = node.get("options") or []
        if len(options) > MAX_OPTIONS:
            problems.append(f"{path}: {len(options)} options; Discord allows {MAX_OPTIONS}")
        for option in options:
            check(option, f"{path} {option.get('name')}")
        choices = node.get("choices") or []
        if len(choices) > MAX_CHOICES:
            problems.append(f"{path}: {len(choices)} choices; Discord allows {MAX_CHOICES}")
        for choice in choices:
            combined += len(str(choice["name"])) + len(str(choice["value"]))
            if not 1 <= len(str(choice["name"])) <= MAX_CHOICE_NAME:
                problems.append(f"{path}: choice {choice['name']!r} is not 1-"
                                f"{MAX_CHOICE_NAME} characters")

    check(command, f"/{command.get('name')}")
    if combined > MAX_COMBINED:
        problems.append(f"/{command.get('name')}: {combined} characters in all; Discord allows "
                        f"{MAX_COMBINED}")
    return problems


@pytest.fixture
async def unconnected_bot(tiny_models: TinyModelPaths, tmp_path: Path
                          ) -> AsyncIterator[GreenheartBot]:
    """The bot on real services (tiny models, a SQLite file) with no extension loaded and
    no connection: loading extensions needs neither Discord nor a token."""
    settings = settings_from_mapping({
        "discord": {"sync_commands": False},
        "image": {"model": str(tiny_models.image), "steps": 2},
        "story": {"model": str(tiny_models.story), "max_new_tokens": 8},
        "storage": {"database": str(tmp_path / "db.sqlite3"), "images": str(tmp_path / "img")},
    }, env={"DISCORD_TOKEN": "not-used"})
    async with open_app(settings, extensions=()) as bot:
        yield bot


async def test_every_extension_loads_by_name(unconnected_bot: GreenheartBot) -> None:
    bot = unconnected_bot
    for name in EXTENSIONS:
        await bot.load_extension(name)
    assert set(bot.extensions) == set(EXTENSIONS)
    assert {"Imagine", "Describe", "Story", "Queue", "Stats", "Settings", "Top",
            "Telephone"} <= set(bot.cogs)
    commands = {c.name for c in bot.tree.get_commands()}
    assert {"imagine", "describe", "story", "queue", "cancel", "stats", "settings",
            "top", "telephone"} <= commands
    # What the persistent buttons reach through interaction.client. Looked up after loading:
    # discord.py drops an extension's modules when a bot unloads it, so each load makes
    # fresh ones (and fresh keys).
    presenter = importlib.import_module("cogs.imagine.presenter").ImaginePresenter
    story_actions = importlib.import_module("cogs.story.actions").StoryActions
    assert isinstance(bot.part(importlib.import_module("cogs.imagine.buttons").ACTIONS),
                      presenter)
    assert isinstance(bot.part(importlib.import_module("cogs.story.buttons").ACTIONS),
                      story_actions)


async def test_every_command_fits_discords_limits(unconnected_bot: GreenheartBot) -> None:
    bot = unconnected_bot
    for name in EXTENSIONS:
        await bot.load_extension(name)
    payloads = [command.to_dict(bot.tree) for command in bot.tree.get_commands()]
    assert len(payloads) >= 4
    problems = [p for payload in payloads for p in command_problems(payload)]
    assert problems == []


def test_the_limit_check_finds_what_discord_refuses() -> None:
    command = {
        "name": "Imagine", "description": "x" * 101,
        "options": [{"name": "style", "description": "",
                     "choices": [{"name": "c" * 101, "value": "v"}] * 26}],
    }
    problems = command_problems(command)
    assert any("/Imagine: name" in p for p in problems)
    assert any("/Imagine: description is 101" in p for p in problems)
    assert any("/Imagine style: description is 0" in p for p in problems)
    assert any("26 choices" in p for p in problems)
    assert any("choice 'ccc" in p for p in problems)
    assert command_problems({"name": "ok", "description": "fine"}) == []
