"""The asyncio side of one job: what a caller of `Executor.submit` holds on to.

Loop thread only: the queue, future and event below are asyncio objects, which are not
thread-safe. The worker thread never calls into a handle; it hands events to the loop, and
the executor's `_deliver` (on the loop) pushes them here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bot.executor.jobs import FINAL_EVENTS, Job, JobEvent, JobState


class JobHandle:
    """The asyncio side of one job: its events, in order, ending with a final one.

    `events`, `wait` and `recorded` are for whoever submitted the job; `push` and
    `mark_recorded` are the executor's side and nobody else calls them.
    """

    def __init__(self, job: Job) -> None:
        self.job = job
        self.state = JobState.QUEUED  # kept by the executor as events are delivered
        self.position: int | None = None  # the last announced place in the queue
        self.note: str | None = None  # the last announced reason it cannot start yet
        self._events: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._final: asyncio.Future[JobEvent] = asyncio.get_running_loop().create_future()
        # Set once the store has recorded the final state (images written, for image jobs).
        self._recorded = asyncio.Event()
        self._stored: object = None  # what the store returned for the final state

    # ----- the executor's side ----------------------------------------------------------------

    def push(self, event: JobEvent) -> None:
        """Hand the job's next event to its readers. Executor only, on the loop; the
        executor delivers the final event once, and nothing after it."""
        self._events.put_nowait(event)
        if isinstance(event, FINAL_EVENTS) and not self._final.done():
            self._final.set_result(event)

    def mark_recorded(self, stored: object = None) -> None:
        """The store holds the final state now (or gave up trying: `stored` is None):
        release `recorded` and `stored`. Executor only, on the loop."""
        self._stored = stored
        self._recorded.set()

    # ----- the caller's side ------------------------------------------------------------------

    async def events(self) -> AsyncIterator[JobEvent]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, FINAL_EVENTS):
                return

    async def wait(self) -> JobEvent:
        """The final event (Done, Failed or Cancelled)."""
        # Shielded: a caller that times out must not cancel the future other waiters share.
        return await asyncio.shield(self._final)

    async def recorded(self) -> None:
        """Wait until the store holds the job's final state (its image files included)."""
        await self._recorded.wait()

    async def stored(self) -> object:
        """What the store recorded for the final state (for the job repository: the job's
        record, with its files, or with the reason they could not be written); None when
        there is no store or its write failed."""
        await self._recorded.wait()
        return self._stored
