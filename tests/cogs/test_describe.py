"""/describe image: against the Discord double, on the real bot with a tiny BLIP: prompt
ideas with 🎨 Imagine this buttons that start an /imagine of them; bad uploads refused
clearly; the per-person limit; a restart in the middle answers in the same reply."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from PIL import Image

from bot.app import build_runner
from bot.config import Settings
from bot.db.jobs import JobRecord
from bot.executor.executor import RunContext
from bot.executor.jobs import DescribeParams, Job, JobResult, JobState
from bot.images.inputs import input_path
from bot.images.pnginfo import read_png_parameters
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.models import Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import ACK_DEADLINE_S, click, is_result

WAIT_S = 60


def png(size: tuple[int, int] = (96, 64), colour: tuple[int, int, int] = (30, 140, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


class GatedRunner(ModelRunner):
    """The real runner; a describe job waits for `gate` first (it is running meanwhile)."""

    gate = threading.Event()

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        if isinstance(jobs[0].params, DescribeParams):
            while not self.gate.wait(0.01):
                if all(ctx.cancelled(job.id) for job in jobs):
                    return [RuntimeError("interrupted")] * len(jobs)
        return super().run(jobs, ctx)


def gated_runner(settings: Settings) -> ModelRunner:
    base = build_runner(settings)
    return GatedRunner(base.image_options, base.text_options, blocked_term=base.blocked_term,
                       describe_options=base.describe_options)


def describe_settings(tiny: TinyModelPaths, blip: Path, tmp: Path, double: DiscordDouble,
                      per_user_limit: int = 3) -> Settings:
    return harness_settings(tiny, tmp, double, describe={"model": str(blip)},
                            executor={"per_user_limit": per_user_limit})


@pytest.fixture
async def harness(tiny_models: TinyModelPaths, tiny_blip: Path, tmp_path: Path,
                  discord_double: DiscordDouble, discord_world: SeededWorld
                  ) -> AsyncIterator[BotHarness]:
    GatedRunner.gate.set()
    h = BotHarness(discord_double, discord_world,
                   describe_settings(tiny_models, tiny_blip, tmp_path, discord_double,
                                     per_user_limit=1),
                   runner_factory=gated_runner)
    await h.start()
    try:
        yield h
    finally:
        GatedRunner.gate.set()
        await h.stop()


def describe_ids(message: Message) -> list[str]:
    return [c for c in message.custom_ids if c.startswith("gh:describe:")]


def suggestions_in(message: Message) -> list[str]:
    return [line.split("** ", 1)[1] for line in message.content.splitlines()
            if line.startswith("**") and line[2:3].isdigit()]


async def describe(h: BotHarness, name: str = "garden.png") -> tuple[object, Message]:
    """Run /describe on a fresh upload; returns the interaction and its reply once the
    reply shows the suggestions."""
    attachment = h.double.upload_attachment(name, png(), "image/png")
    rec = await h.slash("describe", image=attachment)
    await rec.wait_ack(ACK_DEADLINE_S)
    reply = await h.double.wait_until(
        lambda: (m if (m := rec.original_message()) is not None and describe_ids(m) else None),
        WAIT_S, "the suggestions")
    return rec, reply


async def delivered(h: BotHarness, job_id: str) -> JobRecord:
    """The job's record once it is stored as delivered (just after the reply shows it)."""
    for _ in range(WAIT_S * 20):
        record = await h.services.jobs.get(job_id)
        if record is not None and record.state is JobState.DELIVERED:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} was never marked delivered")


async def refusal_of(h: BotHarness, rec: object) -> str:
    ack = await rec.wait_ack(ACK_DEADLINE_S)  # type: ignore[attr-defined]
    data = ack.body.get("data") or {}
    if data.get("content"):
        return str(data["content"])
    # Deferred while the picture was fetched: the refusal is an ephemeral followup.
    answer = await h.double.wait_until(
        lambda: next((m for m in rec.followups() if m.content), None),  # type: ignore[attr-defined]
        WAIT_S, "a refusal")
    return str(answer.content)


async def test_describe_then_imagine_this(harness: BotHarness) -> None:
    h = harness
    _, reply = await describe(h)
    ideas = suggestions_in(reply)
    assert len(ideas) == 3 and len(set(ideas)) == 3, reply.content
    ids = describe_ids(reply)
    assert len(ids) == 3
    job_id = ids[0].split(":")[2]
    assert ids == [f"gh:describe:{job_id}:{i}" for i in range(3)]
    assert all(b.get("label") == f"Imagine this #{i + 1}"
               for i, b in enumerate(reply.buttons()))
    record = await delivered(h, job_id)
    assert record.message_id == reply.id
    # The member's picture is the job's input file, removed with the job.
    assert input_path(h.settings.storage.images, job_id).is_file()

    # Bob presses alice's second idea: an /imagine of it, for him, as a reply.
    seen = {m.id for m in h.double.channel_messages(reply.channel_id)}
    rec = await click(h, reply, ids[1], user=h.world.bob)
    await rec.wait_ack(ACK_DEADLINE_S)
    result = await h.double.wait_for_message(
        lambda m: m.id not in seen and is_result(m)
        and str((m.message_reference or {}).get("message_id")) == str(reply.id), WAIT_S)
    info = read_png_parameters(result.attachments[0].data)
    assert info is not None and info.prompt.startswith(ideas[1]), (info, ideas[1])
    assert f"<@{h.world.bob.id}>" in result.content

    await h.services.jobs.delete(job_id)
    assert not input_path(h.settings.storage.images, job_id).exists()
    gone = await click(h, reply, ids[0])
    assert "no longer stored" in await refusal_of(h, gone)


async def test_bad_uploads_are_refused_clearly(harness: BotHarness) -> None:
    h = harness
    text = h.double.upload_attachment("notes.png", b"just some words\n" * 40, "text/plain")
    answer = await refusal_of(h, await h.slash("describe", image=text))
    assert "is text/plain, not a picture" in answer
    assert text.downloads == 0, "refused from what Discord says, before fetching"

    liar = h.double.upload_attachment("liar.png", b"not a png at all" * 20, "image/png")
    answer = await refusal_of(h, await h.slash("describe", image=liar))
    assert "not a picture this bot can read" in answer and "PNG, JPEG" in answer

    big = h.double.upload_attachment("big.png", png((8, 8)), "image/png", size=50 * 2**20)
    answer = await refusal_of(h, await h.slash("describe", image=big))
    assert "at most 10 MB is allowed (image.max_input_mb)" in answer
    assert h.services.executor.snapshot() == []
    folder = h.settings.storage.images / "inputs"
    assert not folder.exists() or not list(folder.iterdir()), "nothing kept of a refusal"


async def test_the_per_person_limit_applies(harness: BotHarness) -> None:
    h = harness
    GatedRunner.gate.clear()  # alice's first description takes its time
    first = await h.slash("describe", image=h.double.upload_attachment("a.png", png(),
                                                                         "image/png"))
    await first.wait_ack(ACK_DEADLINE_S)
    await h.double.wait_until(lambda: h.services.executor.snapshot() or None, WAIT_S,
                              "the first job queued")
    again = h.double.upload_attachment("b.png", png(), "image/png")
    answer = await refusal_of(h, await h.slash("describe", image=again))
    assert "the limit is 1 per person" in answer
    assert again.downloads == 0
    answer = await refusal_of(h, await h.slash("imagine", prompt="a fox", count=1))
    assert "the limit is 1 per person" in answer, "pictures and descriptions count together"
    listed = await refusal_of(h, await h.slash("queue"))
    assert "describe ×3" in listed and "(you)" in listed

    GatedRunner.gate.set()
    reply = await h.double.wait_until(
        lambda: (m if (m := first.original_message()) is not None and describe_ids(m)
                 else None), WAIT_S, "the first one's suggestions")
    assert len(suggestions_in(reply)) == 3


async def test_a_restart_in_the_middle_answers_in_the_same_reply(harness: BotHarness) -> None:
    h = harness
    GatedRunner.gate.clear()  # running when the bot stops
    rec = await h.slash("describe", image=h.double.upload_attachment("a.png", png(),
                                                                       "image/png"))
    await rec.wait_ack(ACK_DEADLINE_S)
    status = await h.double.wait_until(
        lambda: (m if (m := rec.original_message()) is not None
                 and "Describing your picture" in m.content else None), WAIT_S, "the status")
    [entry] = h.services.executor.snapshot()
    job_id = entry.job.id
    await h.stop()
    record_state = (await _state_after_stop(h, job_id))
    assert record_state in (JobState.QUEUED, JobState.RUNNING)
    GatedRunner.gate.set()
    await h.start()
    reply = await h.double.wait_until(
        lambda: (m if (m := rec.original_message()) is not None and describe_ids(m)
                 else None), WAIT_S, "the suggestions after the restart")
    assert reply.id == status.id
    assert len(suggestions_in(reply)) == 3
    await delivered(h, job_id)


async def _state_after_stop(h: BotHarness, job_id: str) -> JobState:
    """The job's stored state while the bot is down (read from its database file)."""
    from bot.db.connection import open_database
    from bot.db.jobs import JobRepository

    db = await open_database(h.settings.storage.database)
    try:
        record = await JobRepository(db, h.settings.storage.images).get(job_id)
    finally:
        await db.close()
    assert record is not None
    return record.state


SUGGESTIONS_EDIT = r"^/channels/\d+/messages/\d+$"


async def test_suggestions_cut_off_by_a_stop_are_shown_after_the_restart(
        harness: BotHarness) -> None:
    h = harness
    h.double.reset_next("PATCH", SUGGESTIONS_EDIT, times=1000)  # the network is down
    rec = await h.slash("describe", image=h.double.upload_attachment("a.png", png(),
                                                                       "image/png"))
    await rec.wait_ack(ACK_DEADLINE_S)
    await h.double.wait_until(
        lambda: len(h.double.requests_matching("PATCH", SUGGESTIONS_EDIT)) >= 2, WAIT_S,
        "showing the suggestions failing and being retried")
    [job_id] = [r.job.id for r in await h.services.jobs.undelivered()]
    await h.restart()  # stops mid-retry: the job is rendered, not delivered
    h.double.clear_faults()
    reply = await h.double.wait_until(
        lambda: (m if (m := rec.original_message()) is not None and describe_ids(m)
                 else None), WAIT_S, "the suggestions after the restart")
    assert len(suggestions_in(reply)) == 3
    assert describe_ids(reply)[0].startswith(f"gh:describe:{job_id}:")
    assert (await delivered(h, job_id)).message_id == reply.id
