"""The main job as `python -m bot` runs it: `serve` honours api_base and gateway_url from the
config, connects, syncs its commands and answers /imagine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord
import discord.gateway
import discord.http

from bot.app import serve
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import harness_settings
from testkit.imagine import ACK_BUDGET_S, ACK_DEADLINE_S, is_result


async def test_serve_runs_the_bot_where_the_config_points(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    discord_world: SeededWorld,
) -> None:
    settings = harness_settings(tiny_models, tmp_path, discord_double)
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    task = asyncio.create_task(serve(settings))
    try:
        await discord_double.wait_until(lambda: discord_double.sync_count >= 1, 60, "sync")
        await discord_double.wait_until_identified(1, timeout=10)
        rec = await discord_double.invoke_slash(
            int(discord_world.guild.id), int(discord_world.studio.id),
            int(discord_world.alice.id), "imagine", options={"prompt": "a kite", "count": 1})
        assert (await rec.wait_ack(ACK_DEADLINE_S)).latency < ACK_BUDGET_S
        await discord_double.wait_for_message(is_result, timeout=60)
        assert settings.storage.database.exists()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
    discord_double.assert_clean()
