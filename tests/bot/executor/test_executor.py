"""The executor with a scripted runner: order, fairness, limits, cancel, failures, restarts.

The runner (testkit/executor.py) is a stand-in for the models (it sleeps per step, as a GPU
would release the GIL); the executor, the fair queue and the SQLite store are the real ones.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.executor.executor import (
    Executor,
    ExecutorLimits,
    Refused,
)
from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    JobState,
    Progress,
    Queued,
    Started,
)
from testkit.executor import ScriptedRunner, events_of, text_job, until_running


async def test_events_arrive_in_order() -> None:
    runner = ScriptedRunner()
    async with Executor(runner) as ex:
        events = await asyncio.wait_for(events_of(await ex.submit(text_job(1, "a"))), 5)
    kinds = [type(e) for e in events]
    assert kinds[0] is Queued and events[0].position == 1  # type: ignore[union-attr]
    assert kinds[1] is Started
    assert [e.step for e in events if isinstance(e, Progress)] == [1, 2, 3]
    assert isinstance(events[-1], Done)


async def test_round_robin_between_users() -> None:
    runner = ScriptedRunner()
    runner.gate.clear()  # hold the worker until everything is queued
    async with Executor(runner, ExecutorLimits(per_user_limit=5, batch_limit=1)) as ex:
        handles = [await ex.submit(text_job(1, "blocker"))]
        await asyncio.wait_for(until_running(handles[0]), 5)
        for job in [text_job(1, "a1"), text_job(1, "a2"), text_job(1, "a3"),
                    text_job(2, "b1"), text_job(3, "c1"), text_job(2, "b2")]:
            handles.append(await ex.submit(job))
        waiting = [e.job.params.seed_line.split("|")[0]  # type: ignore[union-attr]
                   for e in ex.snapshot() if e.state is JobState.QUEUED]
        assert waiting == ["a1", "b1", "c1", "a2", "b2", "a3"]
        runner.gate.set()
        await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 10)
    assert runner.order == ["blocker", "a1", "b1", "c1", "a2", "b2", "a3"]


async def test_positions_and_eta_follow_the_queue() -> None:
    runner = ScriptedRunner(step_s=0.02)
    async with Executor(runner, ExecutorLimits(per_user_limit=5, batch_limit=1)) as ex:
        first = await ex.submit(text_job(1, "warm"))
        await first.wait()  # one finished job teaches the executor its speed
        runner.gate.clear()
        blocker = await ex.submit(text_job(9, "blocker"))
        await asyncio.wait_for(until_running(blocker), 5)
        handles = [await ex.submit(text_job(u, f"j{u}")) for u in (1, 2, 3)]
        runner.gate.set()
        last = await asyncio.wait_for(events_of(handles[-1]), 5)
    positions = [e.position for e in last if isinstance(e, Queued)]
    assert positions[0] == 3 and positions[-1] == 1
    assert positions == sorted(positions, reverse=True)
    assert all(e.eta_s is not None and e.eta_s >= 0 for e in last if isinstance(e, Queued))


async def test_limits_refuse_with_reasons() -> None:
    runner = ScriptedRunner()
    runner.gate.clear()
    async with Executor(runner, ExecutorLimits(queue_limit=3, per_user_limit=2)) as ex:
        running = await ex.submit(text_job(1))
        await asyncio.wait_for(until_running(running), 5)
        await ex.submit(text_job(1))
        with pytest.raises(Refused, match=r"limit is 2 per person"):
            await ex.submit(text_job(1))
        await ex.submit(text_job(2))
        await ex.submit(text_job(3))
        with pytest.raises(Refused, match=r"queue is full \(3 of 3"):
            await ex.submit(text_job(4))
        runner.gate.set()


async def test_cancel_queued_job_never_runs() -> None:
    runner = ScriptedRunner()
    runner.gate.clear()
    async with Executor(runner, ExecutorLimits(batch_limit=1)) as ex:
        running = await ex.submit(text_job(1, "first"))
        queued = await ex.submit(text_job(2, "second"))
        assert ex.cancel(queued.job.id, by_user=2)
        assert not ex.cancel(queued.job.id)  # twice is a no-op
        runner.gate.set()
        assert isinstance(await queued.wait(), Cancelled)
        assert isinstance(await running.wait(), Done)
    assert runner.order == ["first"]


async def test_cancel_running_job_stops_within_one_step() -> None:
    runner = ScriptedRunner(step_s=0.02)
    async with Executor(runner) as ex:
        handle = await ex.submit(text_job(1, "long", steps=500))
        async for event in handle.events():
            if isinstance(event, Progress) and event.step == 3:
                assert ex.cancel(handle.job.id)
            if isinstance(event, Cancelled):
                break
        after = await ex.submit(text_job(2, "next"))
        assert isinstance(await asyncio.wait_for(after.wait(), 5), Done)
    assert runner.steps_run[handle.job.id] <= 4


async def test_a_failing_job_fails_alone() -> None:
    runner = ScriptedRunner()
    async with Executor(runner) as ex:
        bad = await ex.submit(text_job(1, "bad", fail=True))
        good = await ex.submit(text_job(2, "good"))
        bad_end, good_end = await asyncio.wait_for(asyncio.gather(bad.wait(), good.wait()), 5)
    assert isinstance(bad_end, Failed) and "bad is broken" in bad_end.reason
    assert isinstance(good_end, Done)


async def test_batches_compatible_jobs_and_splits_a_broken_batch() -> None:
    runner = ScriptedRunner(batchable=True)
    runner.gate.clear()
    async with Executor(runner, ExecutorLimits(batch_limit=4)) as ex:
        blocker = await ex.submit(text_job(9, "blocker"))
        await asyncio.wait_for(until_running(blocker), 5)
        handles = [await ex.submit(text_job(u, f"u{u}", fail=(u == 2))) for u in (1, 2, 3)]
        runner.gate.set()
        ends = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 5)
        await blocker.wait()
    assert ["u1", "u2", "u3"] in runner.batches  # tried together first
    assert [type(e) for e in ends] == [Done, Failed, Done]  # then each alone


async def test_out_of_memory_lowers_the_batch_limit() -> None:
    runner = ScriptedRunner(batchable=True)
    runner.oom_over = 2
    runner.gate.clear()
    async with Executor(runner, ExecutorLimits(batch_limit=4)) as ex:
        blocker = await ex.submit(text_job(9, "blocker"))
        await asyncio.wait_for(until_running(blocker), 5)
        handles = [await ex.submit(text_job(u, f"u{u}")) for u in (1, 2, 3, 4)]
        runner.gate.set()
        ends = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 5)
        await blocker.wait()
        assert ex.batch_limit == 2
    assert all(isinstance(e, Done) for e in ends)


async def test_one_image_out_of_memory_fails_once_and_keeps_the_limit() -> None:
    """Halving the batch cannot help a single image: no retries, no lowered limit."""
    runner = ScriptedRunner(batchable=True)
    runner.oom_over = 0
    async with Executor(runner, ExecutorLimits(batch_limit=4)) as ex:
        end = await asyncio.wait_for((await ex.submit(text_job(1, "huge"))).wait(), 5)
        assert ex.batch_limit == 4
    assert isinstance(end, Failed)
    assert runner.calls == 1


async def test_event_loop_stays_responsive_while_worker_runs() -> None:
    runner = ScriptedRunner(step_s=0.05)
    async with Executor(runner) as ex:
        handle = await ex.submit(text_job(1, "busy", steps=20))
        lateness = []
        while handle.state is not JobState.RENDERED:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lateness.append(time.perf_counter() - before - 0.01)
            if len(lateness) > 500:
                break
        await handle.wait()
    assert max(lateness) < 0.05, f"event loop was blocked for {max(lateness):.3f}s"


async def _repo(path: Path) -> JobRepository:
    return JobRepository(await open_database(path), path.parent / "images")


async def test_restart_requeues_and_retries_running_job_once(tmp_path: Path) -> None:
    db_path = tmp_path / "jobs.sqlite3"
    # First life: one job starts running, two wait; then the process "dies" (no clean stop).
    repo = await _repo(db_path)
    runner = ScriptedRunner()
    runner.gate.clear()
    ex = Executor(runner, ExecutorLimits(per_user_limit=5, batch_limit=1), store=repo)
    await ex.start()
    running = await ex.submit(text_job(1, "was-running"))
    await ex.submit(text_job(2, "waiting-1"))
    await ex.submit(text_job(3, "waiting-2"))
    await asyncio.wait_for(until_running(running), 5)
    await asyncio.sleep(0.05)  # let the store writer record the start
    await repo.db.close()

    # Second life: everything comes back, the interrupted job first (it was submitted first).
    repo2 = await _repo(db_path)
    states = {j.params.seed_line.split("|")[0]: (s, j.attempts)  # type: ignore[union-attr]
              for j, s in await repo2.unfinished_jobs()}
    assert states == {"was-running": (JobState.RUNNING, 1), "waiting-1": (JobState.QUEUED, 0),
                      "waiting-2": (JobState.QUEUED, 0)}
    runner2 = ScriptedRunner()
    async with Executor(runner2, ExecutorLimits(batch_limit=1), store=repo2) as ex2:
        handles = await ex2.restore()
        ends = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 5)
        await asyncio.sleep(0.05)
    assert all(isinstance(e, Done) for e in ends)
    assert sorted(runner2.order) == ["waiting-1", "waiting-2", "was-running"]
    record = await repo2.get(running.job.id)
    assert record is not None and record.state is JobState.RENDERED and record.job.attempts == 2
    assert record.result_text == "done was-running"
    await repo2.db.close()
    # release the first life's stuck worker thread
    runner.gate.set()
    await ex.stop()


async def test_job_interrupted_twice_is_failed(tmp_path: Path) -> None:
    repo = await _repo(tmp_path / "jobs.sqlite3")
    job = text_job(1, "unlucky")
    job.attempts = 2
    await repo.job_accepted(job)
    await repo.job_started(job)
    runner = ScriptedRunner()
    async with Executor(runner, store=repo) as ex:
        [handle] = await ex.restore()
        end = await asyncio.wait_for(handle.wait(), 5)
        await asyncio.sleep(0.05)
    assert isinstance(end, Failed) and "restarted twice" in end.reason
    assert runner.order == []
    record = await repo.get(job.id)
    assert record is not None and record.state is JobState.FAILED
    await repo.db.close()


async def test_clean_stop_leaves_running_job_queued(tmp_path: Path) -> None:
    repo = await _repo(tmp_path / "jobs.sqlite3")
    runner = ScriptedRunner(step_s=0.01)
    ex = Executor(runner, store=repo)
    await ex.start()
    handle = await ex.submit(text_job(1, "long", steps=1000))
    async for event in handle.events():
        if isinstance(event, Progress):
            break
    await ex.stop()
    [(job, state)] = await repo.unfinished_jobs()
    assert (job.id, state, job.attempts) == (handle.job.id, JobState.QUEUED, 0)
    await repo.db.close()


async def test_call_runs_on_the_worker_thread_before_queued_jobs() -> None:
    """Model loading goes through `call`: one OS thread runs all the torch work."""
    runner = ScriptedRunner()
    runner.gate.clear()
    seen: list[str] = []

    def note(label: str) -> str:
        seen.append(label)
        runner.order.append(label)
        return threading.current_thread().name

    async with Executor(runner, ExecutorLimits(per_user_limit=5, batch_limit=1)) as ex:
        first = await ex.submit(text_job(1, "running"))
        await asyncio.wait_for(until_running(first), 5)
        queued = await ex.submit(text_job(2, "queued"))
        call = asyncio.ensure_future(ex.call(lambda: note("call")))
        await asyncio.sleep(0.05)
        assert not call.done()  # the worker is busy with the running job
        runner.gate.set()
        assert await asyncio.wait_for(call, 5) == "gpu-worker"
        await asyncio.wait_for(queued.wait(), 5)
        runner_thread = await ex.call(threading.current_thread)
    assert runner.order == ["running", "call", "queued"]
    assert runner_thread.name == "gpu-worker"


async def test_call_raises_the_functions_error_and_the_worker_goes_on() -> None:
    def broken() -> None:
        raise LookupError("no such model")

    async with Executor(ScriptedRunner()) as ex:
        with pytest.raises(LookupError, match="no such model"):
            await ex.call(broken)
        assert await ex.call(lambda: 42) == 42
        assert isinstance(await asyncio.wait_for((await ex.submit(text_job(1))).wait(), 5), Done)


async def test_call_needs_a_running_executor() -> None:
    ex = Executor(ScriptedRunner())
    with pytest.raises(RuntimeError, match="not running"):
        await ex.call(lambda: None)
    await ex.start()
    await ex.stop()
    with pytest.raises(RuntimeError, match="not running"):
        await ex.call(lambda: None)


async def test_a_call_still_waiting_at_stop_is_told_so() -> None:
    runner = ScriptedRunner(step_s=0.02)
    ex = Executor(runner)
    await ex.start()
    running = await ex.submit(text_job(1, "long", steps=500))
    await asyncio.wait_for(until_running(running), 5)
    waiting = asyncio.ensure_future(ex.call(lambda: "never"))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(ex.stop(), 5)
    with pytest.raises(RuntimeError, match="stopped before running"):
        await asyncio.wait_for(waiting, 5)
