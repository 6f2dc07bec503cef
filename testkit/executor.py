"""A scripted stand-in for the models, for the executor tests: each job's seed line says
what to do ("label|steps|ok" or "...|fail"); it sleeps per step (as a GPU releases the GIL),
reports progress, honours cancel, and can be made to run out of memory or to wait on a gate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence

from bot.executor.executor import OutOfMemory, RunContext
from bot.executor.handle import JobHandle
from bot.executor.jobs import Job, JobEvent, JobResult, Started, TextParams, TextResult


def text_job(user: int, label: str = "", steps: int = 3, fail: bool = False) -> Job:
    # The scripted runner reads its instructions from the seed line.
    line = f"{label}|{steps}|{'fail' if fail else 'ok'}"
    return Job(user_id=user, params=TextParams(seed_line=line, lines=(), rng_seed=0))


class ScriptedRunner:
    def __init__(self, step_s: float = 0.01, batchable: bool = False) -> None:
        self.step_s = step_s
        self.batchable = batchable
        self.order: list[str] = []
        self.batches: list[list[str]] = []
        self.steps_run: dict[str, int] = {}
        self.oom_over: int | None = None
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def batch_key(self, job: Job) -> Hashable | None:
        return "same" if self.batchable else None

    def batch_size(self, job: Job) -> int:
        return 1

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        self.calls += 1
        self.gate.wait(5)
        if self.oom_over is not None and len(jobs) > self.oom_over:
            raise OutOfMemory("CUDA out of memory")
        labels = [self._script(j)[0] for j in jobs]
        self.batches.append(labels)
        self.order.extend(labels)
        if any(self._script(j)[2] == "fail" for j in jobs) and len(jobs) > 1:
            raise RuntimeError("one job in the batch is broken")
        steps = int(self._script(jobs[0])[1])
        for step in range(1, steps + 1):
            if all(ctx.cancelled(j.id) for j in jobs):
                break
            time.sleep(self.step_s)
            for j in jobs:
                self.steps_run[j.id] = step
                ctx.progress(j, step, steps, None)
        out: list[JobResult | Exception] = []
        for j in jobs:
            label, _, verdict = self._script(j)
            out.append(ValueError(f"{label} is broken") if verdict == "fail"
                       else TextResult(f"done {label}", {}, "scripted"))
        return out

    @staticmethod
    def _script(job: Job) -> list[str]:
        assert isinstance(job.params, TextParams)
        return job.params.seed_line.split("|")


async def events_of(handle: JobHandle) -> list[JobEvent]:
    return [e async for e in handle.events()]


async def until_running(handle: JobHandle) -> None:
    async for event in handle.events():
        if isinstance(event, Started):
            return
