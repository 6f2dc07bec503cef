"""/imagine with {a, b} permutations and repeat: one job each, all or none queued, each
counted against the member's limit, served fairly among members."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.images.pnginfo import read_png_parameters
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.models import Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import is_result
from testkit.slow_runner import slow_runner


@pytest.fixture
async def slow_bot(tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
                   discord_world: SeededWorld) -> AsyncIterator[BotHarness]:
    settings = harness_settings(tiny_models, tmp_path, discord_double,
                                image={"steps": 6, "max_permutations": 4},
                                executor={"batch_limit": 1})
    harness = BotHarness(discord_double, discord_world, settings, runner_factory=slow_runner)
    await harness.start()
    yield harness
    await harness.stop()


def results(h: BotHarness) -> list[Message]:
    return [m for m in h.double.channel_messages(h.studio_id) if is_result(m)]


async def wait_results(h: BotHarness, count: int) -> list[Message]:
    await h.double.wait_until(lambda: len(results(h)) >= count, 120, f"{count} results")
    await asyncio.sleep(0.5)
    return results(h)


def prompt_of(message: Message) -> str:
    info = read_png_parameters(message.attachments[0].data)
    assert info is not None
    return info.prompt


async def test_over_the_cap_or_the_limit_nothing_is_queued(slow_bot: BotHarness) -> None:
    h = slow_bot
    rec = await h.slash("imagine", prompt="{a, b, c} {fox, owl}", count=1)
    text = (await rec.wait_ack()).body["data"]["content"]
    assert "make 6 prompts; at most 4" in text and "image.max_permutations" in text
    rec = await h.slash("imagine", prompt="{a, b} fox", count=1, repeat=3)
    text = (await rec.wait_ack()).body["data"]["content"]
    assert "repeat = 3 with 2 prompt(s) would make 6 jobs; at most 4" in text
    rec = await h.slash("imagine", prompt="{red, green, blue, pink} fox", count=1)
    text = (await rec.wait_ack()).body["data"]["content"]
    assert "makes 4 jobs, but you can queue 3 more now" in text and "nothing was queued" in text
    rec = await h.slash("imagine", prompt="{red, green fox", count=1)
    assert "never closed" in (await rec.wait_ack()).body["data"]["content"]
    await asyncio.sleep(0.5)
    assert h.services.executor.snapshot() == []


async def test_each_prompt_is_a_job_and_members_are_served_in_turn(
        slow_bot: BotHarness) -> None:
    h, world = slow_bot, slow_bot.world
    busy = await h.slash("imagine", user=world.mod, prompt="the GPU is busy", count=1)
    await busy.wait_ack()
    many = await h.slash("imagine", prompt="a {red, green} fox", count=1, seed=7)
    ack = (await many.wait_ack()).body["data"]["content"]
    assert "1 of 2 jobs from this prompt" in ack
    other = await h.slash("imagine", user=world.bob, prompt="bob's owl", count=1)
    await other.wait_ack()

    done = await wait_results(h, 4)
    assert len(done) == 4
    order = [prompt_of(m) for m in done]
    assert order[0].startswith("the GPU is busy")
    # Round-robin: bob's one job goes before alice's second.
    assert [p.split(",")[0] for p in order[1:]] == ["a red fox", "bob's owl", "a green fox"]
    seeds = {read_png_parameters(m.attachments[0].data).seed  # type: ignore[union-attr]
             for m in done if "fox" in prompt_of(m)}
    assert seeds == {7}, "the prompts of one round share the seed"


async def test_repeat_queues_new_seeds(slow_bot: BotHarness) -> None:
    h = slow_bot
    rec = await h.slash("imagine", prompt="a patient heron", count=1, repeat=2, seed=100)
    await rec.wait_ack()
    done = await wait_results(h, 2)
    seeds = sorted(read_png_parameters(m.attachments[0].data).seed  # type: ignore[union-attr]
                   for m in done)
    assert seeds == [100, 101]
