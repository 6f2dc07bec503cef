"""The style sweep's gallery: each preset's picture attached with its own PNG info beside
the labelled grid, the styles listed, U and V picked by style; more presets than one
message holds go on in replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.images.pnginfo import read_png_parameters
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import imagine, is_result, job_id_of

STYLES = {f"style{n:02d}": {"phrase": f"phrase {n}"} for n in range(1, 13)}


async def test_each_preset_is_its_own_file_and_u_v_pick_by_style(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="Oregon 💚", style="all styles", seed=5)
    names = [s.name for s in h.settings.image.styles]
    grid, *pictures = result.attachments
    assert grid.filename.startswith("greenheart-")
    assert len(pictures) == len(names) == 7
    for n, (picture, name) in enumerate(zip(pictures, names, strict=True), start=1):
        info = read_png_parameters(picture.data)
        assert info is not None and info.extra["Style"] == name, (picture.filename, info)
        assert picture.filename.startswith(f"{n}-")
    styles = next(f for f in result.embeds[0]["fields"] if f["name"] == "Styles")["value"]
    assert all(name in styles for name in names)

    # U picks a picture by its style: the upscale is of that picture.
    job = job_id_of(result)
    assert f"gh:pickup:{job}" in result.custom_ids and f"gh:up:{job}:0" not in result.custom_ids
    seen = {m.id for m in h.double.channel_messages(result.channel_id)}
    rec = await h.double.select(h.guild_id, result.channel_id, int(h.world.alice.id),
                                result.id, f"gh:pickup:{job}", ["2"])
    await rec.wait_ack()
    upscaled = await h.double.wait_for_message(
        lambda m: m.id not in seen and is_result(m), timeout=60)
    record = await h.services.jobs.get(job_id_of(upscaled))
    assert record is not None and record.job.params.source_index == 2  # type: ignore[union-attr]
    assert record.job.params.style == names[2]  # type: ignore[union-attr]


@pytest.fixture
async def many_styles(tiny_models: TinyModelPaths, tmp_path: Path,
                      discord_double: DiscordDouble, discord_world: SeededWorld
                      ) -> AsyncIterator[BotHarness]:
    settings = harness_settings(tiny_models, tmp_path, discord_double,
                                image={"styles": STYLES, "max_sweep": 12, "steps": 2},
                                story={"style": "style01"})
    harness = BotHarness(discord_double, discord_world, settings)
    await harness.start()
    yield harness
    await harness.stop()


async def test_more_presets_than_one_message_holds_go_on_in_a_reply(
        many_styles: BotHarness) -> None:
    h = many_styles
    _, result = await imagine(h, prompt="a lantern", style="all styles", seed=9)
    assert len(result.attachments) == 10  # the grid and nine pictures
    more = await h.double.wait_for_message(
        lambda m: str((m.message_reference or {}).get("message_id")) == str(result.id)
        and "More styles" in m.content, timeout=60)
    assert [a.filename.split("-")[0] for a in more.attachments] == ["10", "11", "12"]
    info = read_png_parameters(more.attachments[-1].data)
    assert info is not None and info.extra["Style"] == "style12"
    await asyncio.sleep(0.5)
    assert len([m for m in h.double.channel_messages(h.studio_id)
                if "More styles" in m.content]) == 1, "posted once"
