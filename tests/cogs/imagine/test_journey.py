"""🎞 The journey end to end: the real bot against the Discord double, the tiny model
re-rendering a picture with a frame per step, the animated WebP posted, a step kept as a
picture of its own with its PNG info."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from bot.executor.jobs import ImageMode, JobState
from bot.images.journey import FRAME_MS, LAST_FRAME_MS
from bot.images.pnginfo import read_png_parameters
from bot.images.upload import DISCORD_UPLOAD_LIMIT
from testkit.discord_double.models import Message
from testkit.harness import BotHarness
from testkit.imagine import (
    ACK_BUDGET_S,
    ACK_DEADLINE_S,
    click_for_result,
    imagine,
    is_result,
    job_id_of,
)


def rows(message: Message) -> list[list[str]]:
    return [[c.get("custom_id", "") for c in row.get("components", [])]
            for row in message.components]


def menu(message: Message, custom_id: str) -> dict[str, Any]:
    found = message.component(custom_id)
    assert found is not None, message.custom_ids
    return found


def webp_frames(message: Message) -> tuple[Image.Image, list[np.ndarray], int]:
    """The WebP, its frames decoded, and its total duration in ms."""
    image = Image.open(io.BytesIO(message.attachments[0].data))
    frames, duration = [], 0
    for frame in ImageSequence.Iterator(image):
        frames.append(np.asarray(frame.convert("RGB"), dtype=np.float64))  # loads it
        duration += int(frame.info["duration"])
    return image, frames, duration


async def test_a_picture_s_journey_and_a_step_kept_with_its_png_info(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a lighthouse at dawn", seed=11, steps=12,
                              count=1)
    job = job_id_of(result)
    assert f"gh:jny:{job}" in rows(result)[4]  # 🎞 on row 4, beside ⭐
    original = np.asarray(Image.open(io.BytesIO(result.attachments[0].data)).convert("RGB"),
                          dtype=np.float64)

    journey = await click_for_result(h, result, f"gh:jny:{job}")
    j = job_id_of(journey)
    # The WebP: one frame per step (12 ≤ 25), looping, under the limit, the picture last.
    attachment = journey.attachments[0]
    assert attachment.filename == f"greenheart-{j}.webp"
    assert len(attachment.data) <= DISCORD_UPLOAD_LIMIT
    image, frames, duration = webp_frames(journey)
    assert image.format == "WEBP" and image.is_animated
    # Each step a frame; libwebp merges the last ones when they differ by less than it shows
    # (adding their time to the frame before), so none of the time is lost.
    assert 10 <= image.n_frames <= 12
    assert duration == 11 * FRAME_MS + LAST_FRAME_MS
    # Lossy WebP of the tiny model's noisy pictures: the last frame is nearer the picture.
    assert np.abs(frames[0] - original).mean() > np.abs(frames[-1] - original).mean() + 5
    assert "The journey of" in journey.content and "a lighthouse at dawn" in journey.content
    assert journey.embeds[0]["image"]["url"].endswith(f"/{attachment.filename}")
    # Its buttons: ℹ️ 🗑️, the keep menu, ⭐; nothing that would render it again.
    assert rows(journey)[0] == [f"gh:info:{j}", f"gh:del:{j}"]
    assert rows(journey)[1] == [f"gh:keep:{j}"]
    assert not any(c.startswith(("gh:rr:", "gh:up:", "gh:var:", "gh:jny:"))
                   for c in journey.custom_ids)
    options = menu(journey, f"gh:keep:{j}")["options"]
    assert [o["label"] for o in options][:2] == ["Step 1 of 12", "Step 2 of 12"]
    assert options[-1]["label"] == "Step 12 of 12 (the finished picture)"
    # Its record: twelve frames, each a PNG whose info names its step.
    record = await h.services.jobs.get(j)
    assert record is not None and record.job.params.mode is ImageMode.JOURNEY
    assert [i.label for i in record.images] == [f"step {n}/12" for n in range(1, 13)]
    last = np.asarray(Image.open(record.images[-1].path).convert("RGB"), dtype=np.float64)
    assert np.array_equal(last, original)  # the re-render is the picture itself
    fifth = read_png_parameters(record.images[4].path.read_bytes())
    assert fifth is not None and fifth.steps == 5 and fifth.seed == 11

    await h.restart()  # the keep menu holds only the job id
    kept = await click_for_result(h, journey, f"gh:keep:{j}", values=["4"])
    k = job_id_of(kept)
    params = read_png_parameters(kept.attachments[0].data)
    assert params is not None and params.steps == 5 and params.seed == 11
    assert params.extra["Journey"] == "step 5/12" and "lighthouse" in params.prompt
    frame = Image.open(record.images[4].path).convert("RGB")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(kept.attachments[0].data))
                                     .convert("RGB")), np.asarray(frame))  # the frame itself
    assert kept.content.startswith("🎞️ Step 5/12 of **a lighthouse at dawn**")
    # A picture of its own: every button of a one-picture result.
    assert {f"gh:rr:{k}", f"gh:up:{k}:0", f"gh:var:{k}:0", f"gh:info:{k}",
            f"gh:jny:{k}"} <= set(kept.custom_ids)
    stored = await h.services.jobs.get(k)
    assert stored is not None and stored.state is JobState.DELIVERED
    assert stored.message_id == kept.id and stored.job.params.mode is ImageMode.TXT2IMG
    assert stored.job.params.steps == 12  # what renders the picture it became


async def test_a_result_of_several_pictures_asks_which_picture(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a red fox", seed=20, count=2, steps=6)
    job = job_id_of(result)
    rec = await h.double.click_button(h.guild_id, result.channel_id, int(h.world.alice.id),
                                      result.id, f"gh:jny:{job}")
    assert (await rec.wait_ack(ACK_DEADLINE_S)).latency < ACK_BUDGET_S
    ask = await rec.wait_original()
    assert ask.ephemeral and "which picture" in ask.content
    options = menu(ask, f"gh:jnypick:{job}")["options"]
    assert [o["value"] for o in options] == ["0", "1"]

    seen = {m.id for m in h.double.channel_messages(result.channel_id)}
    pick = await h.double.select(h.guild_id, ask.channel_id, int(h.world.alice.id), ask.id,
                                 f"gh:jnypick:{job}", ["1"])
    assert (await pick.wait_ack(ACK_DEADLINE_S)).latency < ACK_BUDGET_S
    # The journey of picture 2 answers the result (not the menu only alice saw).
    journey = await h.double.wait_for_message(
        lambda m: m.id not in seen and is_result(m)
        and str((m.message_reference or {}).get("message_id")) == str(result.id), timeout=60)
    assert "(image 2)" in journey.content and not journey.ephemeral
    image, _, _ = webp_frames(journey)
    assert 5 <= image.n_frames <= 6
    record = await h.services.jobs.get(job_id_of(journey))
    assert record is not None and record.job.params.seeds == (21,)  # picture 2's own seed


async def test_no_journey_for_a_two_stage_picture(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a tower", seed=3, count=1)
    upscaled = await click_for_result(h, result, f"gh:up:{job_id_of(result)}:0")
    assert not any(c.startswith("gh:jny:") for c in upscaled.custom_ids)
