"""/imagine end to end: the real bot, discord.py unmodified, the Discord double over HTTP and
a websocket, tiny Stable Diffusion, a real SQLite file."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image

from bot.db.retention import DAY_S, sweep
from bot.executor.jobs import JobState
from bot.images.pnginfo import read_png_parameters
from testkit.discord_double.errors import missing_permissions
from testkit.discord_double.models import Message
from testkit.harness import BotHarness
from testkit.imagine import (
    ACK_DEADLINE_S,
    click,
    click_for_result,
    imagine,
    job_id_of,
)


def png_of(message: Message) -> tuple[Image.Image, Any]:
    data = message.attachments[0].data
    return Image.open(io.BytesIO(data)), read_png_parameters(data)


async def test_commands_are_synced_once(bot_harness: BotHarness) -> None:
    h = bot_harness
    names = {c["name"] for c in h.double.commands()}
    assert {"imagine", "queue", "cancel"} <= names
    syncs = h.double.sync_count
    await h.restart()
    assert h.double.sync_count == syncs  # unchanged commands are not synced again


async def test_imagine_acknowledges_shows_progress_and_posts_result(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    rec, result = await imagine(h, prompt="Oregon 💚 | watercolor", seed=7, count=2)
    ack = await rec.wait_ack()
    assert ack.type == 4 and "Oregon 💚" in ack.body["data"]["content"]
    status = await rec.wait_original(lambda m: m.content.startswith("✅"), timeout=10)
    assert "Done in" in status.content and str(result.id) in status.content
    assert status.components == []  # no cancel button once finished
    # The result: one grid with the parameters chunk, an embed, the buttons.
    grid, params = png_of(result)
    assert grid.size == (64 * 2 + 8, 64)
    assert params.seed == 7 and params.steps == 4 and "Oregon 💚" in params.prompt
    assert "watercolor" in params.prompt
    assert result.embeds[0]["image"]["url"].endswith(result.attachments[0].filename)
    job = job_id_of(result)
    ids = set(result.custom_ids)
    assert {f"gh:rr:{job}", f"gh:remix:{job}", f"gh:info:{job}", f"gh:del:{job}",
            f"gh:style:{job}", f"gh:star:{job}", f"gh:jny:{job}",
            f"gh:up:{job}:0", f"gh:up:{job}:1", f"gh:var:{job}:0", f"gh:var:{job}:1"} == ids
    assert "<@" in result.content and result.mention_user_ids == []  # shown, never pinged
    h.double.assert_clean()


async def test_each_button_makes_a_reply_with_its_own_buttons(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a lighthouse", seed=3, count=2)
    job = job_id_of(result)

    rerolled = await click_for_result(h, result, f"gh:rr:{job}")
    _, params = png_of(rerolled)
    assert params.seed not in (3, 4) and "lighthouse" in params.prompt

    upscaled = await click_for_result(h, result, f"gh:up:{job}:1")
    image, params = png_of(upscaled)
    assert image.size == (128, 128) and params.seed == 4
    assert not any(c.startswith("gh:up:") for c in upscaled.custom_ids)

    varied = await click_for_result(h, result, f"gh:var:{job}:0")
    assert len([c for c in varied.custom_ids if c.startswith("gh:var:")]) == 4
    assert "Variations" in varied.content

    restyled = await click_for_result(h, result, f"gh:style:{job}", values=["cyberpunk"])
    _, params = png_of(restyled)
    assert "neon" in params.prompt and params.seed == 3

    info = await click(h, result, f"gh:info:{job}")
    ack = await info.wait_ack()
    text = ack.body["data"]["content"]
    assert "Steps: 4" in text and "Seed: 3" in text and "Seed: 4" in text
    assert ack.body["data"]["flags"] & 64  # ephemeral
    h.double.assert_clean()


async def test_delete_is_for_the_author_or_moderators(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a cat", count=1)
    job = job_id_of(result)
    refused = await click(h, result, f"gh:del:{job}", user=h.world.bob)
    assert "Only the person who made this picture" in (await refused.wait_ack()).body[
        "data"]["content"]
    assert not h.double.world.messages[result.id].deleted
    # A button whose job is gone from the database says so plainly.
    assert h.services is not None
    await h.services.jobs.delete(job)
    gone = await click(h, result, f"gh:rr:{job}")
    assert "no longer stored" in (await gone.wait_ack()).body["data"]["content"]
    # Moderators may delete anyone's picture.
    await click(h, result, f"gh:del:{job}", user=h.world.mod)
    await h.double.wait_until(lambda: h.double.world.messages[result.id].deleted, 5, "deleted")
    h.double.assert_clean()


async def test_author_deletes_picture_and_its_files(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a dog", count=1)
    job = job_id_of(result)
    assert h.services is not None
    record = await h.services.jobs.get(job)
    assert record is not None and record.images[0].path.exists()
    await click(h, result, f"gh:del:{job}")
    await h.double.wait_until(lambda: h.double.world.messages[result.id].deleted, 5, "deleted")
    assert await h.services.jobs.get(job) is None
    assert not record.images[0].path.exists()


async def test_a_button_job_that_cannot_post_its_status_is_not_queued(
    bot_harness: BotHarness,
) -> None:
    """The bot lost Send Messages: the member is told, and nothing renders for nobody."""
    h = bot_harness
    _, result = await imagine(h, prompt="a lost kite", count=1)
    job = job_id_of(result)
    h.double.fail_next("POST", rf"^/channels/{h.studio_id}/messages$", missing_permissions())
    rec = await click(h, result, f"gh:rr:{job}")
    await rec.wait_ack(ACK_DEADLINE_S)
    [told] = await rec.wait_followups(1)
    assert told.ephemeral and "could not post in this channel" in told.content
    assert "Missing Permissions" in told.content and "nothing was queued" in told.content
    assert h.services is not None
    assert h.services.executor.snapshot() == []
    h.double.assert_clean()


async def test_buttons_work_after_a_restart(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a red barn", seed=11, count=2)
    job = job_id_of(result)
    await h.restart()
    upscaled = await click_for_result(h, result, f"gh:up:{job}:0")
    image, params = png_of(upscaled)
    assert image.size == (128, 128) and params.seed == 11
    h.double.assert_clean()


async def test_bad_options_are_refused_and_nothing_is_queued(bot_harness: BotHarness) -> None:
    h = bot_harness
    for options, message in [
        ({"prompt": "x", "steps": 50}, "steps = 50 is out of range; choose 1-20."),
        ({"prompt": "x", "style": "vaporwave"}, "vaporwave"),
        ({"prompt": "   "}, "prompt"),
    ]:
        rec = await h.slash("imagine", **options)
        ack = await rec.wait_ack()
        assert ack.body["data"]["flags"] & 64, options
        assert message in ack.body["data"]["content"], (options, ack.body["data"]["content"])
    assert h.services is not None
    async with h.services.db.execute("SELECT COUNT(*) FROM jobs") as cur:
        assert (await cur.fetchone())[0] == 0  # type: ignore[index]
    h.double.assert_clean()


async def test_style_autocomplete_offers_presets_and_all_styles(bot_harness: BotHarness) -> None:
    h = bot_harness
    choices = await h.double.autocomplete(h.guild_id, h.studio_id, int(h.world.alice.id),
                                          "imagine", {"prompt": "x", "style": "wa"},
                                          focused="style")
    assert choices[0]["name"] == "watercolor"
    choices = await h.double.autocomplete(h.guild_id, h.studio_id, int(h.world.alice.id),
                                          "imagine", {"prompt": "x", "style": "all"},
                                          focused="style")
    assert "all styles" in [c["name"] for c in choices]


async def test_all_styles_makes_one_labelled_gallery(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="Oregon 💚", style="all styles", seed=5)
    grid, params = png_of(result)
    assert params.seed == 5
    assert grid.width > 64 * 3 and grid.height > 64 * 2  # 7 presets in a 3×3 grid, captioned
    assert h.services is not None
    record = await h.services.jobs.get(job_id_of(result))
    assert record is not None
    assert [i.label for i in record.images] == [s.name for s in h.settings.image.styles]


async def test_queue_and_cancel(bot_harness: BotHarness) -> None:
    h = bot_harness
    rec = await h.slash("queue")
    assert "queue is empty" in (await rec.wait_ack()).body["data"]["content"]
    rec = await h.slash("cancel")
    assert "no queued or running jobs" in (await rec.wait_ack()).body["data"]["content"]


async def test_buttons_of_an_expired_picture_say_it_expired(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="an old postcard", count=1)
    job = job_id_of(result)
    for _ in range(500):  # the result's message id is stored just after its post
        record = await h.services.jobs.get(job)
        if record is not None and record.state is JobState.DELIVERED:
            break
        await asyncio.sleep(0.01)
    assert record is not None and record.state is JobState.DELIVERED
    assert record.finished_at is not None
    files = [i.path for i in record.images]
    keep_days = h.settings.storage.keep_days
    # The daily sweep, as it runs keep_days and a bit after the picture was made.
    counts = await sweep(h.services.db, h.settings.storage.images, keep_days,
                         record.finished_at + (keep_days + 1) * DAY_S)
    assert counts.jobs == 1 and not any(f.exists() for f in files)
    for custom_id in (f"gh:rr:{job}", f"gh:info:{job}", f"gh:var:{job}:0"):
        ack = await (await click(h, result, custom_id)).wait_ack()
        assert ack.body["data"]["content"] == (
            f"That picture is older than {keep_days} days and has expired, so this button "
            "can't do anything any more."), custom_id
        assert ack.body["data"]["flags"] & 64  # only the member who clicked sees it
    # Its author may still remove the post (🗑), as for a picture that is still stored.
    await click(h, result, f"gh:del:{job}")
    await h.double.wait_until(lambda: h.double.world.messages[result.id].deleted, 5, "deleted")
    h.double.assert_clean()
