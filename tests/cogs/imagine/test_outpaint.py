"""🔍 Zoom out and ⬅️ ➡️ ⬆️ ⬇️ pan end to end: the real bot against the Discord double, the
tiny model inpainting the border, a real SQLite file."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.images.lifecycle import ImageJobError
from bot.images.outpaint import Outpaint
from bot.images.pnginfo import read_png_parameters
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.models import Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import ACK_DEADLINE_S, click, click_for_result, imagine, job_id_of

PANS = {"left": "panl", "right": "panr", "up": "panu", "down": "pand"}


def picture_of(message: Message) -> tuple[np.ndarray, Any]:
    data = message.attachments[0].data
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return pixels, read_png_parameters(data)


def rows(message: Message) -> list[list[str]]:
    return [[c.get("custom_id", "") for c in row.get("components", [])]
            for row in message.components]


async def test_zoom_out_of_an_upscale_keeps_its_centre_on_a_bigger_canvas(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a lighthouse", seed=3, count=2)
    upscaled = await click_for_result(h, result, f"gh:up:{job_id_of(result)}:0")
    up = job_id_of(upscaled)
    # An upscale: 🖌️ ℹ️ 🗑️, then the zooms and the pans on rows of their own, ⭐ last.
    assert rows(upscaled) == [
        [f"gh:remix:{up}", f"gh:info:{up}", f"gh:del:{up}"],
        [f"gh:zoom15:{up}:0", f"gh:zoom2:{up}:0"],
        [f"gh:panl:{up}:0", f"gh:panr:{up}:0", f"gh:panu:{up}:0", f"gh:pand:{up}:0"],
        [f"gh:star:{up}"],
    ]
    labels = {b["custom_id"]: (b.get("emoji", {}).get("name"), b.get("label"))
              for b in upscaled.buttons()}
    assert labels[f"gh:zoom2:{up}:0"] == ("🔍", "Zoom out 2×")
    assert labels[f"gh:panl:{up}:0"] == ("⬅️", None)
    original, _ = picture_of(upscaled)
    assert original.shape == (128, 128, 3)
    await h.restart()  # persistent buttons: the job is named in the custom_id
    zoomed = await click_for_result(h, upscaled, f"gh:zoom2:{up}:0")
    pixels, params = picture_of(zoomed)
    assert pixels.shape == (256, 256, 3)
    blur = int(params.extra["Mask blur"])
    centre = pixels[64 + blur:192 - blur, 64 + blur:192 - blur]
    assert np.abs(centre - original[blur:-blur, blur:-blur]).max() <= 1
    assert params.seed == 3 and "lighthouse" in params.prompt
    assert params.extra["Zoom out"] == "2" and params.extra["Denoising strength"] == "1"
    assert "Zoomed out 2×" in zoomed.content
    # The result of a zoom is one picture with every button, so it can be zoomed again.
    z = job_id_of(zoomed)
    assert rows(zoomed)[0] == [f"gh:rr:{z}", f"gh:remix:{z}", f"gh:info:{z}", f"gh:del:{z}"]
    assert rows(zoomed)[1:3] == [
        [f"gh:up:{z}:0", f"gh:zoom15:{z}:0", f"gh:zoom2:{z}:0"],
        [f"gh:var:{z}:0", f"gh:panl:{z}:0", f"gh:panr:{z}:0", f"gh:panu:{z}:0",
         f"gh:pand:{z}:0"],
    ]
    assert f"gh:style:{z}" in zoomed.custom_ids
    # Its status message showed the work: queued, then progress, then done.
    def finished_status() -> Message | None:
        return next((m for m in h.double.channel_messages(h.studio_id) if m.content.startswith(
            "✅ Zooming out 2×: image 1 of **a lighthouse**")), None)

    await h.double.wait_until(lambda: finished_status() is not None, 10, "the status")
    status = finished_status()
    assert status is not None and status.edits >= 2 and str(zoomed.id) in status.content
    h.double.assert_clean()


async def test_every_pan_keeps_the_picture_on_its_side(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a long road", seed=9, count=1)
    job = job_id_of(result)
    assert f"gh:zoom2:{job}:0" in rows(result)[1] and f"gh:panl:{job}:0" in rows(result)[2]
    original, _ = picture_of(result)
    assert original.shape == (64, 64, 3)
    where = {"left": (32, 0, (64, 96)), "right": (0, 0, (64, 96)),
             "up": (0, 32, (96, 64)), "down": (0, 0, (96, 64))}
    for direction, action in PANS.items():
        panned = await click_for_result(h, result, f"gh:{action}:{job}:0")
        pixels, params = picture_of(panned)
        x, y, shape = where[direction]
        assert pixels.shape[:2] == shape, direction
        assert params.extra["Pan"] == direction and f"Panned {direction}" in panned.content
        placed = pixels[y:y + 64, x:x + 64]
        blur = int(params.extra["Mask blur"])
        keep = {"left": np.s_[:, blur:], "right": np.s_[:, :-blur], "up": np.s_[blur:, :],
                "down": np.s_[:-blur, :]}[direction]
        assert np.abs(placed[keep] - original[keep]).max() <= 1, direction
    h.double.assert_clean()


async def test_zoom_and_pan_buttons_only_on_a_single_picture(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="two moons", count=2)
    assert not any(c.startswith(("gh:zoom", "gh:pan")) for c in result.custom_ids)
    # Should a click name one anyway (an old message, a hand-made id), it is refused in words.
    assert h.services is not None
    record = await h.services.jobs.get(job_id_of(result))
    assert record is not None
    with pytest.raises(ImageJobError, match="single picture: press its U button first"):
        await h.services.images.outpainted(record, 0, Outpaint(zoom=2.0))


async def test_a_gone_picture_says_so(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a paper boat", count=1)
    job = job_id_of(result)
    assert h.services is not None
    record = await h.services.jobs.get(job)
    assert record is not None
    record.images[0].path.unlink()
    ack = await (await click(h, result, f"gh:panr:{job}:0")).wait_ack(ACK_DEADLINE_S)
    assert ack.body["data"]["flags"] & 64 and "file is gone" in ack.body["data"]["content"]
    await h.services.jobs.delete(job)
    ack = await (await click(h, result, f"gh:zoom15:{job}:0")).wait_ack(ACK_DEADLINE_S)
    assert "no longer stored" in ack.body["data"]["content"]
    assert h.services.executor.snapshot() == []
    h.double.assert_clean()


@pytest.fixture
async def small_bot(tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
                    discord_world: SeededWorld) -> AsyncIterator[BotHarness]:
    settings = harness_settings(tiny_models, tmp_path, discord_double,
                                image={"max_side": 64})
    harness = BotHarness(discord_double, discord_world, settings)
    await harness.start()
    yield harness
    await harness.stop()


async def test_at_max_side_a_pan_is_refused_and_a_zoom_shrinks_to_fit(
    small_bot: BotHarness,
) -> None:
    h = small_bot
    _, result = await imagine(h, prompt="a tall tower", seed=4, count=1)
    job = job_id_of(result)
    rec = await click(h, result, f"gh:panl:{job}:0")
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    text = ack.body["data"]["content"]
    assert ack.body["data"]["flags"] & 64  # only the member who clicked sees it
    assert "Panning left would make this 64×64 picture 96×64" in text
    assert "image.max_side (64 px)" in text and "Nothing was queued" in text
    assert h.services is not None and h.services.executor.snapshot() == []
    # A zoom fits: the whole view is scaled down into the same 64×64.
    zoomed = await click_for_result(h, result, f"gh:zoom2:{job}:0")
    pixels, params = picture_of(zoomed)
    assert pixels.shape == (64, 64, 3) and params.extra["Zoom out"] == "2"
    h.double.assert_clean()
