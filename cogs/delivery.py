"""Posting what must arrive: a transient failure (429s discord.py gave up on, 5xx, a reset
connection, a timeout) is retried with back-off until `give_up_after` seconds have passed;
a permanent one (the channel is gone, no access, a bad request) ends the delivery at once.

Retrying a create is only safe because every create that goes through here carries a nonce
derived from what it delivers (Discord returns the earlier message for a repeated nonce
within a few minutes): a response lost after Discord created the message is not a twin.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
import discord

log = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 60.0


class DeliveryFailed(Exception):
    """The post can never succeed (or kept failing for the whole retry time); `reason`
    says why, for the member."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_transient(exc: BaseException) -> bool:
    """Whether the same request may succeed later."""
    if isinstance(exc, discord.HTTPException):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError)


def describe(exc: BaseException) -> str:
    if isinstance(exc, discord.HTTPException):
        return exc.text or f"HTTP {exc.status}"
    return str(exc) or type(exc).__name__


async def deliver(post: Callable[[], Awaitable[T]], *, what: str, give_up_after: float,
                  first_wait: float = FIRST_WAIT_S, max_wait: float = MAX_WAIT_S,
                  on_retry: Callable[[], None] | None = None) -> T:
    """`post()` until it succeeds; raises DeliveryFailed on a permanent error or when the
    next try would start after `give_up_after` seconds. `on_retry` is called before each
    try again (the metrics count them)."""
    deadline = time.monotonic() + give_up_after
    wait = first_wait
    while True:
        try:
            return await post()
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError,
                ConnectionError) as exc:
            if not is_transient(exc):
                raise DeliveryFailed(describe(exc)) from exc
            if time.monotonic() + wait > deadline:
                raise DeliveryFailed(f"Discord kept failing: {describe(exc)}") from exc
            log.warning("posting %s failed (%s); trying again in %.0f s", what, describe(exc),
                        wait)
        await asyncio.sleep(wait)
        if on_retry is not None:
            on_retry()
        wait = min(wait * 2, max_wait)
