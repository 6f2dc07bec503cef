"""Status edits: queue-position edits of many jobs are spread out; progress is not held up."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from cogs.imagine.status import EditPacer, ThrottledEditor


class FakeStatus:
    """Stands in for StatusMessage: records when each edit happened and what it said."""

    def __init__(self, number: int, log: list[tuple[float, int, str]]) -> None:
        self.id = number
        self.log = log

    async def edit(self, **fields: Any) -> None:
        self.log.append((time.monotonic(), self.id, fields.get("content", "")))


async def test_queue_edits_of_many_jobs_are_spread_over_time() -> None:
    log: list[tuple[float, int, str]] = []
    pacer = EditPacer(per_second=50)
    editors = [ThrottledEditor(FakeStatus(i, log), 0.5, pacer) for i in range(10)]  # type: ignore[arg-type]
    started = time.monotonic()
    for editor in editors:
        editor.show("Queued #2", low_priority=True)
    await asyncio.sleep(0.4)
    assert len(log) == 10  # every job got its edit...
    times = sorted(t for t, _, _ in log)
    assert times[-1] - started >= 9 / 50 * 0.9  # ...one slot (20 ms) apart, not in one burst
    for editor in editors:
        editor.stop()


async def test_an_urgent_state_does_not_wait_for_the_pacer() -> None:
    log: list[tuple[float, int, str]] = []
    pacer = EditPacer(per_second=1)
    pacer.reserve()  # the next free slot is a second away
    editor = ThrottledEditor(FakeStatus(1, log), 0.5, pacer)  # type: ignore[arg-type]
    editor.show("Queued #3", low_priority=True)
    await asyncio.sleep(0.05)
    assert log == []  # waiting for its slot
    editor.show("Starting…")  # the job started: shown at once, the queue text is dropped
    await asyncio.sleep(0.05)
    assert [content for _, _, content in log] == ["Starting…"]
    editor.stop()


async def test_a_newer_queue_state_keeps_a_pending_urgent_one_urgent() -> None:
    log: list[tuple[float, int, str]] = []
    pacer = EditPacer(per_second=1)
    pacer.reserve()
    editor = ThrottledEditor(FakeStatus(1, log), 0.5, pacer)  # type: ignore[arg-type]
    editor.show("Starting…")
    editor.show("Queued #1", low_priority=True)  # e.g. a batch split: back in the queue
    await asyncio.sleep(0.05)
    assert [content for _, _, content in log] == ["Queued #1"]  # at once, the newest text
    editor.stop()
