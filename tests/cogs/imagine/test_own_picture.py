"""/imagine image: a member's own picture, rendered img2img; anything that is not a usable
picture is refused clearly, before anything is queued."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from bot.images.pnginfo import read_png_parameters
from testkit.harness import BotHarness
from testkit.imagine import ACK_DEADLINE_S, is_result


def png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 30, 60),
        mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else 0).save(buffer, format="PNG")
    return buffer.getvalue()


def sideways_jpeg() -> bytes:
    """A 40×100 picture stored as 100×40 with EXIF orientation 6 (rotate 90° to view)."""
    img = Image.new("RGB", (100, 40), (20, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


async def refusal_of(h: BotHarness, **options: object) -> str:
    rec = await h.slash("imagine", prompt="a fox", count=1, **options)
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    data = ack.body.get("data") or {}
    if data.get("content"):
        return str(data["content"])
    # Deferred while the picture was fetched: the refusal is an ephemeral followup.
    answer = await h.double.wait_until(
        lambda: next((m for m in rec.followups() if m.content), None), 30, "a refusal")
    return str(answer.content)


def input_files(h: BotHarness) -> list[Path]:
    folder = h.settings.storage.images / "inputs"
    return sorted(folder.iterdir()) if folder.exists() else []


async def test_a_members_picture_is_the_start_of_the_render(bot_harness: BotHarness) -> None:
    h = bot_harness
    attachment = h.double.upload_attachment("holiday.jpg", sideways_jpeg(), "image/jpeg")
    before = {m.id for m in h.double.channel_messages(h.studio_id)}
    rec = await h.slash("imagine", prompt="a fox, oil painting", count=1, image=attachment,
                        strength=0.5)
    await rec.wait_ack(ACK_DEADLINE_S)
    result = await h.double.wait_for_message(
        lambda m: m.id not in before and is_result(m), timeout=60)
    data = result.attachments[0].data
    picture = Image.open(io.BytesIO(data))
    # Upright (EXIF applied: 40 wide, 100 high), its short side at the 64 px minimum.
    assert picture.size == (64, 160), picture.size
    info = read_png_parameters(data)
    assert info is not None
    assert info.extra["Denoising strength"] == "0.5"
    assert info.prompt.startswith("a fox, oil painting")
    [saved] = input_files(h)
    assert Image.open(saved).size == picture.size


async def test_what_is_not_a_usable_picture_is_refused(bot_harness: BotHarness) -> None:
    h = bot_harness
    text = h.double.upload_attachment("notes.png", b"just some words\n" * 40, "text/plain")
    assert "is text/plain, not a picture" in await refusal_of(h, image=text)
    assert text.downloads == 0, "refused from what Discord says, before fetching"

    liar = h.double.upload_attachment("liar.png", b"not a png at all" * 20, "image/png")
    answer = await refusal_of(h, image=liar)
    assert "not a picture this bot can read" in answer and "PNG, JPEG" in answer

    huge = h.double.upload_attachment("huge.png", png((8000, 5000), mode="L"), "image/png")
    answer = await refusal_of(h, image=huge)
    assert "8000×5000 (40.0 megapixels); at most 16 megapixels" in answer

    whole = png((64, 64))
    cut = h.double.upload_attachment("cut.png", whole[: len(whole) // 2], "image/png")
    assert "could not be read to the end" in await refusal_of(h, image=cut)

    big = h.double.upload_attachment("big.png", png((8, 8)), "image/png", size=50 * 2**20)
    answer = await refusal_of(h, image=big)
    assert "is 50.0 MB; at most 10 MB is allowed (image.max_input_mb)" in answer
    assert big.downloads == 0

    assert "strength only applies with image" in await refusal_of(h, strength=0.4)
    # A good picture, but more jobs than the member may queue: refused, and not kept.
    fine = h.double.upload_attachment("fine.png", png((64, 64)), "image/png")
    assert "makes 4 jobs, but you can queue 3 more" in await refusal_of(h, image=fine,
                                                                         repeat=4)
    assert h.services.executor.snapshot() == []
    assert input_files(h) == [], "nothing was kept of a refused picture"
    assert not [m for m in h.double.channel_messages(h.studio_id) if is_result(m)]
