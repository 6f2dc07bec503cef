"""A rendered result reaches its channel exactly once, whatever Discord or the network does
in between (dropped connections, lost answers, 429s, a stop), and a job whose result can
never be posted, or whose files cannot be written, ends with one clear status."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest

from bot.executor.jobs import ImagineOrigin, Job, JobState
from bot.images import files
from bot.images.requests import ImageOptions
from testkit.discord_double.errors import missing_permissions
from testkit.harness import BotHarness
from testkit.imagine import ACK_DEADLINE_S, is_result, job_id_of

RESULT_POST = r"^/channels/\d+/messages$"


def _files_in(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def results(h: BotHarness) -> list[str]:
    return [m.content for m in h.double.channel_messages(h.studio_id) if is_result(m)]


async def finished_status(h: BotHarness, rec: object, start: str) -> str:
    message = await rec.wait_original(  # type: ignore[attr-defined]
        lambda m: m.content.startswith(start), timeout=60)
    return str(message.content)


@pytest.mark.parametrize("after", [False, True], ids=["before-create", "after-create"])
async def test_a_dropped_connection_is_retried_into_one_result(
    bot_harness: BotHarness, after: bool
) -> None:
    h = bot_harness
    h.double.reset_next("POST", RESULT_POST, after=after)
    rec = await h.slash("imagine", prompt="a kite on a flaky line", count=1)
    await rec.wait_ack(ACK_DEADLINE_S)
    status = await finished_status(h, rec, "✅")
    result = await h.double.wait_for_message(is_result, timeout=30)
    posts = h.double.requests_matching("POST", RESULT_POST)
    assert len(posts) == 2  # the dropped one and its retry, with the same nonce
    assert posts[0].json is not None and posts[1].json is not None
    assert posts[0].json["nonce"] == posts[1].json["nonce"] == f"gh:{job_id_of(result)}"
    assert len(results(h)) == 1 and str(result.id) in status
    record = await h.services.jobs.get(job_id_of(result))
    assert record is not None and record.state is JobState.DELIVERED
    assert record.message_id == result.id
    h.double.assert_clean()


async def test_rate_limits_past_discord_py_s_own_tries_are_waited_out(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    # discord.py tries a rate-limited request 5 times, then raises; the 6th try is ours.
    h.double.inject_429("POST", RESULT_POST, times=6, retry_after=0.01)
    rec = await h.slash("imagine", prompt="a crowded channel", count=1)
    await rec.wait_ack(ACK_DEADLINE_S)
    await finished_status(h, rec, "✅")
    assert len(results(h)) == 1
    h.double.assert_clean()


async def test_a_permanent_refusal_ends_the_job_with_a_clear_status(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    h.double.fail_next("POST", RESULT_POST, missing_permissions(), times=10)
    rec = await h.slash("imagine", prompt="a channel I may not post in", count=1)
    await rec.wait_ack(ACK_DEADLINE_S)
    status = await finished_status(h, rec, "❌")
    assert "could not be posted" in status and "Missing Permissions" in status
    assert results(h) == []
    assert len(h.double.requests_matching("POST", RESULT_POST)) == 1  # not retried
    async with h.services.db.execute("SELECT state, reason FROM jobs") as cur:
        rows = [tuple(row) for row in await cur.fetchall()]
    assert len(rows) == 1 and rows[0][0] == "failed" and "Missing Permissions" in rows[0][1]


async def test_a_result_cut_off_by_a_stop_is_posted_once_after_the_restart(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    h.double.reset_next("POST", RESULT_POST, times=1000)  # the network is down
    rec = await h.slash("imagine", prompt="a kite after the storm", count=1)
    await rec.wait_ack(ACK_DEADLINE_S)
    await h.double.wait_until(
        lambda: len(h.double.requests_matching("POST", RESULT_POST)) >= 2, 60,
        "the result post failing and being retried")
    await h.restart()  # stops mid-retry: the job is rendered, not delivered
    h.double.clear_faults()
    status = await finished_status(h, rec, "✅")
    result = await h.double.wait_for_message(is_result, timeout=30)
    assert str(result.id) in status
    assert len(results(h)) == 1
    record = await h.services.jobs.get(job_id_of(result))
    assert record is not None and record.state is JobState.DELIVERED
    await h.restart()  # delivered: nothing is owed any more
    assert len(results(h)) == 1
    h.double.assert_clean()


async def test_a_restored_job_without_a_status_message_still_posts_its_result(
    bot_harness: BotHarness,
) -> None:
    h = bot_harness
    # A crash after the job was stored and before its status message was: it is queued,
    # with no status message to edit.
    params = h.services.images.request(ImageOptions(prompt="a kite nobody watched", count=1))
    job = Job(user_id=int(h.world.alice.id), user_name="alice", params=params,
              origin=ImagineOrigin(guild_id=h.guild_id, channel_id=h.studio_id))
    await h.services.jobs.job_accepted(job)
    await h.restart()
    result = await h.double.wait_for_message(is_result, timeout=60)
    assert job_id_of(result) == job.id and "a kite nobody watched" in result.content
    assert result.message_reference is None
    h.double.assert_clean()


async def test_a_full_disk_fails_the_job_and_says_so(
    bot_harness: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = bot_harness

    def disk_full(path: Path, data: bytes) -> None:
        path.write_bytes(data[:100])  # partly written, then no room
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(files, "write_file", disk_full)
    rec = await h.slash("imagine", prompt="a picture too big for the disk", count=2)
    await rec.wait_ack(ACK_DEADLINE_S)
    status = await finished_status(h, rec, "❌")
    assert "could not be saved" in status and "disk is full" in status
    assert results(h) == []
    assert _files_in(Path(h.settings.storage.images)) == []
    assert await h.services.jobs.unfinished_jobs() == []  # a restart won't render it again
    h.double.assert_clean()


async def test_an_acknowledgement_that_fails_cancels_the_job(bot_harness: BotHarness) -> None:
    h = bot_harness
    h.double.fail_next("POST", r"^/interactions/\d+/[^/]+/callback$", missing_permissions())
    await h.slash("imagine", prompt="a kite nobody will see", count=1)

    async def states() -> list[str]:
        async with h.services.db.execute("SELECT state FROM jobs") as cur:
            return [row[0] for row in await cur.fetchall()]

    for _ in range(400):  # generous: a loaded machine
        if await states() == ["cancelled"]:
            break
        await asyncio.sleep(0.05)
    assert await states() == ["cancelled"]
    assert h.services.executor.snapshot() == []
    assert results(h) == []
