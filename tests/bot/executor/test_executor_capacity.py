"""batch_limit "auto": the executor sizes each batch by the runner's capacity (the first job
decides), a fixed limit overrides it, and out-of-memory halves what the batch was allowed.
Also the runner's notices ("loading model X") as Progress events with a note."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.executor.executor import Executor, ExecutorLimits, RunContext
from bot.executor.jobs import Done, Job, JobResult, Progress
from testkit.executor import ScriptedRunner, events_of, text_job, until_running


class SizedRunner(ScriptedRunner):
    """Batchable, with a capacity per batch; records the limit each run was given."""

    def __init__(self, capacity: int | None) -> None:
        super().__init__(batchable=True)
        self.capacity = capacity
        self.asked: list[str] = []
        self.max_batches: list[int] = []

    def batch_capacity(self, job: Job) -> int | None:
        self.asked.append(self._script(job)[0])
        return self.capacity

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        self.max_batches.append(ctx.max_batch)
        return super().run(jobs, ctx)


async def run_all(runner: SizedRunner, limits: ExecutorLimits, users: int = 5) -> Executor:
    runner.gate.clear()
    async with Executor(runner, limits) as ex:
        blocker = await ex.submit(text_job(9, "blocker"))
        await asyncio.wait_for(until_running(blocker), 5)
        handles = [await ex.submit(text_job(u, f"u{u}")) for u in range(1, users + 1)]
        runner.gate.set()
        ends = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 5)
        await blocker.wait()
    assert all(isinstance(e, Done) for e in ends)
    return ex


async def test_auto_batches_hold_what_the_runner_says_fits() -> None:
    runner = SizedRunner(capacity=2)
    await run_all(runner, ExecutorLimits(batch_limit=16, auto_batch=True, per_user_limit=9))
    assert runner.batches[1:] == [["u1", "u2"], ["u3", "u4"], ["u5"]]
    assert runner.max_batches[1:] == [2, 2, 2]  # the runner splits big jobs to it too
    assert runner.asked[:2] == ["blocker", "u1"]  # the batch's first job decides


async def test_without_a_bound_from_the_runner_the_ceiling_applies() -> None:
    runner = SizedRunner(capacity=None)
    await run_all(runner, ExecutorLimits(batch_limit=3, auto_batch=True))
    assert runner.batches[1:] == [["u1", "u2", "u3"], ["u4", "u5"]]


async def test_a_fixed_limit_overrides_the_capacity() -> None:
    runner = SizedRunner(capacity=1)
    await run_all(runner, ExecutorLimits(batch_limit=4))
    assert runner.batches[1:] == [["u1", "u2", "u3", "u4"], ["u5"]]
    assert runner.asked == []


async def test_out_of_memory_halves_what_the_batch_was_allowed() -> None:
    runner = SizedRunner(capacity=4)
    runner.oom_over = 2
    ex = await run_all(runner, ExecutorLimits(batch_limit=16, auto_batch=True))
    assert ex.batch_limit == 2  # half of the 4 it was allowed, not of the ceiling 16
    assert runner.max_batches[1:] == [4, 2, 2, 2, 2, 2]  # the failed batch, then each alone


class FailingCapacity(SizedRunner):
    def batch_capacity(self, job: Job) -> int | None:
        raise RuntimeError("a bug in the sizing")


async def test_a_failing_capacity_falls_back_to_the_ceiling() -> None:
    runner = FailingCapacity(capacity=None)
    await run_all(runner, ExecutorLimits(batch_limit=2, auto_batch=True), users=2)
    assert runner.batches[1:] == [["u1", "u2"]]


class NoticeRunner(ScriptedRunner):
    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        for job in jobs:
            ctx.notify(job, "loading model dreamy")
        return super().run(jobs, ctx)


async def test_a_notice_arrives_as_step_zero_with_its_note() -> None:
    async with Executor(NoticeRunner()) as ex:
        events = await asyncio.wait_for(events_of(await ex.submit(text_job(1, "a"))), 5)
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[0] == Progress(0, 0, note="loading model dreamy")
    assert [e.step for e in progress[1:]] == [1, 2, 3]
    assert all(e.note is None for e in progress[1:])
