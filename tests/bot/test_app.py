"""The main job as `python -m bot` runs it: `serve` honours api_base and gateway_url from the
config, connects, syncs its commands and answers /imagine."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import discord
import discord.gateway
import discord.http
import pytest

from bot.app import WorkerStuck, serve
from bot.client import GreenheartBot
from bot.config import load_settings
from bot.db.connection import open_database
from bot.pipelines.tiny import TinyModelPaths
from testkit.crashing_bot import CRASH_EXIT_CODE
from testkit.discord_double import DiscordDouble
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import ACK_BUDGET_S, ACK_DEADLINE_S, is_result, job_id_of

ROOT = Path(__file__).resolve().parents[2]


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


def _config_file(tmp: Path, tiny: TinyModelPaths, double: DiscordDouble, **executor: float
                 ) -> Path:
    extra = "".join(f"{key} = {value}\n" for key, value in executor.items())
    path = tmp / "config.toml"
    path.write_text(
        f'[discord]\napi_base = "{double.api_base}"\ngateway_url = "{double.gateway_url}"\n'
        "status_edit_interval = 0.5\n"
        f'[image]\nmodel = "{tiny.image}"\nsteps = 80\nmax_steps = 80\n'
        f'[story]\nmodel = "{tiny.story}"\nmax_new_tokens = 8\n'
        f'[storage]\ndatabase = "{tmp / "db.sqlite3"}"\nimages = "{tmp / "images"}"\n'
        f"[executor]\n{extra}", encoding="utf-8")
    return path


async def _spawn(double: DiscordDouble, *args: str, output: bool = False
                 ) -> asyncio.subprocess.Process:
    """`python -m ARGS` as the bot's own process, pointed at the double's token."""
    env = {**os.environ, "DISCORD_TOKEN": double.token, "HF_HUB_OFFLINE": "1",
           "PYTHONUNBUFFERED": "1"}
    out = asyncio.subprocess.PIPE if output else asyncio.subprocess.DEVNULL
    return await asyncio.create_subprocess_exec(sys.executable, "-m", *args, cwd=ROOT, env=env,
                                                stdout=out, stderr=out)


async def _sigterm_mid_run(config: Path, double: DiscordDouble, world: SeededWorld,
                           prompt: str, count: int, exit_within_s: float
                           ) -> tuple[Any, int | None, str]:
    """Start `python -m bot`, run /imagine, SIGTERM it once the job is running; returns the
    interaction, the exit code and what the bot logged."""
    bot = await _spawn(double, "bot", "--config", str(config), output=True)
    try:
        await double.wait_until_identified(1, timeout=120)
        rec = await double.invoke_slash(
            int(world.guild.id), int(world.studio.id), int(world.alice.id), "imagine",
            options={"prompt": prompt, "count": count})
        await rec.wait_ack(ACK_DEADLINE_S)
        await rec.wait_original(lambda m: "▰" in m.content, timeout=60)  # it is running
        bot.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(bot.communicate(), exit_within_s)
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    return rec, bot.returncode, stderr.decode(errors="replace")


async def _job_rows(database: Path, columns: str) -> list[tuple[Any, ...]]:
    db = await open_database(database)
    try:
        async with db.execute(f"SELECT {columns} FROM jobs") as cur:
            return [tuple(r) for r in await cur.fetchall()]
    finally:
        await db.close()


async def test_sigterm_is_a_clean_stop_and_the_job_continues_after_it(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    discord_world: SeededWorld,
) -> None:
    config = _config_file(tmp_path, tiny_models, discord_double, stop_grace_s=0.2)
    rec, returncode, log = await _sigterm_mid_run(config, discord_double, discord_world,
                                                  "a long kite", 2, exit_within_s=60)
    assert returncode == 0, log
    assert "Traceback" not in log and "stopped cleanly" in log
    assert not [m for m in discord_double.channel_messages(int(discord_world.studio.id))
                if is_result(m)]
    # Interrupted at a step, queued again, and the attempt not counted.
    assert await _job_rows(tmp_path / "db.sqlite3", "state, attempts") == [("queued", 0)]
    # The next start finishes it in its old status message, once.
    settings = load_settings(config, env={"DISCORD_TOKEN": discord_double.token})
    harness = BotHarness(discord_double, discord_world, settings)
    await harness.start()
    try:
        status = await rec.wait_original(lambda m: m.content.startswith("✅"), timeout=120)
    finally:
        await harness.stop()
    results = [m for m in discord_double.channel_messages(int(discord_world.studio.id))
               if is_result(m)]
    assert len(results) == 1 and str(results[0].id) in status.content


async def test_a_worker_that_never_comes_back_ends_serve_with_an_error(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = harness_settings(tiny_models, tmp_path, discord_double)
    bots: list[GreenheartBot] = []
    real_init = GreenheartBot.__init__

    def remember(self: GreenheartBot, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        bots.append(self)  # serve builds its bot inside: keep a hand on it

    monkeypatch.setattr(GreenheartBot, "__init__", remember)
    task = asyncio.create_task(serve(settings))
    await discord_double.wait_until_identified(1, timeout=60)
    bots[0].services.executor.stuck.set()  # what the watchdog does when the worker hangs
    with pytest.raises(WorkerStuck, match="did not come back"):
        await asyncio.wait_for(task, 30)


async def test_sigterm_lets_the_running_batch_finish_and_posts_it_before_exit(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    discord_world: SeededWorld,
) -> None:
    config = _config_file(tmp_path, tiny_models, discord_double, stop_grace_s=120)
    _, returncode, log = await _sigterm_mid_run(config, discord_double, discord_world,
                                                "a last kite", 1, exit_within_s=150)
    assert returncode == 0, log
    results = [m for m in discord_double.channel_messages(int(discord_world.studio.id))
               if is_result(m)]
    assert len(results) == 1, log  # posted before the bot disconnected
    assert await _job_rows(tmp_path / "db.sqlite3", "state, message_id") == [
        ("delivered", results[0].id)]


async def test_a_poison_job_that_kills_the_bot_fails_alone_and_its_batch_mates_finish(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    discord_world: SeededWorld,
) -> None:
    """testkit.crashing_bot kills its whole process (os._exit) when a batch holds a poison
    picture: the batch-mates must not go down with it twice, and the poison job must not
    take the bot down forever."""
    config = _config_file(tmp_path, tiny_models, discord_double)
    guild, studio = int(discord_world.guild.id), int(discord_world.studio.id)

    async def start() -> asyncio.subprocess.Process:
        return await _spawn(discord_double, "testkit.crashing_bot", str(config))

    async def imagine(user: Any, prompt: str, **options: Any) -> Any:
        rec = await discord_double.invoke_slash(guild, studio, int(user.id), "imagine",
                                                options={"prompt": prompt, **options})
        await rec.wait_ack(ACK_DEADLINE_S)
        return rec

    def results_for(prompt: str) -> int:
        return sum(1 for m in discord_double.channel_messages(studio)
                   if is_result(m) and prompt in m.content)

    bot = await start()
    try:
        await discord_double.wait_until_identified(1, timeout=120)
        # A long job first: the three below wait behind it and then run as one batch.
        blocker = await imagine(discord_world.alice, "a slow blocker", count=1)
        await blocker.wait_original(lambda m: "▰" in m.content, timeout=60)
        poison = await imagine(discord_world.alice, "a poison kite", count=1, steps=4)
        await imagine(discord_world.bob, "mate one", count=1, steps=4)
        await imagine(discord_world.mod, "mate two", count=1, steps=4)
        assert await asyncio.wait_for(bot.wait(), 120) == CRASH_EXIT_CODE  # the batch ran
        # Second life: the three recovered jobs run alone; the poison one crashes it again.
        bot = await start()
        assert await asyncio.wait_for(bot.wait(), 180) == CRASH_EXIT_CODE
        # Third life: the poison job fails alone, with its reason; its batch-mates finish.
        bot = await start()
        status = await poison.wait_original(lambda m: m.content.startswith("❌"), timeout=180)
        assert "restarted twice" in status.content
        await discord_double.wait_until(
            lambda: results_for("mate one") and results_for("mate two"), 120, "the mates")
    finally:
        if bot.returncode is None:
            bot.terminate()
            await asyncio.wait_for(bot.wait(), 60)
    assert (results_for("a slow blocker"), results_for("mate one"),
            results_for("mate two"), results_for("a poison kite")) == (1, 1, 1, 0)


async def test_a_bot_killed_while_its_result_post_waits_for_an_answer_posts_it_once(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    discord_world: SeededWorld,
) -> None:
    """SIGKILL after Discord created the result message but before the bot heard back: the
    bot never stored the message, so it delivers again at the next start; the nonce makes
    Discord return the same message instead of a twin."""
    config = _config_file(tmp_path, tiny_models, discord_double)
    studio = int(discord_world.studio.id)
    release = discord_double.hold_next("POST", r"^/channels/\d+/messages$")
    bot = await _spawn(discord_double, "bot", "--config", str(config))
    try:
        await discord_double.wait_until_identified(1, timeout=120)
        rec = await discord_double.invoke_slash(
            int(discord_world.guild.id), studio, int(discord_world.alice.id), "imagine",
            options={"prompt": "a kite in a power cut", "count": 1, "steps": 4})
        await rec.wait_ack(ACK_DEADLINE_S)
        await discord_double.wait_for_message(is_result, timeout=120)  # created, answer held
        bot.kill()
        await bot.wait()
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
        release.set()
    settings = load_settings(config, env={"DISCORD_TOKEN": discord_double.token})
    harness = BotHarness(discord_double, discord_world, settings)
    await harness.start()
    try:
        status = await rec.wait_original(lambda m: m.content.startswith("✅"), timeout=120)
        results = [m for m in discord_double.channel_messages(studio) if is_result(m)]
        assert len(results) == 1 and str(results[0].id) in status.content
        record = await harness.services.jobs.get(job_id_of(results[0]))
        assert record is not None and record.state.value == "delivered"
        assert record.message_id == results[0].id
    finally:
        await harness.stop()
