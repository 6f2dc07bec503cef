"""⭐ and /top end to end: the real bot against the Discord double, a real SQLite file. One star
per member per result (a second press takes it back), the count on the button, the server's
most-starred results of a period with links to their messages, a deleted picture leaving the
board, and stars kept across a restart."""

from __future__ import annotations

import asyncio
import re
import time

from bot.db.retention import DAY_S
from bot.executor.jobs import JobState
from cogs.top import FOOTER, nothing_yet
from testkit.discord_double.models import Message
from testkit.harness import BotHarness
from testkit.imagine import ACK_BUDGET_S, ACK_DEADLINE_S, click, imagine, job_id_of

LINE = re.compile(r"^\*\*(\d+)\.\*\* \[(.+)\]\((\S+)\) · ⭐ (\d+) · by <@(\d+)>$")


async def delivered(h: BotHarness, message: Message) -> str:
    """The result's job id, once its message id is stored (just after the post)."""
    job = job_id_of(message)
    for _ in range(500):
        record = await h.services.jobs.get(job)
        if record is not None and record.state is JobState.DELIVERED:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError(f"job {job} was never marked delivered")


def star_label(h: BotHarness, message: Message, job: str) -> str | None:
    button = h.double.world.messages[message.id].component(f"gh:star:{job}")
    assert button is not None, "no ⭐ on the result"
    assert button["emoji"]["name"] == "⭐"
    return button.get("label")


async def press_star(h: BotHarness, message: Message, job: str, user: object = None) -> None:
    ack = await (await click(h, message, f"gh:star:{job}", user=user)).wait_ack(ACK_DEADLINE_S)
    assert ack.type == 7 and ack.latency < ACK_BUDGET_S  # the result's buttons, edited


async def star_rows(h: BotHarness, job: str) -> list[tuple[int, int | None, int | None]]:
    async with h.services.db.execute(
        "SELECT user_id, guild_id, channel_id FROM stars WHERE job_id = ? ORDER BY user_id",
        (job,),
    ) as cur:
        return [tuple(row) for row in await cur.fetchall()]  # type: ignore[misc]


async def board(h: BotHarness, period: str | None = None) -> list[tuple[str, str, int, int]]:
    """/top as the channel sees it: (subject, link, stars, author id) per line."""
    rec = await h.slash("top", period=period)
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    assert ack.type == 4 and not ack.body["data"].get("flags", 0) & 64  # for everyone
    message = rec.original_message()
    assert message is not None and message.mention_user_ids == []
    embed = message.embeds[0]
    assert embed["footer"]["text"].startswith(FOOTER)
    lines = [LINE.match(line) for line in embed["description"].split("\n")]
    assert all(lines), embed["description"]
    assert [int(m[1]) for m in lines if m] == list(range(1, len(lines) + 1))
    return [(m[2], m[3], int(m[4]), int(m[5])) for m in lines if m]


async def empty_board(h: BotHarness, period: str | None = None) -> str:
    ack = await (await h.slash("top", period=period)).wait_ack(ACK_DEADLINE_S)
    assert ack.body["data"]["flags"] & 64  # only whoever asked is told
    return str(ack.body["data"]["content"])


async def test_one_star_per_member_and_the_count_on_the_button(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a heron at dawn", count=2)  # a grid: one ⭐ for all
    job = await delivered(h, result)
    others = [c for c in result.custom_ids if c != f"gh:star:{job}"]
    files = [a.filename for a in result.attachments]
    assert star_label(h, result, job) is None  # nobody yet

    await press_star(h, result, job)  # alice, who made it, may star it
    assert star_label(h, result, job) == "1"
    await press_star(h, result, job)  # her second press takes it back
    assert star_label(h, result, job) is None
    assert await star_rows(h, job) == []

    await press_star(h, result, job)
    await press_star(h, result, job, user=h.world.bob)
    assert star_label(h, result, job) == "2"
    assert await star_rows(h, job) == [(int(h.world.alice.id), h.guild_id, h.studio_id),
                                       (int(h.world.bob.id), h.guild_id, h.studio_id)]
    # Only the buttons changed: the same others, the pictures not uploaded again.
    edited = h.double.world.messages[result.id]
    assert [c for c in edited.custom_ids if c != f"gh:star:{job}"] == others
    assert [a.filename for a in edited.attachments] == files
    assert len(h.double.requests_matching("POST", rf"^/channels/{h.studio_id}/messages$")) \
        == 1  # the result, posted once (the status is the command's reply)
    h.double.assert_clean()


async def test_top_ranks_the_servers_results_with_links(bot_harness: BotHarness) -> None:
    h = bot_harness
    assert await empty_board(h) == nothing_yet("week")
    _, fox = await imagine(h, prompt="a fox in snow", count=1)
    _, owl = await imagine(h, prompt="an owl | watercolor", count=1, user=h.world.bob)
    _, newt = await imagine(h, prompt="a newt", count=1)
    fox_job, owl_job, newt_job = [await delivered(h, m) for m in (fox, owl, newt)]
    await press_star(h, owl, owl_job, user=h.world.alice)
    await press_star(h, owl, owl_job, user=h.world.mod)
    await press_star(h, fox, fox_job, user=h.world.bob)
    await press_star(h, newt, newt_job, user=h.world.bob)

    entries = await board(h)
    guild, channel = h.guild_id, h.studio_id
    assert entries == [  # most stars first, then the newest
        ("an owl", f"https://discord.com/channels/{guild}/{channel}/{owl.id}", 2,
         int(h.world.bob.id)),
        ("a newt", f"https://discord.com/channels/{guild}/{channel}/{newt.id}", 1,
         int(h.world.alice.id)),
        ("a fox in snow", f"https://discord.com/channels/{guild}/{channel}/{fox.id}", 1,
         int(h.world.alice.id)),
    ]

    # The owl's maker deletes it (🗑): its stars go with it, and it leaves the board.
    await click(h, owl, f"gh:del:{owl_job}", user=h.world.bob)
    await h.double.wait_until(lambda: h.double.world.messages[owl.id].deleted, 5, "deleted")
    assert [e[0] for e in await board(h)] == ["a newt", "a fox in snow"]
    assert await star_rows(h, owl_job) == []
    h.double.assert_clean()


async def test_top_shows_the_pictures_made_in_its_period(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="an old lighthouse", count=1)
    job = await delivered(h, result)
    await press_star(h, result, job, user=h.world.bob)

    async def made(days_ago: float) -> None:  # the picture (and its star) dated back
        then = time.time() - days_ago * DAY_S
        await h.services.db.execute("UPDATE jobs SET created_at = ?, finished_at = ?"
                                    " WHERE id = ?", (then, then, job))
        await h.services.db.execute("UPDATE stars SET starred_at = ? WHERE job_id = ?",
                                    (then, job))

    assert [e[0] for e in await board(h, "week")] == ["an old lighthouse"]
    await made(10)
    assert await empty_board(h) == nothing_yet("week")
    assert "/top period:all" in nothing_yet("week")
    assert [e[0] for e in await board(h, "month")] == ["an old lighthouse"]
    await made(40)  # older than a month
    assert await empty_board(h, "month") == nothing_yet("month")
    assert [e[0] for e in await board(h, "all")] == ["an old lighthouse"]
    h.double.assert_clean()


async def test_stars_are_kept_across_a_restart(bot_harness: BotHarness) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a red barn", count=1)
    job = await delivered(h, result)
    await press_star(h, result, job)
    await press_star(h, result, job, user=h.world.bob)
    await h.restart()
    # The button still works, and counts from what was stored: bob takes his star back.
    await press_star(h, result, job, user=h.world.bob)
    assert star_label(h, result, job) == "1"
    await press_star(h, result, job, user=h.world.mod)
    assert star_label(h, result, job) == "2"
    assert [e[2] for e in await board(h)] == [2]
    h.double.assert_clean()
