"""The executor: one worker thread owns the models; asyncio talks to it through a queue.

Threading rules (the races are all here, so they are spelled out):
- `_lock` guards the fair queue, `_running`, `_cancelled` and `_handles` membership.
- The worker thread never touches asyncio objects; it hands events to the loop with
  `loop.call_soon_threadsafe`, and `_deliver` (on the loop) is the only place that pushes
  events into handles (`JobHandle.push`, bot/executor/handle.py) and orders the store writes.
- A job's final event is delivered once: whoever finishes it first (the worker, or `cancel`
  for a queued job) marks it finished under the lock.
- A runner sees the executor only through a `BatchContext`, made per batch and used on the
  worker thread: it is handed `_emit`, `_is_cancelled` and the batch limit, not the executor.
  Its `PreviewBudget` and the executor's `PreviewCost` (bot/executor/previews.py) are worker
  thread only, so they take no lock.
- All model work runs on the worker thread, loading included (`call`): each OS thread that
  runs torch on a CPU gets its own OpenMP thread team, and once more OpenMP threads exist
  than cores, libgomp stops spinning between parallel regions: every small op then waits on
  a futex, and a tiny model rendered ~2x slower (docs/PERFORMANCE.md, "What it took").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from bot.executor.fairqueue import FairQueue
from bot.executor.handle import JobHandle
from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    Job,
    JobEvent,
    JobKind,
    JobResult,
    JobState,
    Progress,
    Queued,
    Started,
)
from bot.executor.previews import PreviewBudget, PreviewCost
from bot.executor.workers import WorkerInfo

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "BatchContext",
    "Executor",
    "ExecutorLimits",
    "JobRunner",
    "JobStore",
    "OutOfMemory",
    "PreviewFn",
    "QueueEntry",
    "Refused",
    "RunContext",
]

log = logging.getLogger(__name__)

# How long a stop waits for an interrupted batch to reach its next step before it leaves
# the worker behind (a step takes seconds even on a CPU; one that takes longer is hung).
INTERRUPT_WAIT_S = 30.0
# How long a batch waits for the store to record it as running before it runs anyway.
RECORD_WAIT_S = 10.0

# What results rendered in this process say ran them (remote workers give their names).
LOCAL_WORKER = "local"

PreviewFn = Callable[[], "Image | None"]
T = TypeVar("T")


class Refused(Exception):
    """A job was not accepted; `reason` is meant for the user. `restarting`: only because
    the bot is stopping cleanly (the same request is welcome after the restart)."""

    def __init__(self, reason: str, *, restarting: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.restarting = restarting


class OutOfMemory(RuntimeError):
    """Raised by a runner when the device ran out of memory for a batch."""


class RunContext(Protocol):
    @property
    def max_batch(self) -> int:
        """The most images to render in one call (lowered after out-of-memory errors)."""
        ...

    def progress(self, job: Job, step: int, total: int, preview: PreviewFn | None) -> None: ...

    def notify(self, job: Job, text: str) -> None:
        """Tell the job's member what the run is doing before its steps (e.g. "loading
        model X"): a Progress of step 0 of 0 with that note."""
        ...

    def line(self, job: Job, step: int, total: int, text: str) -> None:
        """A story line as written so far (live writing), at token `step` of at most
        `total`: a Progress carrying `text`, which the runner has already checked against
        the blocked terms. Progress without text in between means no new text."""
        ...

    def cancelled(self, job_id: str) -> bool: ...


class JobRunner(Protocol):
    """Runs jobs on the worker thread. Implementations own the models.

    Optional: `batch_capacity(job) -> int | None`, the most pictures like `job`'s that fit
    one call now (None: no bound). With `ExecutorLimits.auto_batch` the executor asks it
    before each batch (the batch's first job decides), on the worker thread under its lock:
    it must be cheap.
    """

    def batch_key(self, job: Job) -> Hashable | None:
        """Jobs with the same non-None key may run as one batch."""
        ...

    def batch_size(self, job: Job) -> int:
        """How much of the batch limit the job takes (images, for image jobs)."""
        ...

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        """Run a batch; one result or exception per job, in order. Raising fails the batch."""
        ...


class JobStore(Protocol):
    async def job_accepted(self, job: Job) -> None: ...

    async def job_started(self, job: Job) -> None: ...

    async def job_finished(self, job: Job, event: Done | Failed | Cancelled) -> object:
        """Record the final state; what it returns reaches `JobHandle.stored`."""
        ...

    async def job_interrupted(self, job: Job) -> None: ...

    async def unfinished_jobs(self) -> list[tuple[Job, JobState]]: ...


@dataclass(frozen=True)
class QueueEntry:
    job: Job
    state: JobState
    position: int | None  # None while running


@dataclass(frozen=True)
class ExecutorLimits:
    queue_limit: int = 100
    per_user_limit: int = 3
    batch_limit: int = 4
    # executor.batch_limit = "auto": `batch_limit` is only the ceiling; the runner's
    # batch_capacity sizes each batch.
    auto_batch: bool = False
    preview_every: int = 2  # steps; 0 disables previews
    preview_interval_s: float = 1.0  # never decode previews more often than this per job
    # Previews may take at most this share of a run's time: one that would go over is
    # skipped, so a slow decoder (a tiny VAE on a CPU takes seconds) shows fewer of them.
    preview_budget: float = 0.05
    # A clean stop lets the running batch finish for this long, then interrupts it.
    stop_grace_s: float = 30.0
    # A batch with no step for this long is hung: its jobs fail; if the worker still has
    # not come back after as long again, `stuck` is set (the process should exit).
    step_timeout_s: float = 300.0
    # After an out-of-memory halving, this many full batches in a row double it again.
    oom_regrow_after: int = 3


class BatchContext:
    """What a runner sees of the executor while it runs one batch, on the worker thread.

    It is handed what it needs rather than the executor. `emit` is called on the worker
    thread, so it must only pass events on to the loop (the executor's `_emit` does so with
    `call_soon_threadsafe`); it never touches asyncio objects itself.
    """

    def __init__(
        self,
        batch_limit: Callable[[], int],
        emit: Callable[[str, JobEvent], None],
        cancelled: Callable[[str], bool],
        previews: PreviewBudget,
    ) -> None:
        self._batch_limit = batch_limit
        self._emit = emit
        self._cancelled = cancelled
        self._previews = previews

    @property
    def max_batch(self) -> int:
        return self._batch_limit()

    def progress(self, job: Job, step: int, total: int, preview: PreviewFn | None) -> None:
        image = None if preview is None else self._previews.preview(job.id, step, total, preview)
        self._emit(job.id, Progress(step, total, image))

    def notify(self, job: Job, text: str) -> None:
        self._emit(job.id, Progress(0, 0, note=text))

    def line(self, job: Job, step: int, total: int, text: str) -> None:
        self._emit(job.id, Progress(step, total, text=text))

    def cancelled(self, job_id: str) -> bool:
        return self._cancelled(job_id)


class Executor:
    def __init__(
        self,
        runner: JobRunner,
        limits: ExecutorLimits | None = None,
        store: JobStore | None = None,
    ) -> None:
        self.runner = runner
        self.limits = limits or ExecutorLimits()
        self.store = store
        self.batch_limit = self.limits.batch_limit  # lowered after out-of-memory errors
        self._batch_cap = self.batch_limit  # the running batch's limit (worker thread only)
        self._queue = FairQueue()
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._running: dict[str, Job] = {}
        self._cancelled: set[str] = set()
        self._finished: set[str] = set()
        self._solo: set[str] = set()  # jobs that must run alone after a failed batch
        self._handles: dict[str, JobHandle] = {}
        self._seconds_per_unit: float | None = None
        self._images_per_s: float | None = None  # pictures per second, for /queue
        self._batches = 0  # batches run since start
        # What decoding a preview takes: learned on the worker, kept across runs.
        self._preview_cost = PreviewCost()
        self._run_started = 0.0
        self._running_units = 0
        self._stopping = False
        self._draining = False  # a clean stop: no new work, the running batch may finish
        self._abandoned = False  # a drain gave up on a worker that did not stop
        self._last_step = 0.0  # when the running batch last made progress (monotonic)
        self._in_run = False  # the worker is inside runner.run (guarded by _lock)
        self._full_batches = 0  # full batches in a row since the limit was last halved
        # Set when the worker hung past step_timeout_s twice: only a new process helps.
        self.stuck = asyncio.Event()
        self._watchdog: asyncio.Task[None] | None = None
        self._calls: deque[tuple[Callable[[], object], concurrent.futures.Future[object]]] = (
            deque())
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writes: asyncio.Queue[Awaitable[object] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    # ----- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._start_store_writer()
        self._watchdog = asyncio.create_task(self._watch(), name="executor-watchdog")
        self._thread = threading.Thread(target=self._work, name="gpu-worker", daemon=True)
        self._thread.start()

    def _start_store_writer(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = asyncio.create_task(self._write_store(), name="executor-store")

    async def drain(self, grace_s: float | None = None) -> bool:
        """A clean stop's first half: accept no more work, start no new batch, and give the
        running one `grace_s` (default `stop_grace_s`) to finish; then interrupt it at its
        next step (it goes back to the queue, its attempt not counted). Queued jobs stay
        queued in the store for the next start. True when the worker ended in time."""
        grace = self.limits.stop_grace_s if grace_s is None else grace_s
        with self._wakeup:
            self._draining = True
            self._wakeup.notify_all()
        if await self._join(grace):
            return True
        log.warning("the running batch did not finish within %.0f s; interrupting it", grace)
        self.interrupt()
        # It stops at its next step; a worker that does not is hung, and is left behind.
        if await self._join(min(self.limits.step_timeout_s, INTERRUPT_WAIT_S)):
            return True
        self._abandoned = True
        return False

    def interrupt(self) -> None:
        """Interrupt the running batch at its next step (a second stop signal: no grace)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify_all()

    async def flush(self) -> None:
        """Wait until the store writes queued so far have landed (a final event's record
        included), e.g. before a clean stop delivers what the last batch made."""
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            done.set_result(None)

        self._store(mark())
        await done

    async def stop(self) -> None:
        """Stop the worker; a running batch is interrupted and left queued for next start.
        Never waits forever: a worker stuck in a step is left behind (it is a daemon
        thread, and the process is ending)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify_all()
        if self._watchdog:
            self._watchdog.cancel()
        if self.stuck.is_set() or self._abandoned:
            log.error("leaving the hung GPU worker behind")
        elif not await self._join(min(self.limits.step_timeout_s, INTERRUPT_WAIT_S)):
            log.error("the GPU worker did not stop within %.0f s; leaving it",
                      self.limits.step_timeout_s)
        with self._lock:
            calls, self._calls = list(self._calls), deque()
        for _fn, future in calls:
            future.set_exception(RuntimeError("the executor stopped before running this"))
        if self._writer:
            self._writes.put_nowait(None)
            await self._writer

    async def _join(self, within_s: float) -> bool:
        thread = self._thread
        if thread is None:
            return True
        await asyncio.to_thread(thread.join, within_s)
        return not thread.is_alive()

    async def __aenter__(self) -> Executor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----- the asyncio API ------------------------------------------------------------------

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the worker thread, before any queued job, and return its result (or
        raise its exception). For model work outside jobs, e.g. loading the models at start:
        the worker must be the only thread that runs torch (see the module docstring)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._wakeup:
            # Checked under the lock: `stop` sets the flag under it before failing leftovers.
            if self._thread is None or self._stopping:
                raise RuntimeError("the executor is not running")
            self._calls.append((fn, cast("concurrent.futures.Future[object]", future)))
            self._wakeup.notify()
        return await asyncio.wrap_future(future)

    async def submit(self, job: Job, *, waiting_elsewhere: int = 0) -> JobHandle:
        """Queue a job; raises Refused (with a reason for the user) when limits are hit.
        `waiting_elsewhere`: the member's requests not in this queue yet that count
        towards the per-person limit too (story operations waiting for their turn)."""
        handle = JobHandle(job)
        with self._lock:
            self._check_limits(job, waiting_elsewhere)
            self._handles[job.id] = handle
            self._queue.push(job)
            self._wakeup.notify()
        self._store(self.store.job_accepted(job) if self.store else None)
        self._announce_positions()
        return handle

    def _check_limits(self, job: Job, waiting_elsewhere: int = 0) -> None:
        if self._draining or self._stopping:
            raise Refused("The bot is restarting, so nothing was queued. Try again in a minute.",
                          restarting=True)
        waiting = len(self._queue)
        if waiting >= self.limits.queue_limit:
            raise Refused(
                f"The queue is full ({waiting} of {self.limits.queue_limit} jobs waiting). "
                "Try again in a few minutes."
            )
        mine = self._queue.count_for(job.user_id) + sum(
            1 for j in self._running.values() if j.user_id == job.user_id
        )
        if mine + waiting_elsewhere >= self.limits.per_user_limit:
            where = ("queued or running" if not waiting_elsewhere
                     else "queued, running or waiting for their turn in a story")
            raise Refused(
                f"You already have {mine + waiting_elsewhere} jobs {where}; the limit is "
                f"{self.limits.per_user_limit} per person. Wait for one to finish or /cancel one."
            )

    def room_for(self, user_id: int, waiting_elsewhere: int = 0) -> int:
        """How many more jobs the member may queue now (the per-person and total limits)."""
        with self._lock:
            mine = self._queue.count_for(user_id) + sum(
                1 for j in self._running.values() if j.user_id == user_id)
            free = self.limits.queue_limit - len(self._queue)
        return max(0, min(self.limits.per_user_limit - mine - waiting_elsewhere, free))

    def cancel(self, job_id: str, by_user: int | None = None, *,
               reason: str | None = None) -> bool:
        """Cancel a queued or running job (`reason`: why the bot did, stored with it).
        False when it is unknown or already finished."""
        with self._lock:
            if job_id in self._finished or job_id not in self._handles:
                return False
            queued = self._queue.remove(job_id)
            if queued is None:
                if job_id not in self._running:
                    return False
                # The worker sees these flags within one step and drops the job's result.
                self._cancelled.add(job_id)
                self._finished.add(job_id)
        # Announced at once: a running job stops within one step, a batch-mate goes on.
        self._deliver(job_id, Cancelled(by_user, reason))
        self._announce_positions()
        return True

    def finish_estimate_s(self, *jobs: Job) -> float | None:
        """Seconds until `jobs`, if they were queued now (in this order), would all be
        finished: the work ahead of each one's place in the fair order, then its own, at
        the measured speed (as the Queued ETAs reckon). None without a speed yet, or
        while one could not start at all."""
        if any(self._waiting_note(job) for job in jobs):
            return None
        lanes = max(1, self._lanes())
        with self._lock:
            rate = self._seconds_per_unit
            if rate is None:
                return None
            ahead = self._work_ahead_s(rate)
            trial = FairQueue()  # the queue as it is, plus `jobs`: pushed in fair order
            for queued in [*self._queue.ordered(), *jobs]:
                trial.push(queued)
            finished = 0.0
            for queued in trial.ordered():
                if any(queued is job for job in jobs):
                    finished = max(finished, ahead / lanes + queued.work_units * rate)
                ahead += queued.work_units * rate
        return finished

    def store_after(self, write: Awaitable[None]) -> None:
        """Run a store write after the ones already queued for job events (e.g. adding to a
        job's row, which must not overtake the write that inserts it)."""
        self._store(write)

    def job(self, job_id: str) -> Job | None:
        """The queued or running job with this id (from memory, not the store: a missing
        row must not make a job anyone's to cancel), or None once it has finished."""
        with self._lock:
            handle = self._handles.get(job_id)
        return handle.job if handle is not None else None

    def snapshot(self) -> list[QueueEntry]:
        """Running jobs, then waiting ones in the order they will run."""
        with self._lock:
            running = [QueueEntry(j, JobState.RUNNING, None) for j in self._running.values()
                       if j.id not in self._finished]
            waiting = [QueueEntry(j, JobState.QUEUED, i + 1)
                       for i, j in enumerate(self._queue.ordered())]
        return running + waiting

    async def restore(self) -> list[JobHandle]:
        """After a restart: queued jobs queue again; a job that was running is retried once,
        then failed. Returns handles for all of them (failed ones already hold Failed)."""
        if not self.store:
            return []
        handles = [self._restore_job(job, state)
                   for job, state in await self.store.unfinished_jobs()]
        self._announce_positions()
        return handles

    def _restore_job(self, job: Job, state: JobState) -> JobHandle:
        """Queue one unfinished job again (or fail it: see `restore`)."""
        handle = JobHandle(job)
        with self._lock:
            self._handles[job.id] = handle
            if state is JobState.RUNNING and job.attempts >= 2:
                failed = True
            else:
                if state is JobState.RUNNING:
                    # It was running when the process died, maybe because of it: it runs
                    # alone, so a poison job cannot take batch-mates down with it again.
                    self._solo.add(job.id)
                self._queue.push(job)
                failed = False
            self._wakeup.notify()
        if failed:
            self._deliver(job.id, Failed(
                "The bot restarted twice while this job was running, so it was given up."))
        return handle

    def workers(self) -> list[WorkerInfo]:
        """Who renders: here, the one in-process worker."""
        with self._lock:
            busy = bool(self._running)
        return [WorkerInfo(name=LOCAL_WORKER, host=socket.gethostname(),
                           models=tuple(getattr(self.runner, "model_names", ())), busy=busy,
                           images_per_s=self._images_per_s, batches=self._batches)]

    # ----- events, on the loop ----------------------------------------------------------------

    def _emit(self, job_id: str, event: JobEvent) -> None:
        """Called from the worker thread."""
        self._last_step = time.monotonic()  # a float store: the watchdog reads it unlocked
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._deliver, job_id, event)

    def _deliver(self, job_id: str, event: JobEvent) -> None:
        handle = self._handles.get(job_id)
        if handle is None or handle.state.finished:
            return
        job = handle.job
        if isinstance(event, Queued):
            if (handle.position, handle.note) == (event.position, event.note):
                return
            handle.position, handle.note = event.position, event.note
        elif isinstance(event, Started):
            handle.state = JobState.RUNNING
            self._store(self.store.job_started(job) if self.store else None)
        elif isinstance(event, Done | Failed | Cancelled):
            handle.state = {Done: JobState.RENDERED, Failed: JobState.FAILED,
                            Cancelled: JobState.CANCELLED}[type(event)]
            if self.store:
                self._store(self._record_final(handle, self.store.job_finished(job, event)))
            else:
                handle.mark_recorded()
            self._handles.pop(job_id, None)
        handle.push(event)

    def _announce_positions(self) -> None:
        """Tell waiting jobs their place (and ETA) when it changed. Runs on the loop."""
        with self._lock:
            order = list(self._queue.ordered())
            rate = self._seconds_per_unit
            ahead = self._work_ahead_s(rate or 0.0)
        lanes = max(1, self._lanes())
        for position, job in enumerate(order, start=1):
            note = self._waiting_note(job)
            eta = None if rate is None or note else ahead / lanes
            self._deliver(job.id, Queued(position, eta, note))
            if rate is not None:
                ahead += job.work_units * rate

    def _work_ahead_s(self, rate: float) -> float:
        """Seconds of running work left before the queue's first job can start (under the
        lock). Local: what remains of the one running batch."""
        if not self._running:
            return 0.0
        return max(0.0, self._running_units * rate - (time.monotonic() - self._run_started))

    def _lanes(self) -> int:
        """How many batches run side by side (remote workers); ETAs are divided by it."""
        return 1

    def _waiting_note(self, job: Job) -> str | None:
        """Why `job` cannot start at all for now (shown instead of an ETA); None locally."""
        return None

    @staticmethod
    async def _record_final(handle: JobHandle, write: Awaitable[object]) -> None:
        stored: object = None
        try:
            stored = await write
        finally:  # a failed write is logged by the writer; nobody should wait forever
            handle.mark_recorded(stored)

    def _store(self, write: Awaitable[object] | None) -> None:
        # Store writes go through one task so they land in the order the events happened.
        if write is not None:
            self._writes.put_nowait(write)

    async def _write_store(self) -> None:
        while (write := await self._writes.get()) is not None:
            try:
                await write
            except Exception:
                log.exception("could not record a job state change")

    # ----- the watchdog, on the loop -----------------------------------------------------------

    async def _watch(self) -> None:
        """Fail the jobs of a batch that made no step for `step_timeout_s` (their members'
        slots free up and they are told); if the worker is still gone after as long again,
        set `stuck`. The worker cannot be interrupted inside a hung call, so only a new
        process recovers: the failed jobs are recorded first, so it will not rerun them."""
        timeout = self.limits.step_timeout_s
        hung_since: float | None = None
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            given_up: list[str] = []
            with self._lock:
                idle = time.monotonic() - self._last_step
                if not self._in_run or idle < timeout:
                    hung_since = None
                    continue
                if hung_since is None:
                    hung_since = time.monotonic()
                # Marked under the same lock as the check: the worker clears _in_run under it
                # before it finishes a batch, so a batch that returns now finds its jobs
                # finished and drops them (one final event each, never two). A job already
                # cancelled is finished too; the worker still counts as hung.
                for job in list(self._running.values()):
                    if job.id not in self._finished:
                        self._cancelled.add(job.id)  # the worker drops it if it ever returns
                        self._finished.add(job.id)
                        given_up.append(job.id)
                    self._running.pop(job.id, None)  # frees the member's slot
            if given_up:
                log.error("no progress for %.0f s on job(s) %s; failing them", idle,
                          ", ".join(given_up))
                reason = (f"The GPU worker stopped responding (no progress for {idle:.0f} s), "
                          "so this job was given up. The bot restarts itself if the worker "
                          "does not recover; try again in a few minutes.")
                for job_id in given_up:
                    self._deliver(job_id, Failed(reason))
                self._announce_positions()
            elif time.monotonic() - hung_since >= timeout and not self.stuck.is_set():
                log.critical("the GPU worker has not come back for %.0f s; the bot must "
                             "restart (a supervisor restarts it, and recovery takes over)",
                             idle)
                self.stuck.set()

    # ----- the worker thread ----------------------------------------------------------------

    def _is_cancelled(self, job_id: str) -> bool:
        # No lock: the runner asks every step, and a flag seen one step late costs one step.
        return self._stopping or job_id in self._cancelled

    def _context(self) -> BatchContext:
        """A fresh context per batch: its preview budget is this run's, the cost estimate
        is the executor's. `batch_limit` is read live (it is lowered after out-of-memory),
        within the runner's capacity for this batch."""
        return BatchContext(
            batch_limit=lambda: min(self.batch_limit, self._batch_cap),
            emit=self._emit,
            cancelled=self._is_cancelled,
            previews=PreviewBudget(self.limits, self._preview_cost),
        )

    def _next_batch(self) -> list[Job] | None:
        """The next batch; [] when woken for a `call`; None when stopping."""
        with self._wakeup:
            while not (self._stopping or self._draining) and not self._calls \
                    and not len(self._queue):
                self._wakeup.wait()
            if self._stopping or self._draining:
                return None
            if self._calls:
                return []
            self._batch_cap = self._capacity(next(self._queue.ordered()))
            batch = self._queue.pop_batch(self._batch_key, self.runner.batch_size,
                                          min(self.batch_limit, self._batch_cap))
            for job in batch:
                job.attempts += 1
                self._running[job.id] = job
            self._run_started = self._last_step = time.monotonic()
            self._running_units = max(j.work_units for j in batch)
            self._in_run = True
            return batch

    def _batch_key(self, job: Job) -> Hashable | None:
        return None if job.id in self._solo else self.runner.batch_key(job)

    def _capacity(self, job: Job) -> int:
        """The most pictures a batch led by `job` may hold: the runner's capacity when the
        limit is "auto" (a fixed limit overrides it), else no bound beyond the limit."""
        capacity = getattr(self.runner, "batch_capacity", None)
        if not self.limits.auto_batch or capacity is None:
            return self.limits.batch_limit
        try:
            found = capacity(job)
        except Exception:  # a sizing bug must not stop the worker: the ceiling applies
            log.exception("batch_capacity failed; using the batch limit")
            return self.limits.batch_limit
        return self.limits.batch_limit if found is None else max(1, int(found))

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            if not batch:
                self._run_calls()
                continue
            for job in batch:
                self._emit(job.id, Started(len(batch)))
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._announce_positions)
            self._wait_until_recorded_as_running()
            outcomes = self._run_batch(batch)
            with self._lock:
                self._in_run = False
            self._finish_batch(batch, outcomes)
            self._loop.call_soon_threadsafe(self._announce_positions)

    def _wait_until_recorded_as_running(self) -> None:
        """Worker thread: before the batch runs, its jobs' "running" (and attempt count) must
        be in the store. A job that kills the process the moment it runs would otherwise
        look merely queued after the restart: batched again, its attempts never counted, it
        would take the bot down forever. Store writes land in order, so a marker queued
        after the Started events' writes lands after them."""
        if self.store is None or self._loop is None:
            return
        written = threading.Event()

        async def mark() -> None:
            written.set()

        self._loop.call_soon_threadsafe(self._store, mark())
        if not written.wait(RECORD_WAIT_S):
            log.warning("the store did not record the batch as running within %.0f s; "
                        "running it anyway", RECORD_WAIT_S)

    def _run_calls(self) -> None:
        while True:
            with self._lock:
                if not self._calls:
                    return
                fn, future = self._calls.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller, who decides
                future.set_exception(exc)

    def _run_batch(self, batch: list[Job]) -> list[JobResult | Exception] | None:
        """Run a batch; None means its jobs went back to the queue to run differently."""
        started = time.monotonic()
        try:
            outcomes = self.runner.run(batch, self._context())
        except Exception as exc:
            return self._after_batch_error(batch, exc)
        return self._after_batch(batch, outcomes, time.monotonic() - started)

    def _after_batch_error(
        self, batch: list[Job], exc: Exception
    ) -> list[JobResult | Exception] | None:
        """A batch raised: put its jobs back to run alone (or in smaller batches after an
        out-of-memory error) and return None, or fail a lone job (its one outcome)."""
        oom = isinstance(exc, OutOfMemory)
        # A smaller batch only helps a run of more than one image.
        images = sum(self.runner.batch_size(j) for j in batch)
        if (oom and self.batch_limit > 1 and images > 1) or (not oom and len(batch) > 1):
            # One bad job must not fail the others: run each alone; after running out of
            # memory, in smaller batches (the runner splits big jobs to the limit too).
            if oom:
                # Half of what this batch was allowed (the runner's capacity included).
                self.batch_limit = max(1, min(self.batch_limit, self._batch_cap) // 2)
                self._full_batches = 0
                log.warning("out of memory with a batch of %d; batch limit now %d",
                            len(batch), self.batch_limit)
            else:
                log.warning("batch of %d failed (%s); retrying each alone", len(batch), exc)
            with self._wakeup:
                for job in reversed(batch):
                    job.attempts -= 1
                    self._running.pop(job.id, None)
                    if job.id in self._finished or job.id not in self._handles:
                        self._finished.discard(job.id)  # cancelled (or settled) meanwhile
                        self._cancelled.discard(job.id)
                        continue
                    self._solo.add(job.id)
                    self._queue.push_front(job)
            return None
        log.error("job %s failed", batch[0].id, exc_info=exc)
        return self._after_batch(batch, [exc], None)

    def _after_batch(
        self, batch: list[Job], outcomes: list[JobResult | Exception], seconds: float | None,
        worker: str = LOCAL_WORKER,
    ) -> list[JobResult | Exception]:
        """A batch ran (in `seconds`, None when it raised): learn its speed, maybe regrow the
        batch limit, and label each result with who ran it and its share of the time."""
        if len(outcomes) != len(batch):
            outcomes = [RuntimeError("the runner returned the wrong number of results")] * len(
                batch)
        if seconds is None:
            return outcomes
        self._learn_speed(batch, seconds)
        if all(j.kind is JobKind.IMAGE for j in batch) and not any(
                isinstance(o, Exception) for o in outcomes):
            self._regrow_after(sum(self.runner.batch_size(j) for j in batch))
        return attribute(batch, outcomes, seconds, self.runner.batch_size, worker)

    def _regrow_after(self, images: int) -> None:
        """Worker thread: an out-of-memory halving is not for good. Full batches that run
        fine at the lowered limit are evidence the memory is there again (the error may have
        come from another program on the GPU): after enough in a row, double the limit."""
        if self.batch_limit >= self.limits.batch_limit or images < self.batch_limit:
            return
        self._full_batches += 1
        if self._full_batches >= self.limits.oom_regrow_after:
            self.batch_limit = min(self.limits.batch_limit, self.batch_limit * 2)
            self._full_batches = 0
            log.info("batches run fine again; batch limit now %d", self.batch_limit)

    def _learn_speed(self, batch: list[Job], seconds: float) -> None:
        units = max(j.work_units for j in batch)
        rate = seconds / units
        with self._lock:
            previous = self._seconds_per_unit
            self._seconds_per_unit = rate if previous is None else 0.7 * previous + 0.3 * rate
            self._batches += 1
            if all(j.kind is JobKind.IMAGE for j in batch) and seconds > 0:
                speed = sum(self.runner.batch_size(j) for j in batch) / seconds
                known = self._images_per_s
                self._images_per_s = speed if known is None else 0.7 * known + 0.3 * speed

    def _finish_batch(
        self, batch: list[Job], outcomes: list[JobResult | Exception] | None
    ) -> None:
        if outcomes is None:
            return
        interrupted: list[Job] = []
        events: list[tuple[str, JobEvent]] = []
        with self._lock:
            for job, outcome in zip(batch, outcomes, strict=True):
                self._running.pop(job.id, None)
                self._solo.discard(job.id)
                self._cancelled.discard(job.id)
                if job.id in self._finished:
                    self._finished.discard(job.id)
                    continue  # cancelled while running: already announced
                if self._stopping:
                    interrupted.append(job)
                    continue
                if isinstance(outcome, Exception):
                    events.append((job.id, Failed(describe_failure(outcome))))
                else:
                    events.append((job.id, Done(outcome)))
        for job_id, event in events:
            self._emit(job_id, event)
        for job in interrupted:
            assert self._loop is not None
            if self.store:
                self._loop.call_soon_threadsafe(self._store, self.store.job_interrupted(job))


def attribute(
    batch: Sequence[Job], outcomes: list[JobResult | Exception], seconds: float,
    size: Callable[[Job], int], worker: str,
) -> list[JobResult | Exception]:
    """Each result with `worker` and its share of the batch's seconds (`timings["gpu_s"]`,
    split by images): what /stats and the metrics count as the job's GPU time."""
    total = sum(size(j) for j in batch) or 1
    labelled: list[JobResult | Exception] = []
    for job, outcome in zip(batch, outcomes, strict=True):
        if not isinstance(outcome, Exception):
            timings = {**outcome.timings, "gpu_s": seconds * size(job) / total}
            outcome = dataclasses.replace(outcome, timings=timings,
                                          worker=outcome.worker or worker)
        labelled.append(outcome)
    return labelled


def describe_failure(exc: Exception) -> str:
    """What members are told of a failed job."""
    if isinstance(exc, OutOfMemory):
        return ("The GPU ran out of memory for this job. Try fewer images, a smaller size, "
                "or ask the host to enable attention slicing / CPU offload.")
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:497] + "..."
