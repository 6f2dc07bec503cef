"""The bot's one error report: an unexpected error in a command, a button or a menu is
logged once and the member is told, whether or not the interaction was answered already."""

from __future__ import annotations

import logging

import pytest

from bot.client import SOMETHING_WENT_WRONG
from bot.images.lifecycle import ImageJobs
from bot.story.teller import StoryTeller
from testkit.harness import BotHarness
from testkit.imagine import ACK_DEADLINE_S, imagine, is_result, job_id_of


def boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom: a bug")


def error_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and "unexpected" in
            r.getMessage()]


async def test_a_command_that_breaks_answers_and_logs_once(
    bot_harness: BotHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    h = bot_harness
    monkeypatch.setattr(ImageJobs, "request", boom)
    rec = await h.slash("imagine", prompt="a kite")
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    assert ack.body["data"]["content"] == SOMETHING_WENT_WRONG
    assert ack.body["data"]["flags"] & 64  # ephemeral
    assert len(error_logs(caplog)) == 1 and "'imagine'" in error_logs(caplog)[0].getMessage()
    assert h.services.executor.snapshot() == []


async def test_a_deferred_command_that_breaks_replaces_thinking(
    bot_harness: BotHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    h = bot_harness
    monkeypatch.setattr(StoryTeller, "start", boom)
    rec = await h.double.invoke_slash(h.guild_id, h.studio_id, int(h.world.alice.id), "story",
                                      {"seed": "The sky"}, subcommand="start")
    await rec.wait_ack(ACK_DEADLINE_S)  # "thinking…"
    answer = await h.double.wait_until(
        lambda: next((m for m in rec.followups() if m.content == SOMETHING_WENT_WRONG), None),
        30, "the error answer")
    assert answer.content == SOMETHING_WENT_WRONG
    assert len(error_logs(caplog)) == 1


async def test_a_button_that_breaks_answers_and_logs_once(
    bot_harness: BotHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    h = bot_harness
    _, result = await imagine(h, prompt="a kite", count=1)
    assert is_result(result)
    # The bot's own presenter: discord.py imports an extension's modules anew on each load,
    # so the class this module imported may not be the running one.
    cog = h.bot.get_cog("Imagine")
    assert cog is not None
    monkeypatch.setattr(cog.presenter, "reroll", boom)  # type: ignore[attr-defined]
    rec = await h.double.click_button(h.guild_id, h.studio_id, int(h.world.alice.id),
                                      result.id, f"gh:rr:{job_id_of(result)}")
    ack = await rec.wait_ack(ACK_DEADLINE_S)
    assert ack.body["data"]["content"] == SOMETHING_WENT_WRONG
    assert len(error_logs(caplog)) == 1 and "gh:rr:" in error_logs(caplog)[0].getMessage()
