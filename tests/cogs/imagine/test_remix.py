"""🖌 Remix: a form with the job's prompt, negative prompt and seed; the edit renders as a
reply with every button; the form works after a restart; bad seeds are refused."""

from __future__ import annotations

from typing import Any

from bot.images.pnginfo import GenerationParameters, read_png_parameters
from testkit.discord_double.models import Message
from testkit.harness import BotHarness
from testkit.imagine import (
    ACK_DEADLINE_S,
    click,
    click_for_result,
    imagine,
    is_result,
    job_id_of,
)


def info_of(message: Message, index: int = 0) -> GenerationParameters:
    info = read_png_parameters(message.attachments[index].data)
    assert info is not None
    return info


async def open_form(h: BotHarness, result: Message) -> Any:
    rec = await click(h, result, f"gh:remix:{job_id_of(result)}")
    await rec.wait_ack(ACK_DEADLINE_S)
    assert rec.modal is not None, "the Remix form opened"
    return rec


async def submit(h: BotHarness, result: Message, opened: Any, **values: str) -> Any:
    return await h.double.submit_modal(h.guild_id, result.channel_id, int(h.world.alice.id),
                                       opened, values, message_id=result.id)


async def reply_to(h: BotHarness, parent: Message, seen: set[int]) -> Message:
    return await h.double.wait_for_message(
        lambda m: m.id not in seen and is_result(m)
        and str((m.message_reference or {}).get("message_id")) == str(parent.id), timeout=60)


async def test_remix_renders_the_edited_prompt_with_the_same_seed(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    _, parent = await imagine(h, prompt="a red fox | watercolor", count=2, seed=42)
    opened = await open_form(h, parent)
    form = opened.modal
    assert form.field("prompt").value == "a red fox | watercolor"
    assert form.field("seed").value == "42"
    assert "lowres" in (form.field("negative").value or "")  # the whole negative, to edit
    assert len(form.title) <= 45 and all(len(f.label or "") <= 45 for f in form.fields)

    seen = {m.id for m in h.double.channel_messages(parent.channel_id)}
    await submit(h, parent, opened, prompt="a blue fox | watercolor", negative="blurry")
    child = await reply_to(h, parent, seen)
    first = info_of(child)  # the grid carries its first picture's parameters
    assert first.prompt.startswith("a blue fox") and first.seed == 42
    # What the member left in the form is the negative prompt (the style adds its own).
    assert first.negative.startswith("blurry") and "lowres" not in first.negative
    record = await h.services.jobs.get(job_id_of(child))
    assert record is not None and [i.seed for i in record.images] == [42, 43]
    assert any(c.startswith("gh:remix:") for c in child.custom_ids)
    assert any(c.startswith("gh:up:") for c in child.custom_ids), "all the usual buttons"


async def test_the_form_still_works_after_a_restart(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, parent = await imagine(h, prompt="a quiet harbour", count=1, seed=7)
    opened = await open_form(h, parent)
    await h.restart()  # the form is still open on the member's screen
    seen = {m.id for m in h.double.channel_messages(parent.channel_id)}
    await submit(h, parent, opened, prompt="a quiet harbour at night", seed="8")
    child = await reply_to(h, parent, seen)
    assert info_of(child).prompt.startswith("a quiet harbour at night")
    assert info_of(child).seed == 8


async def test_remix_of_an_upscale_starts_from_that_picture(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, parent = await imagine(h, prompt="a lighthouse", count=1)
    upscaled = await click_for_result(h, parent, f"gh:up:{job_id_of(parent)}:0")
    opened = await open_form(h, upscaled)
    seen = {m.id for m in h.double.channel_messages(upscaled.channel_id)}
    await submit(h, upscaled, opened, prompt="a lighthouse in a storm")
    child = await reply_to(h, upscaled, seen)
    info = info_of(child)
    assert info.extra["Mode"] == "variation" and info.extra["Denoising strength"] == "0.55"
    record = await h.services.jobs.get(job_id_of(child))
    assert record is not None and len(record.images) == 4  # four, as V makes
    assert record.job.params.source_job == job_id_of(upscaled)  # type: ignore[union-attr]


async def test_a_bad_seed_or_prompt_is_refused(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, parent = await imagine(h, prompt="a kite", count=1)
    for values, expected in (({"seed": "forty-two"}, "a seed is a whole number"),
                             ({"prompt": "  |  "}, "prompt is empty")):
        opened = await open_form(h, parent)
        rec = await submit(h, parent, opened, **values)
        ack = await rec.wait_ack(ACK_DEADLINE_S)
        assert expected in ack.body["data"]["content"] and ack.body["data"]["flags"] & 64
    assert h.services.executor.snapshot() == []
