"""JobHandle: the executor pushes events, the submitter reads them."""

from __future__ import annotations

import asyncio

import pytest

from bot.executor.handle import JobHandle
from bot.executor.jobs import (
    Done,
    Job,
    JobEvent,
    Progress,
    Queued,
    Started,
    TextParams,
    TextResult,
)


def text_job() -> Job:
    return Job(user_id=1, params=TextParams(seed_line="x", lines=(), rng_seed=0))


async def read_all(handle: JobHandle) -> list[JobEvent]:
    return [e async for e in handle.events()]


async def test_events_end_with_the_final_one_and_wait_returns_it() -> None:
    handle = JobHandle(text_job())
    waiting = asyncio.ensure_future(handle.wait())
    reading = asyncio.ensure_future(read_all(handle))
    done = Done(TextResult("ok", {}, "scripted"))
    for event in (Queued(1, None), Started(1), Progress(1, 2)):
        handle.push(event)
    await asyncio.sleep(0)
    assert not waiting.done() and not reading.done()  # no final event yet
    handle.push(done)
    assert await asyncio.wait_for(reading, 1) == [Queued(1, None), Started(1), Progress(1, 2),
                                                  done]
    assert await asyncio.wait_for(waiting, 1) is done
    assert await asyncio.wait_for(handle.wait(), 1) is done  # and again, for a later caller


async def test_a_waiter_that_gives_up_does_not_cancel_the_others() -> None:
    handle = JobHandle(text_job())
    other = asyncio.ensure_future(handle.wait())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(handle.wait(), 0.01)
    done = Done(TextResult("ok", {}, "scripted"))
    handle.push(done)
    assert await asyncio.wait_for(other, 1) is done


async def test_recorded_returns_after_mark_recorded() -> None:
    handle = JobHandle(text_job())
    recorded = asyncio.ensure_future(handle.recorded())
    handle.push(Done(TextResult("ok", {}, "scripted")))
    await asyncio.sleep(0.01)
    assert not recorded.done()  # the final event alone does not mean the store has it
    handle.mark_recorded()
    await asyncio.wait_for(recorded, 1)
    await asyncio.wait_for(handle.recorded(), 1)  # stays released
