"""The retry policy of posts that must arrive: transient failures are retried with
back-off until the retry time is up; a permanent one ends the delivery at once."""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiohttp
import discord
import pytest

from cogs.delivery import DeliveryFailed, deliver, is_transient


@dataclass
class FakeResponse:  # what discord.HTTPException reads from aiohttp's response
    status: int
    reason: str = "reason"


def http_error(status: int, text: str = "error") -> discord.HTTPException:
    return discord.HTTPException(FakeResponse(status), {"message": text, "code": 0})  # type: ignore[arg-type]


def test_what_is_transient() -> None:
    assert is_transient(http_error(429)) and is_transient(http_error(502))
    assert is_transient(aiohttp.ServerDisconnectedError()) and is_transient(TimeoutError())
    assert not is_transient(http_error(403)) and not is_transient(http_error(404))


async def test_transient_failures_are_retried_until_the_post_goes_through() -> None:
    failures = [http_error(503), aiohttp.ServerDisconnectedError()]

    async def post() -> str:
        if failures:
            raise failures.pop(0)
        return "posted"

    assert await deliver(post, what="a test", give_up_after=30, first_wait=0.01) == "posted"
    assert failures == []


async def test_each_try_again_is_reported() -> None:
    failures = [http_error(429), http_error(500), TimeoutError()]
    retries: list[int] = []

    async def post() -> str:
        if failures:
            raise failures.pop(0)
        return "posted"

    def retried() -> None:
        retries.append(len(failures))  # told before the next try

    assert await deliver(post, what="a test", give_up_after=30, first_wait=0.01,
                         on_retry=retried) == "posted"
    assert retries == [2, 1, 0]
    # A first try that works, and a permanent error, are no retries.
    assert await deliver(post, what="a test", give_up_after=30, on_retry=retried) == "posted"
    failures.append(http_error(403))
    with pytest.raises(DeliveryFailed):
        await deliver(post, what="a test", give_up_after=30, on_retry=retried)
    assert retries == [2, 1, 0]


async def test_a_permanent_error_is_not_retried() -> None:
    calls = []

    async def post() -> str:
        calls.append(1)
        raise http_error(403, "Missing Permissions")

    with pytest.raises(DeliveryFailed, match="Missing Permissions"):
        await deliver(post, what="a test", give_up_after=30, first_wait=0.01)
    assert len(calls) == 1


async def test_it_gives_up_when_the_retry_time_is_over() -> None:
    calls = []

    async def post() -> str:
        calls.append(time.monotonic())
        raise http_error(503, "Service Unavailable")

    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="kept failing: Service Unavailable"):
        await deliver(post, what="a test", give_up_after=0.3, first_wait=0.05, max_wait=0.1)
    assert 2 <= len(calls) <= 10  # retried with back-off, not in a tight loop
    assert time.monotonic() - started < 5
