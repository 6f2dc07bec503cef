"""First come, first served per story: each operation starts when the previous one ended.

A turn is taken synchronously, the moment a request arrives (before any await), so lines are
written and illustrated in the order members asked for them, whatever the network does to
the acknowledgements in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from types import TracebackType


class Turn:
    def __init__(self, turns: Turns, key: Hashable, before: asyncio.Future[None] | None,
                 mine: asyncio.Future[None]) -> None:
        self._turns = turns
        self._key = key
        self._before = before
        self._mine = mine

    async def wait(self) -> None:
        """Return once every earlier turn on the same key has ended."""
        if self._before is not None:
            # shield: cancelling this waiter must not mark the earlier turn as ended.
            await asyncio.shield(self._before)

    def end(self) -> None:
        """Let the next turn go; safe to call more than once, and without waiting first.

        A turn that ends early (a refused request) still lets the next one go only after the
        turns before it ended, so the chain never lets two operations overlap."""
        if self._before is None or self._before.done():
            self._release()
        else:
            self._before.add_done_callback(lambda _: self._release())

    def _release(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)
        self._turns._forget(self._key, self._mine)

    async def __aenter__(self) -> Turn:
        await self.wait()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.end()


class Turns:
    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Future[None]] = {}

    def take(self, key: Hashable) -> Turn:
        """A place in the line for `key`; always `end()` it (or use `async with`)."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        before = self._tails.get(key)
        self._tails[key] = mine
        return Turn(self, key, before, mine)

    def busy(self, key: Hashable) -> bool:
        return key in self._tails

    @property
    def active(self) -> int:
        """How many keys have an operation running or waiting."""
        return len(self._tails)

    def _forget(self, key: Hashable, future: asyncio.Future[None]) -> None:
        if self._tails.get(key) is future:
            del self._tails[key]
