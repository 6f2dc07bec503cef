"""The real bot (services, executor, tiny models, SQLite file) against the Discord double,
wired by the same composition root as the main job (`bot.app.open_app`). Used by the tests
and the benches.

`BotHarness.restart()` stops the bot and its services and starts new ones on the same
database and image folder, as a process restart would.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app import build_runner, open_app
from bot.client import GreenheartBot
from bot.config import Settings, settings_from_mapping
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths
from bot.services import Services
from testkit.discord_double import DiscordDouble
from testkit.discord_double.seeding import SeededWorld, connect_client


def harness_settings(
    tiny: TinyModelPaths, tmp: Path, double: DiscordDouble, **overrides: dict[str, Any]
) -> Settings:
    raw: dict[str, dict[str, Any]] = {
        "discord": {"api_base": double.api_base, "gateway_url": double.gateway_url,
                    "status_edit_interval": 0.5},
        "image": {"model": str(tiny.image), "steps": 4, "max_steps": 20},
        "story": {"model": str(tiny.story), "max_new_tokens": 16, "steps": 2},
        "storage": {"database": str(tmp / "greenheart.sqlite3"), "images": str(tmp / "images")},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return settings_from_mapping(raw, env={"DISCORD_TOKEN": double.token})


@dataclass
class BotHarness:
    double: DiscordDouble
    world: SeededWorld
    settings: Settings
    runner_factory: Callable[[Settings], ModelRunner] = build_runner
    _bot: GreenheartBot | None = None
    _stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self) -> None:
        stack = contextlib.AsyncExitStack()
        try:
            bot = await stack.enter_async_context(open_app(
                self.settings, self.runner_factory(self.settings), guild_ready_timeout=0.1))
            await stack.enter_async_context(connect_client(self.double, bot))
        except BaseException:
            await stack.aclose()
            raise
        self._bot, self._stack = bot, stack

    async def stop(self) -> None:
        await self._stack.aclose()
        self._bot = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def bot(self) -> GreenheartBot:
        if self._bot is None:
            raise RuntimeError("the bot is not running (start() first)")
        return self._bot

    @property
    def services(self) -> Services:
        return self.bot.services

    @property
    def guild_id(self) -> int:
        return int(self.world.guild.id)

    @property
    def studio_id(self) -> int:
        return int(self.world.studio.id)

    async def slash(self, name: str, user: Any = None, channel_id: int | None = None,
                    **options: Any) -> Any:
        user = user or self.world.alice
        return await self.double.invoke_slash(
            self.guild_id, channel_id or self.studio_id, int(user.id), name,
            options={k: v for k, v in options.items() if v is not None})
