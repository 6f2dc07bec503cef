"""The registry of story operations asked for and not finished: what is busy, cancelling a
waiting one, and waiting for a turn."""

from __future__ import annotations

import asyncio

from bot.story import PendingWork, Turns
from bot.story.pending import LINE_BUSY


def add(work: PendingWork, op: str, line: int | None, *, story: int = 1,
        user: int = 7) -> object:
    return work.add(story_id=story, title="Sky", op=op, line=line, user_id=user,
                    user_name="alice")


def test_what_a_story_in_progress_answers() -> None:
    work = PendingWork()
    add(work, "continue", 3)  # line 3 is being written (Continue ▶ was pressed on line 2)
    assert work.busy(1, "continue", 3) == LINE_BUSY  # pressed on line 2 again
    assert work.busy(1, "continue", None) == LINE_BUSY  # an old button that names no line
    assert work.busy(1, "rewrite", 2) == LINE_BUSY  # line 2 is about to stop being the latest
    assert work.busy(1, "continue", 4) is None  # pressed on line 3: it waits for its turn
    assert work.busy(1, "rewrite", 3) is None  # line 3 is shown already: its op is finishing
    assert work.busy(1, "redraw", 2) is None and work.busy(1, "add") is None
    assert work.busy(2, "continue", 3) is None  # another story
    add(work, "rewrite", 3)
    assert work.busy(1, "rewrite", 3) == LINE_BUSY
    assert "being rewritten" in (work.busy(1, "redraw", 3) or "")
    add(work, "redraw", 1)
    assert "already being redrawn" in (work.busy(1, "redraw", 1) or "")


async def test_a_cancelled_operation_never_gets_its_turn() -> None:
    work, turns = PendingWork(), Turns()
    running = turns.take("s")
    await running.wait()
    first = work.add(story_id=1, title="Sky", op="add", line=None, user_id=7, user_name="a")
    second = work.add(story_id=1, title="Sky", op="add", line=None, user_id=8, user_name="b")
    t1, t2 = turns.take("s"), turns.take("s")
    waits = [asyncio.ensure_future(work.wait_turn(first, t1)),
             asyncio.ensure_future(work.wait_turn(second, t2))]
    await asyncio.sleep(0.01)
    assert [op.id for op in work.waiting()] == [first.id, second.id]
    assert [op.id for op in work.of_user(7)] == [first.id]
    assert work.cancel(first.id, by_user=7)
    assert not work.cancel(first.id)  # once
    assert await asyncio.wait_for(waits[0], 5) is False  # at once, not after its turn
    assert first.cancelled and first.cancelled_by == 7
    t1.end()
    assert not waits[1].done()  # the turns before it still run
    running.end()
    assert await asyncio.wait_for(waits[1], 5) is True
    assert second.running and work.waiting() == []
    assert not work.cancel(second.id)  # running: its jobs are the executor's to cancel
    work.finish(second)
    work.finish(second)
    t2.end()
    assert work.active == 0 and not turns.busy("s")
