"""Acting as a member on /imagine in the Discord double: run the command, click the
buttons of a result, recognise results. Shared by the cog tests and the main-job test."""

from __future__ import annotations

from typing import Any

from testkit.discord_double.models import Message
from testkit.harness import BotHarness

ACK_DEADLINE_S = 3.0  # the double refuses later callbacks (10062), as Discord does
ACK_BUDGET_S = 1.5  # what we promise: well inside the deadline, even on a loaded machine


def is_result(message: Message, job_hint: str = "") -> bool:
    return bool(message.attachments) and any(c.startswith("gh:rr:") or c.startswith("gh:info:")
                                              for c in message.custom_ids) \
        and job_hint in " ".join(message.custom_ids)


def job_id_of(message: Message) -> str:
    for custom_id in message.custom_ids:
        if custom_id.startswith("gh:info:"):
            return custom_id.split(":")[2]
    raise AssertionError(f"no job id in {message.custom_ids}")


async def imagine(h: BotHarness, user: Any = None, **options: Any) -> tuple[Any, Message]:
    """Run /imagine and wait for its result message."""
    before = {m.id for m in h.double.channel_messages(h.studio_id)}
    rec = await h.slash("imagine", user=user, **options)
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    assert ack.latency < ACK_BUDGET_S
    result = await h.double.wait_for_message(
        lambda m: m.id not in before and is_result(m), timeout=60)
    return rec, result


async def click(h: BotHarness, message: Message, custom_id: str, user: Any = None) -> Any:
    user = user or h.world.alice
    return await h.double.click_button(h.guild_id, message.channel_id, int(user.id),
                                       message.id, custom_id)


async def click_for_result(h: BotHarness, parent: Message, custom_id: str,
                           values: list[str] | None = None) -> Message:
    """Click a button (or pick in a menu) on `parent`; its result is a new reply to it."""
    seen = {m.id for m in h.double.channel_messages(parent.channel_id)}
    if values is None:
        rec = await click(h, parent, custom_id)
    else:
        rec = await h.double.select(h.guild_id, parent.channel_id, int(h.world.alice.id),
                                    parent.id, custom_id, values)
    assert (await rec.wait_ack(ACK_DEADLINE_S)).latency < ACK_BUDGET_S
    return await h.double.wait_for_message(
        lambda m: m.id not in seen and is_result(m)
        and str((m.message_reference or {}).get("message_id")) == str(parent.id), timeout=60)
