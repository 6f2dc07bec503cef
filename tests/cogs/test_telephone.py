"""/telephone against the Discord double, on the real bot with the tiny image model and a
tiny BLIP: three rounds in "ai" mode (the caption model describes) and in "players" mode
(members take turns through ✍️ Describe it and its form), a bad prompt refused clearly, and
a restart in the middle of a game that resumes it and finishes it once."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from bot.app import build_runner
from bot.config import Settings
from bot.executor.executor import RunContext
from bot.executor.jobs import DescribeParams, Job, JobResult, JobState
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths
from bot.telephone import GameState, Round, TelephoneRepository
from testkit.discord_double import DiscordDouble
from testkit.discord_double.models import Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import ACK_DEADLINE_S, click

WAIT_S = 60
CHAIN = "telephone-chain.png"


class DescribeGate:
    """The session's runner; describe jobs wait while `hold` is set (`held` once one does)
    and give up when the bot stops under them."""

    def __init__(self, inner: ModelRunner) -> None:
        self.inner = inner
        self.hold = threading.Event()
        self.held = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        if isinstance(jobs[0].params, DescribeParams):
            while self.hold.is_set():
                self.held.set()
                if all(ctx.cancelled(job.id) for job in jobs):
                    return [RuntimeError("interrupted")] * len(jobs)
                time.sleep(0.01)
        return self.inner.run(jobs, ctx)


@pytest.fixture
def settings(tiny_models: TinyModelPaths, tiny_blip: Path, tmp_path: Path,
             discord_double: DiscordDouble) -> Settings:
    return harness_settings(tiny_models, tmp_path, discord_double,
                            describe={"model": str(tiny_blip)},
                            image={"max_side": 64, "count": 1, "preview_every": 0},
                            safety={"blocked_terms": ["forbidden"], "nsfw_terms": ["nude"]})


@pytest.fixture
async def gate_and_harness(settings: Settings, discord_double: DiscordDouble,
                           discord_world: SeededWorld
                           ) -> AsyncIterator[tuple[DescribeGate, BotHarness]]:
    gate = DescribeGate(build_runner(settings))
    h = BotHarness(discord_double, discord_world, settings,
                   runner_factory=lambda _: cast(ModelRunner, gate))
    await h.start()
    try:
        yield gate, h
    finally:
        gate.hold.clear()
        await h.stop()


@pytest.fixture
def harness(gate_and_harness: tuple[DescribeGate, BotHarness]) -> BotHarness:
    return gate_and_harness[1]


def posts_of_round(h: BotHarness, number: int) -> list[Message]:
    return [m for m in h.double.channel_messages(h.studio_id)
            if any(a.filename.startswith(f"round-{number}.") for a in m.attachments)]


async def round_post(h: BotHarness, number: int) -> Message:
    return await h.double.wait_until(
        lambda: next(iter(posts_of_round(h, number)), None), WAIT_S, f"round {number}'s post")


async def chain_post(h: BotHarness) -> Message:
    return await h.double.wait_for_message(
        lambda m: any(a.filename == CHAIN for a in m.attachments), WAIT_S)


def attachment(message: Message, suffix: str) -> bytes:
    return next(a.data for a in message.attachments if a.filename.endswith(suffix))


async def answer_of(h: BotHarness, rec: Any) -> str:
    """The (ephemeral) answer to an interaction: its reply, or its deferred followup."""
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    content = (ack.body.get("data") or {}).get("content")
    if content:
        return str(content)
    found = await h.double.wait_until(
        lambda: next((m for m in rec.followups() if m.content), None), WAIT_S, "an answer")
    return str(found.content)


async def game_rounds(h: BotHarness, game_id: int = 1) -> list[Round]:
    return await TelephoneRepository(h.services.db).rounds(game_id)


def check_export(chain: Message, rounds: Sequence[Round]) -> None:
    page = attachment(chain, ".html").decode()
    markdown = attachment(chain, ".md").decode().replace("\\", "")
    for r in rounds:
        assert html.escape(" ".join(r.text.split())) in page, r.text
        assert " ".join(r.text.split()) in markdown, r.text
    assert page.count("<img ") == len(rounds), "every round's picture is in the page"


async def test_ai_mode_three_rounds(harness: BotHarness) -> None:
    h = harness
    prompt = "a lighthouse on a cliff at dusk"
    rec = await h.slash("telephone", prompt=prompt, rounds=3)
    await rec.wait_ack(ACK_DEADLINE_S)
    chain = await chain_post(h)
    posts = [posts_of_round(h, n) for n in (1, 2, 3)]
    assert [len(p) for p in posts] == [1, 1, 1], "each round posted once"
    assert not any(posts_of_round(h, 4))
    rounds = await game_rounds(h)
    assert [r.number for r in rounds] == [1, 2, 3]
    assert rounds[0].text == prompt and not rounds[0].by_model
    assert "the prompt, by **alice**" in posts[0][0].content
    for r, [post] in zip(rounds[1:], posts[1:], strict=True):
        assert r.by_model and r.text_job_id, "the caption model wrote rounds 2 and 3"
        assert "(the caption model)" in post.content
        assert post.custom_ids == [], "nobody is asked to describe in ai mode"
    for r in rounds:
        record = await h.services.jobs.get(r.image_job_id or "")
        assert record is not None and record.state is JobState.DELIVERED
        assert record.job.user_id == h.world.alice.id
        assert r.image_path is not None and r.image_path.is_file()
    for r in rounds[1:]:
        described = await h.services.jobs.get(r.text_job_id or "")
        assert described is not None and described.state is JobState.DELIVERED
    game = await TelephoneRepository(h.services.db).get(1)
    assert game is not None and game.state is GameState.ENDED
    assert game.chain_message_id == chain.id
    check_export(chain, rounds)
    status = await h.double.wait_until(
        lambda: (m if (m := rec.original_message()) is not None and "Over" in m.content
                 else None), WAIT_S, "the status saying it is over")
    assert str(chain.id) in status.content
    # The picture a description read belongs to its image job: deleting the describe job
    # (or its expiry) leaves it.
    await h.services.jobs.delete(rounds[1].text_job_id or "")
    assert rounds[0].image_path is not None and rounds[0].image_path.is_file()


async def press(h: BotHarness, message: Message, custom_id: str, user: Any) -> Any:
    rec = await click(h, message, custom_id, user=user)
    await rec.wait_ack(ACK_DEADLINE_S)
    return rec


async def test_players_mode_three_rounds(harness: BotHarness) -> None:
    h = harness
    w = h.world
    rec = await h.slash("telephone", prompt="a red boat in a storm", rounds=3, mode="players")
    await rec.wait_ack(ACK_DEADLINE_S)
    first = await round_post(h, 1)
    button = "gh:tel:1:2"
    assert first.custom_ids == [button]

    mine = await press(h, first, button, w.alice)
    assert mine.modal is None
    assert "nobody writes two rounds in a row" in await answer_of(h, mine)

    # Bob and mod both open the form; bob sends his first, mod is told he was quicker.
    bobs = await press(h, first, button, w.bob)
    mods = await press(h, first, button, w.mod)
    assert bobs.modal is not None and mods.modal is not None
    sent = await h.double.submit_modal(bobs, {"text": "a small boat on a wild sea"})
    assert "round 2" in await answer_of(h, sent)
    late = await h.double.submit_modal(mods, {"text": "a ship"})
    assert "already written by bob" in await answer_of(h, late)
    taken = await h.double.wait_until(
        lambda: next((b for m in h.double.channel_messages(h.studio_id) if m.id == first.id
                      for b in m.buttons() if b.get("disabled")), None), WAIT_S,
        "round 1's button showing who took round 2")
    assert "bob" in str(taken.get("label"))

    second = await round_post(h, 2)
    assert "described by **bob**" in second.content
    # The same member twice in a row is refused; a restart in between changes nothing.
    await h.restart()
    again = await press(h, second, "gh:tel:1:3", w.bob)
    assert "nobody writes two rounds in a row" in await answer_of(h, again)
    form = await press(h, second, "gh:tel:1:3", w.alice)
    blocked = await h.double.submit_modal(form, {"text": "a forbidden island"})
    assert "blocked term" in await answer_of(h, blocked)
    form = await press(h, second, "gh:tel:1:3", w.alice)
    sent = await h.double.submit_modal(form, {"text": "a quiet harbour at night"})
    assert "round 3" in await answer_of(h, sent)

    chain = await chain_post(h)
    third = await round_post(h, 3)
    assert "described by **alice**" in third.content and third.custom_ids == []
    rounds = await game_rounds(h)
    assert [(r.author.name, r.by_model) for r in rounds] == [
        ("alice", False), ("bob", False), ("alice", False)]
    assert [r.text for r in rounds[1:]] == ["a small boat on a wild sea",
                                            "a quiet harbour at night"]
    bobs_picture = await h.services.jobs.get(rounds[1].image_job_id or "")
    assert bobs_picture is not None and bobs_picture.job.user_id == w.bob.id, \
        "a round's picture counts for whoever wrote it"
    assert [len(posts_of_round(h, n)) for n in (1, 2, 3)] == [1, 1, 1]
    check_export(chain, rounds)


async def test_a_bad_prompt_is_refused_clearly(harness: BotHarness) -> None:
    h = harness
    blocked = await h.slash("telephone", prompt="a forbidden door", rounds=3)
    assert "blocked term ('forbidden')" in await answer_of(h, blocked)
    nsfw = await h.slash("telephone", prompt="a nude statue", rounds=2)
    assert "only allowed in channels marked NSFW" in await answer_of(h, nsfw)
    assert h.services.executor.snapshot() == []
    assert await TelephoneRepository(h.services.db).get(1) is None, "no game was started"
    allowed = await h.slash("telephone", prompt="a nude statue", rounds=2,
                            channel_id=int(h.world.nsfw_art.id))
    await allowed.wait_ack(ACK_DEADLINE_S)
    assert await TelephoneRepository(h.services.db).get(1) is not None, \
        "NSFW terms pass in an NSFW channel, as with /imagine"


async def test_a_restart_in_the_middle_resumes_the_game(
        gate_and_harness: tuple[DescribeGate, BotHarness]) -> None:
    gate, h = gate_and_harness
    gate.hold.set()  # round 1's picture is described while the bot stops
    rec = await h.slash("telephone", prompt="an old bicycle in the rain", rounds=3)
    await rec.wait_ack(ACK_DEADLINE_S)
    await round_post(h, 1)
    await h.double.wait_until(lambda: gate.held.is_set() or None, WAIT_S,
                              "round 1's picture being described")
    [held] = [r.describe_job_id for r in await game_rounds(h)]
    assert held is not None
    await h.stop()
    gate.hold.clear()
    await h.start()

    chain = await chain_post(h)
    assert [len(posts_of_round(h, n)) for n in (1, 2, 3)] == [1, 1, 1]
    rounds = await game_rounds(h)
    assert rounds[0].describe_job_id == held, "the same description job was resumed"
    assert rounds[1].text_job_id == held
    check_export(chain, rounds)
    status = await h.double.wait_until(
        lambda: (m if (m := rec.original_message()) is not None and "Over" in m.content
                 else None), WAIT_S, "the same status message saying it is over")
    assert str(chain.id) in status.content
