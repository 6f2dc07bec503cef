"""Private /imagine (the option, or the /settings default): the status and the result only
the member sees (ephemeral, through the interaction's token), nothing posted in the channel,
the result's buttons working for them privately; a result whose token is gone (a long wait,
a restart) goes to them by DM."""

from __future__ import annotations

from typing import Any

from bot.db.preferences import PreferenceRepository
from bot.executor.jobs import ImagineOrigin, Job, JobState
from bot.images.requests import ImageOptions
from cogs.imagine.private import DM_NOTE
from testkit.discord_double import errors
from testkit.discord_double.models import Message
from testkit.harness import BotHarness
from testkit.imagine import ACK_DEADLINE_S, click, is_result, job_id_of

CHANNEL_POSTS = r"^/channels/\d+/messages$"


def public(h: BotHarness) -> list[Message]:
    return h.double.channel_messages(h.studio_id)


async def private_result(h: BotHarness, rec: Any) -> Message:
    """The result: an ephemeral followup of the interaction `rec`."""
    return await h.double.wait_until(
        lambda: next((m for m in rec.followups() if is_result(m)), None), 60,
        "the private result")


async def test_a_private_imagine_and_its_buttons_stay_with_the_member(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    rec = await h.slash("imagine", prompt="a secret garden", count=1, private=True)
    assert (await rec.wait_ack(ACK_DEADLINE_S)).type == 4
    status = rec.original_message()
    assert status is not None and status.ephemeral
    result = await private_result(h, rec)
    assert result.ephemeral and "a secret garden" in result.content
    assert public(h) == []
    assert h.double.requests_matching("POST", CHANNEL_POSTS) == []  # never the bot token
    await h.double.wait_until(lambda: "✅" in status.content, 30, "the status saying done")
    record = await h.services.jobs.get(job_id_of(result))
    assert record is not None and record.state is JobState.DELIVERED
    assert isinstance(record.job.origin, ImagineOrigin) and record.job.origin.private

    # 🔄 on the private result: its own interaction, answered privately the same way.
    again = await click(h, result, f"gh:rr:{job_id_of(result)}")
    assert (await again.wait_ack(ACK_DEADLINE_S)).type == 4
    second_status = again.original_message()
    assert second_status is not None and second_status.ephemeral
    second = await private_result(h, again)
    assert second.ephemeral and job_id_of(second) != job_id_of(result)
    assert public(h) == []
    assert h.double.requests_matching("POST", CHANNEL_POSTS) == []
    h.double.assert_clean()


async def test_the_settings_default_makes_results_private_and_the_option_overrides_it(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    await PreferenceRepository(h.services.db).set_member(int(h.world.alice.id), "private",
                                                         True)
    rec = await h.slash("imagine", prompt="a hidden lake", count=1)
    await rec.wait_ack(ACK_DEADLINE_S)
    assert rec.original_message().ephemeral
    assert (await private_result(h, rec)).ephemeral
    assert public(h) == []
    rec = await h.slash("imagine", prompt="a hidden lake", count=1, private=False)
    await rec.wait_ack(ACK_DEADLINE_S)
    assert not rec.original_message().ephemeral
    shown = await h.double.wait_until(
        lambda: next((m for m in public(h) if is_result(m)), None), 60, "the public result")
    assert not shown.ephemeral


async def test_a_private_result_ready_after_the_token_expired_goes_by_dm(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    rec = await h.slash("imagine", prompt="a late owl", count=1, private=True)
    await rec.wait_ack(ACK_DEADLINE_S)
    await h.double.wait_until(  # the bot has its status message: the job is queued
        lambda: any(r.status == 200 for r in
                    h.double.requests_matching("GET", r"/messages/@original$")), 30,
        "the status message fetched")
    h.double.token_lifetime = 0.0  # from now on Discord refuses the token (50027)
    dm = await h.double.wait_until(
        lambda: next((m for m in h.double.dm_messages(int(h.world.alice.id))
                      if is_result(m)), None), 60, "the result by DM")
    assert dm.content.startswith(DM_NOTE) and "a late owl" in dm.content
    assert rec.followups() == [] and public(h) == []
    assert h.double.requests_matching("POST", rf"^/channels/{h.studio_id}/messages$") == []
    record = await h.services.jobs.get(job_id_of(dm))
    assert record is not None and record.state is JobState.DELIVERED
    assert record.channel_id == dm.channel_id


async def test_a_private_job_restored_after_a_restart_is_delivered_by_dm(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    # Stored, then the bot stopped: its interaction token is gone with the process.
    params = h.services.images.request(ImageOptions(prompt="a restart in private", count=1))
    job = Job(user_id=int(h.world.alice.id), user_name="alice", params=params,
              origin=ImagineOrigin(guild_id=h.guild_id, channel_id=h.studio_id, private=True,
                                   status_message_id=123))
    await h.services.jobs.job_accepted(job)
    await h.restart()
    dm = await h.double.wait_until(
        lambda: next((m for m in h.double.dm_messages(int(h.world.alice.id))
                      if is_result(m)), None), 60, "the result by DM")
    assert job_id_of(dm) == job.id
    assert public(h) == []
    assert h.double.requests_matching("POST", rf"^/channels/{h.studio_id}/messages$") == []
    assert h.double.requests_matching("PATCH", rf"^/channels/{h.studio_id}/messages/") == []


async def test_a_member_with_dms_closed_is_told_in_the_status_while_it_lives(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    h.world.alice.accepts_dms = False
    h.double.fail_next("POST", r"^/webhooks/\d+/[^/]+$", errors.invalid_webhook_token())
    rec = await h.slash("imagine", prompt="nowhere to go", count=1, private=True)
    await rec.wait_ack(ACK_DEADLINE_S)
    status = rec.original_message()
    await h.double.wait_until(lambda: "❌" in status.content, 60, "the status saying why")
    assert "could not be posted" in status.content
    assert public(h) == [] and h.double.dm_messages(int(h.world.alice.id)) == []


async def test_delete_on_a_private_result_goes_through_the_click(
        bot_harness: BotHarness) -> None:
    h = bot_harness
    rec = await h.slash("imagine", prompt="a secret to drop", count=1, private=True)
    await rec.wait_ack(ACK_DEADLINE_S)
    result = await private_result(h, rec)
    delete = await click(h, result, f"gh:del:{job_id_of(result)}")
    assert (await delete.wait_ack(ACK_DEADLINE_S)).type == 6
    await h.double.wait_until(lambda: h.double.world.messages[result.id].deleted or None, 10,
                              "the private result deleted")
    # The bot token can't reach an ephemeral message: no channel DELETE was tried.
    assert h.double.requests_matching("DELETE", r"^/channels/") == []
    assert delete.followups() == []  # no "Could not delete" note
