"""The session's runner, made to write story lines visibly: before each text job runs for
real, it reports a few partial texts (`PARTS`, one of them with a blocked term the worker
would never send, to prove the bot checks again), a moment apart, as a worker writing token
by token does. It keeps every text result, so a test can compare what was offered."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

from bot.executor.executor import RunContext
from bot.executor.jobs import Job, JobResult, TextParams, TextResult

PARTS = ("The wind", "The wind rose", "The forbidden wind", "The wind rose over the hill")
PART_GAP_S = 0.5  # about as often as a worker reports


class LiveTextRunner:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.results: list[TextResult] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        if isinstance(jobs[0].params, TextParams):
            for step, text in enumerate(PARTS, start=1):
                for job in jobs:
                    ctx.line(job, step, len(PARTS) + 1, text)
                time.sleep(PART_GAP_S)
        results = cast(list[JobResult | Exception], self.inner.run(jobs, ctx))
        self.results += [r for r in results if isinstance(r, TextResult)]
        return results
