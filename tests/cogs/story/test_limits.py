"""Story work keeps the executor's promises: one line at a time per story, the per-person
limit counts the operations that wait for their turn, and /queue and /cancel see them."""

from __future__ import annotations

import asyncio

from bot.story import StoryTeller
from testkit.discord_double import InteractionRecord, Message
from testkit.story import WAIT_S, HeldRunner, StoryBot

LINE_BUSY = "A line is already being written for this story; it will appear in a moment."


def custom_id(message: Message, prefix: str) -> str:
    found = [c for c in message.custom_ids if c.startswith(prefix)]
    assert found, f"no {prefix} button on {message.content!r}: {message.custom_ids}"
    return found[0]


def numbered(h: StoryBot, thread: int, number: int) -> list[Message]:
    return [m for m in h.thread_messages(thread) if m.content.startswith(f"**{number}.** ")]


async def command(h: StoryBot, user: int, channel: int, name: str, **options: str) -> str:
    rec = await h.double.invoke_slash(h.world.guild.id, channel, user, name, options)
    return str((await rec.wait_ack(WAIT_S)).body["data"]["content"])


def teller_of(h: StoryBot) -> StoryTeller:
    assert h.bot is not None
    return h.bot.services.teller


async def test_story_work_counts_against_the_per_person_limit(story_bot: StoryBot) -> None:
    h = story_bot
    h.sections["executor"] = {"per_user_limit": 2}
    held = HeldRunner(h.runner)
    h.runner = held
    alice, bob, studio = h.world.alice.id, h.world.bob.id, h.world.studio.id
    async with h.running():
        await h.slash(alice, studio, "start", seed="The sky", title="Sky")
        sky = await h.story_thread()
        sky1 = await h.line(sky, 1)
        await h.slash(bob, studio, "start", seed="The sea", title="Sea")
        sea = await h.double.wait_until(
            lambda: next((c.id for c in h.double.world.threads(h.world.guild.id)
                          if c.parent_id == studio and c.id != sky), None),
            WAIT_S, "the second story's thread")
        sea1 = await h.line(sea, 1)
        await h.idle()

        held.hold.set()  # bob's line for "Sea" is being written, and takes its time
        await h.click(bob, sea1, custom_id(sea1, "gh:story:cont:"))
        await asyncio.wait_for(asyncio.to_thread(held.holding.wait), WAIT_S)

        # Continue ▶ six times: one line is asked for, the other presses are answered at once.
        clicks = [await h.click(alice, sky1, custom_id(sky1, "gh:story:cont:"))
                  for _ in range(6)]

        def busy_answers() -> list[InteractionRecord] | None:
            found = [r for r in clicks if any(LINE_BUSY in m.content for m in r.followups())]
            return found if len(found) == 5 else None

        await h.double.wait_until(busy_answers, WAIT_S, "five answers saying a line is coming")

        # Her own line for "Sea" waits for bob's turn: with her line for "Sky", two...
        add = await h.slash(alice, sea, "add", text="A gull cried.")
        await h.double.wait_until(lambda: teller_of(h).pending.waiting(), WAIT_S,
                                  "her line waiting for its turn")
        # ...so a third request (a redraw in "Sky") is past the limit of 2 per person.
        redraw = await h.click(alice, sky1, custom_id(sky1, "gh:story:redraw:"))
        refusal = await h.answer(redraw, "limit")
        assert "You already have 2 jobs queued, running or waiting for their turn" in refusal
        assert "the limit is 2 per person" in refusal and "/cancel" in refusal

        # /queue lists the waiting operation with the executor's jobs.
        listing = await command(h, alice, sea, "queue")
        assert "**3 job(s)**, 2 of them yours:" in listing
        assert "▶ running · story line · “The sea” · <@" in listing
        assert "#1 · story line · “The sky”" in listing
        assert f"waiting · member line · “Sea” · <@{alice}> **(you)**" in listing

        # /cancel by its id (bob may not, she may): it never runs.
        waiting = teller_of(h).pending.waiting()[0]
        assert "isn't yours" in await command(h, bob, sea, "cancel", job=waiting.id)
        assert "Cancelled 1 job(s)." in await command(h, alice, sea, "cancel", job=waiting.id)
        assert "was cancelled before it started" in await h.answer(add, "cancelled")
        assert teller_of(h).pending.waiting() == []

        held.hold.clear()
        for thread, who in ((sea, bob), (sky, alice)):
            choice = await h.choice(thread, 2)
            await h.click(who, choice, custom_id(choice, "gh:choice:keep:"))
            await h.line(thread, 2)
        await h.idle()
        assert "waiting" not in await command(h, alice, sea, "queue")

    assert len(numbered(h, sky, 2)) == 1 and numbered(h, sky, 3) == []
    assert len(numbered(h, sea, 2)) == 1 and numbered(h, sea, 3) == []
    assert not [m for m in h.thread_messages(sea) if "A gull cried." in m.content]
    h.double.assert_clean()


async def test_a_press_on_the_newest_line_waits_for_the_one_before(story_bot: StoryBot) -> None:
    """Continue ▶ on the line that was just posted is a new request, not a repeat: it waits
    until that line's operation has finished, then writes the line after it."""
    h = story_bot
    alice, bob = h.world.alice.id, h.world.bob.id
    async with h.running():
        await h.slash(alice, h.world.studio.id, "start", seed="The sky")
        thread = await h.story_thread()
        first = await h.line(thread, 1)
        second = await h.continue_line(bob, first, 2)
        press = await h.click(alice, second, custom_id(second, "gh:story:cont:"))
        choice = await h.choice(thread, 3)
        await h.click(alice, choice, custom_id(choice, "gh:choice:keep:"))
        third = await h.line(thread, 3)
        assert "for alice" in third.content
        await h.idle()
        assert not any(LINE_BUSY in m.content for m in press.followups())
        assert teller_of(h).pending.active == 0
    h.double.assert_clean()
