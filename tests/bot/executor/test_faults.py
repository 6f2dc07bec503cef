"""The executor under faults: a clean stop (drain), a hung step, a worker that never comes
back, jobs recovered after a crash, and out-of-memory back-off that recovers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.executor.executor import Executor, ExecutorLimits, OutOfMemory, Refused, RunContext
from bot.executor.jobs import (
    Done,
    Failed,
    GeneratedImage,
    ImageParams,
    ImageResult,
    Job,
    JobResult,
    JobState,
    Started,
    TextResult,
)
from testkit.executor import ScriptedRunner, events_of, text_job, until_running


async def test_a_clean_stop_lets_the_running_batch_finish(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite3")
    store = JobRepository(db, tmp_path / "images")
    runner = ScriptedRunner(step_s=0.05)
    ex = Executor(runner, ExecutorLimits(stop_grace_s=30), store=store)
    await ex.start()
    try:
        running = await ex.submit(text_job(1, "running", steps=6))
        waiting = await ex.submit(text_job(2, "waiting"))
        await until_running(running)
        assert await ex.drain()
        with pytest.raises(Refused, match="restarting"):
            await ex.submit(text_job(3, "late"))
        assert isinstance(await running.wait(), Done)
    finally:
        await ex.stop()
    assert runner.order == ["running"]  # nothing new started while draining
    rows = {job.id: state for job, state in await store.unfinished_jobs()}
    assert rows == {waiting.job.id: JobState.QUEUED}  # for the next start
    record = await store.get(running.job.id)
    assert record is not None and record.state is JobState.RENDERED
    await db.close()


async def test_a_stop_past_the_grace_interrupts_without_counting_an_attempt(
    tmp_path: Path,
) -> None:
    db = await open_database(tmp_path / "db.sqlite3")
    store = JobRepository(db, tmp_path / "images")
    runner = ScriptedRunner(step_s=0.05)
    ex = Executor(runner, ExecutorLimits(stop_grace_s=0.1), store=store)
    await ex.start()
    handle = await ex.submit(text_job(1, "long", steps=200))
    await until_running(handle)
    started = time.monotonic()
    assert await ex.drain()
    await ex.stop()
    assert time.monotonic() - started < 5
    assert [(job.id, state, job.attempts) for job, state in await store.unfinished_jobs()] == [
        (handle.job.id, JobState.QUEUED, 0)]
    assert runner.steps_run[handle.job.id] < 200
    await db.close()


async def test_a_hung_step_fails_its_job_frees_the_slot_and_marks_the_worker_stuck() -> None:
    runner = ScriptedRunner(step_s=0.01)
    limits = ExecutorLimits(per_user_limit=1, step_timeout_s=0.4)
    ex = Executor(runner, limits)
    await ex.start()
    try:
        runner.gate.clear()  # the next run blocks before its first step, like a hung GPU call
        hung = await ex.submit(text_job(1, "hung"))
        final = await asyncio.wait_for(hung.wait(), 10)
        assert isinstance(final, Failed) and "stopped responding" in final.reason
        assert ex.snapshot() == []
        # The member's slot is free again: their next job is accepted (it waits its turn).
        queued = await ex.submit(text_job(1, "next"))
        await asyncio.wait_for(ex.stuck.wait(), 10)  # the worker never came back
        runner.gate.set()  # it does come back after all: the hung job's result is dropped
        assert isinstance(await asyncio.wait_for(queued.wait(), 10), Done)
        assert isinstance(await hung.wait(), Failed)
    finally:
        runner.gate.set()
        await ex.stop()


async def test_stop_does_not_wait_forever_for_a_stuck_worker() -> None:
    runner = ScriptedRunner()
    ex = Executor(runner, ExecutorLimits(step_timeout_s=0.3, stop_grace_s=0.1))
    await ex.start()
    runner.gate.clear()
    handle = await ex.submit(text_job(1, "stuck"))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert not await ex.drain()
    await ex.stop()
    assert time.monotonic() - started < 5
    runner.gate.set()
    del handle


async def test_jobs_recovered_from_a_crash_run_alone(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite3")
    store = JobRepository(db, tmp_path / "images")
    crashed = [text_job(u, f"was-running-{u}") for u in (1, 2, 3)]
    queued = [text_job(u, f"was-queued-{u}") for u in (4, 5)]
    for job in crashed + queued:
        await store.job_accepted(job)
    for job in crashed:  # the batch the process died in
        job.attempts = 1
        await store.job_started(job)
    runner = ScriptedRunner(batchable=True)
    async with Executor(runner, ExecutorLimits(batch_limit=4), store=store) as ex:
        handles = await ex.restore()
        finals = [await asyncio.wait_for(h.wait(), 10) for h in handles]
    assert all(isinstance(f, Done) for f in finals)
    running_batches = [b for b in runner.batches if any("was-running" in x for x in b)]
    assert running_batches == [[f"was-running-{u}"] for u in (1, 2, 3)]
    assert ["was-queued-4", "was-queued-5"] in runner.batches  # the others batch as usual
    await db.close()


async def test_a_job_that_crashed_twice_fails_alone(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "db.sqlite3")
    store = JobRepository(db, tmp_path / "images")
    poison, mate = text_job(1, "poison"), text_job(2, "mate")
    for job, attempts in ((poison, 2), (mate, 1)):
        await store.job_accepted(job)
        job.attempts = attempts
        await store.job_started(job)
    runner = ScriptedRunner(batchable=True)
    async with Executor(runner, store=store) as ex:
        by_id = {h.job.id: h for h in await ex.restore()}
        poisoned = await asyncio.wait_for(by_id[poison.id].wait(), 10)
        survived = await asyncio.wait_for(by_id[mate.id].wait(), 10)
    assert isinstance(poisoned, Failed) and "restarted twice" in poisoned.reason
    assert isinstance(survived, Done)
    assert runner.order == ["mate"]
    await db.close()


class PictureRunner(ScriptedRunner):
    """The scripted runner for picture jobs: a job is one picture; a batch of more than
    `oom_over` pictures runs out of memory; text jobs are lines."""

    def batch_size(self, job: Job) -> int:
        return job.params.count if isinstance(job.params, ImageParams) else 1

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        self.gate.wait(5)
        if self.oom_over is not None and len(jobs) > self.oom_over:
            raise OutOfMemory("CUDA out of memory")
        self.batches.append([self.label(j) for j in jobs])
        picture = GeneratedImage(Image.new("RGB", (8, 8)), 1)
        return [ImageResult((picture,), {}, "scripted", "Euler a")
                if isinstance(j.params, ImageParams) else TextResult("a line", {}, "scripted")
                for j in jobs]

    @staticmethod
    def label(job: Job) -> str:
        return job.params.subject if isinstance(job.params, ImageParams) else "line"


def picture_job(user: int, label: str) -> Job:
    return Job(user_id=user, params=ImageParams(
        prompt=label, negative="", subject=label, style=None, seeds=(1,), steps=2,
        guidance=7.0, width=8, height=8))


async def run_all(ex: Executor, runner: PictureRunner, jobs: list[Job]) -> None:
    """Submit `jobs` while a blocker runs, so that they wait and batch together."""
    runner.gate.clear()
    blocker = await ex.submit(text_job(99, "blocker"))
    await until_running(blocker)
    handles = [await ex.submit(j) for j in jobs]
    runner.gate.set()
    await asyncio.gather(*(asyncio.wait_for(h.wait(), 10) for h in [blocker, *handles]))


async def test_the_batch_limit_grows_back_after_out_of_memory() -> None:
    runner = PictureRunner(batchable=True)
    runner.oom_over = 2  # a batch of more than 2 pictures runs out of memory
    ex = Executor(runner, ExecutorLimits(batch_limit=4, oom_regrow_after=2))
    async with ex:
        await run_all(ex, runner, [picture_job(u, f"p{u}") for u in range(1, 5)])
        assert ex.batch_limit == 2  # halved by the out-of-memory error
        runner.oom_over = None  # the memory is there again
        # Story lines are no evidence: batches of one line never grow the limit back.
        await run_all(ex, runner, [text_job(u, f"line{u}") for u in (1, 2, 3)])
        assert ex.batch_limit == 2
        for round_ in range(2):  # two full batches of pictures at the lowered limit
            await run_all(ex, runner, [picture_job(u, f"r{round_}-{u}") for u in (1, 2)])
            assert [f"r{round_}-1", f"r{round_}-2"] in runner.batches
        assert ex.batch_limit == 4
        events = await asyncio.wait_for(events_of(await ex.submit(text_job(9, "after"))), 10)
        assert any(isinstance(e, Started) for e in events)


async def test_cancelling_a_hung_job_still_lets_the_watchdog_see_the_hang() -> None:
    runner = ScriptedRunner(step_s=0.01)
    ex = Executor(runner, ExecutorLimits(step_timeout_s=0.4))
    await ex.start()
    try:
        runner.gate.clear()
        hung = await ex.submit(text_job(1, "hung"))
        await until_running(hung)
        assert ex.cancel(hung.job.id)  # the member presses ✖ on the stuck progress bar
        await asyncio.wait_for(ex.stuck.wait(), 10)
    finally:
        runner.gate.set()
        await ex.stop()
