"""Turns: one operation at a time per story, in order of arrival."""

from __future__ import annotations

import asyncio

from bot.story import Turns


async def test_turns_run_in_order_of_arrival() -> None:
    turns = Turns()
    log: list[str] = []

    async def op(name: str, delay: float) -> None:
        async with turns.take("story"):
            log.append(f"{name} start")
            await asyncio.sleep(delay)
            log.append(f"{name} end")

    # Taken in this order; the slow first one must not be overtaken.
    await asyncio.gather(op("a", 0.05), op("b", 0.0), op("c", 0.01))
    assert log == ["a start", "a end", "b start", "b end", "c start", "c end"]
    assert not turns.busy("story")


async def test_other_stories_do_not_wait() -> None:
    turns = Turns()
    first = turns.take(1)
    await first.wait()
    other = turns.take(2)
    await asyncio.wait_for(other.wait(), 0.1)
    other.end()
    first.end()


async def test_a_turn_given_up_early_does_not_let_later_ones_overtake() -> None:
    turns = Turns()
    first, refused, third = turns.take("s"), turns.take("s"), turns.take("s")
    await first.wait()
    refused.end()  # e.g. bad input: answered without waiting for its turn
    waiter = asyncio.ensure_future(third.wait())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # the first is still running
    first.end()
    await asyncio.wait_for(waiter, 0.1)
    third.end()
    assert not turns.busy("s")


async def test_ending_twice_is_harmless() -> None:
    turns = Turns()
    turn = turns.take("s")
    turn.end()
    turn.end()
    assert not turns.busy("s")
