"""The remote executor: the bot's queue, limits and batching, with batches run by remote GPU
workers (`python -m bot worker`) through Celery and Redis.

It is the in-process `Executor` with its worker thread replaced by a dispatcher task on the
loop: admission, the fair queue, batching, the job store and every event a caller sees are
the base class's, so Discord and the CLI cannot tell the two apart. What differs:

- A batch is sent only when a worker that serves its model has a free slot, so fairness and
  admission are still decided here, in one place, and nothing queues up in the broker.
- Before a batch is sent, its id is in SQLite (`jobs.dispatch`). After a restart the bot
  adopts its batches instead of sending them again: it takes their results from Redis, or
  waits for the worker that runs them, or (the batch lost) queues their jobs again.
- Whether a batch started, finished or was lost is read from Redis every tick (bot/remote/
  keys.py); pub/sub events only make progress and results arrive sooner.
- A worker whose heartbeat stops is lost: its batch is given up (superseded) and its jobs
  run again elsewhere, counting the attempt, so a job that kills its worker twice is failed,
  as a job that kills the bot twice is in local mode. A late result from the lost worker is
  still welcome for jobs that are still owed; any other copy is ignored by job id.

Loop thread only: unlike the base class there is no worker thread, so the dispatcher and
the event listener run on the loop and take the base class's lock only around its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.db.jobs import JobRepository
from bot.executor.executor import (
    Executor,
    ExecutorLimits,
    JobRunner,
    OutOfMemory,
    attribute,
)
from bot.executor.handle import JobHandle
from bot.executor.jobs import (
    Failed,
    Job,
    JobKind,
    JobResult,
    JobState,
    Progress,
    Started,
)
from bot.executor.workers import WorkerInfo
from bot.remote.broker import Broker, BrokerDown, SeenWorker, decode_result
from bot.remote.protocol import BatchResult, batch_task, image_from_b64, queue_for

log = logging.getLogger(__name__)

WAITING_FOR_WORKER = "waiting for a GPU worker"
LOST_TWICE = ("A GPU worker was lost twice while running this job, so it was given up. "
              "Try again, perhaps with fewer or smaller pictures.")
# How often the dispatcher looks at Redis when nothing wakes it sooner, and how often it
# looks for results of batches it is not waiting for (from before a restart, or given up).
TICK_S = 0.5
STRAY_SCAN_S = 5.0
# An unclaimed batch is sent again at most this often before it is given up (counted): a
# task every worker fails to even read must not go round for ever.
MAX_RESENDS = 3


@dataclass
class InFlight:
    """A batch sent to the workers and not settled yet."""

    id: str
    queue: str
    jobs: list[Job]
    sent_at: float = field(default_factory=time.monotonic)
    worker: str | None = None  # who claimed it
    incarnation: str = ""  # which start of that worker
    started: bool = False  # its attempt is counted (claimed in this run, or before a restart)
    announced: bool = False  # its jobs were told they started
    resend: bool = False  # adopted after a restart while unclaimed: send its task again
    started_at: float | None = None
    first_sent_at: float = field(default_factory=time.monotonic)
    resends: int = 0  # copies sent again while nobody claimed it
    seen_on_it: float = field(default_factory=time.monotonic)  # its claimer said so


class RemoteExecutor(Executor):
    def __init__(
        self,
        runner: JobRunner,
        limits: ExecutorLimits,
        store: JobRepository,
        broker: Broker,
        *,
        models: Mapping[JobKind, str],
        visibility_timeout_s: float,
        worker_timeout_s: float,
    ) -> None:
        super().__init__(runner, limits, store)
        self.repository = store
        self.broker = broker
        self._models = dict(models)
        self._visibility_timeout_s = visibility_timeout_s
        self._worker_timeout_s = worker_timeout_s
        self._inflight: dict[str, InFlight] = {}
        self._seen: list[SeenWorker] = []
        self._broker_ok: bool | None = None  # None until the first look at Redis
        self._kick = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[None]] = set()
        self._drain_now = asyncio.Event()
        self._up_since = time.monotonic()  # since when the broker has been reachable
        self._scan_now = False  # a result event for a batch not in flight: look now
        self._warned: set[str] = set()  # workers whose models this bot does not use
        # The image model's own size, as the workers that serve it report it (the bot loads
        # no model itself); `native_size_seen` is told of each change (the composition root
        # wires it to the features that size pictures).
        self.native_size: int | None = None
        self.native_size_seen: Callable[[int], None] | None = None

    # ----- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._start_store_writer()  # the dispatcher starts after `restore`

    async def restore(self) -> list[JobHandle]:
        """Queue unfinished jobs again, but adopt those already sent to a worker: their
        results may be waiting in Redis, or a worker may be on them right now."""
        rows = await self.repository.unfinished_jobs()
        dispatched = await self.repository.dispatches()
        handles = []
        for job, state in rows:
            batch_id = dispatched.get(job.id)
            if batch_id is None:
                handles.append(self._restore_job(job, state))
                continue
            handle = JobHandle(job)
            with self._lock:
                self._handles[job.id] = handle
                self._running[job.id] = job
            flight = self._inflight.setdefault(
                batch_id, InFlight(batch_id, self._queue_of(job), [], resend=True))
            flight.jobs.append(job)
            flight.started |= state is JobState.RUNNING
            handles.append(handle)
        if self._inflight:
            log.info("adopted %d batch(es) sent to workers before the restart",
                     len(self._inflight))
        # One look before the first request: the workers' image size, and whether any is up.
        try:
            await self._look_at_workers()
            self._broker_reachable(True)
        except BrokerDown as exc:
            self._broker_reachable(False, exc)
        self._background = [
            asyncio.create_task(self._dispatch_forever(), name="remote-dispatcher"),
            asyncio.create_task(self._listen(), name="remote-events"),
        ]
        self._announce_positions()
        return handles

    async def drain(self, grace_s: float | None = None) -> bool:
        """A clean stop: send nothing more and wait up to `grace_s` for the batches the
        workers are on. Those not back by then keep running; their results wait in Redis for
        the next start. True when every batch came back."""
        grace = self.limits.stop_grace_s if grace_s is None else grace_s
        with self._lock:
            self._draining = True
        deadline = time.monotonic() + grace
        while self._inflight and time.monotonic() < deadline and not self._drain_now.is_set():
            self._kick.set()
            await asyncio.sleep(0.1)
        if self._inflight:
            log.info("%d batch(es) still on workers; their results wait for the next start",
                     len(self._inflight))
        return not self._inflight

    def interrupt(self) -> None:
        """Nothing here to interrupt (workers finish their batches); stop waiting for them."""
        self._drain_now.set()

    async def stop(self) -> None:
        # The dispatcher first: a result it takes from now on would be recorded as
        # interrupted (the base class's stop), while in Redis it waits for the next start.
        for task in (*self._background, *self._spawned):
            task.cancel()
        await asyncio.gather(*self._background, *self._spawned, return_exceptions=True)
        await super().stop()
        await self.broker.close()

    # ----- the asyncio API ------------------------------------------------------------------

    async def submit(self, job: Job, *, waiting_elsewhere: int = 0) -> JobHandle:
        handle = await super().submit(job, waiting_elsewhere=waiting_elsewhere)
        self._kick.set()
        return handle

    def cancel(self, job_id: str, by_user: int | None = None, *,
               reason: str | None = None) -> bool:
        with self._lock:
            sent = job_id in self._running
        cancelled = super().cancel(job_id, by_user, reason=reason)
        if cancelled and sent:  # a worker may be on it: it stops within a step
            self._spawn(self.broker.cancel([job_id]), "tell the workers of a cancel")
        self._kick.set()
        return cancelled

    def workers(self) -> list[WorkerInfo]:
        return [w.info for w in self._seen]

    # ----- what members are told ------------------------------------------------------------

    def _waiting_note(self, job: Job) -> str | None:
        queue = self._queue_of(job)
        if self._broker_ok and any(queue in w.queues for w in self._seen):
            return None
        return WAITING_FOR_WORKER

    def _lanes(self) -> int:
        return max(1, len(self._seen))

    def _work_ahead_s(self, rate: float) -> float:
        now = time.monotonic()
        return sum(max(0.0, max(j.work_units for j in f.jobs) * rate -
                       (now - (f.started_at or now)))
                   for f in self._inflight.values() if f.jobs)

    # ----- the dispatcher -------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        last_scan = 0.0
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), TICK_S)
            self._kick.clear()
            try:
                await self._look_at_workers()
                self._broker_reachable(True)
                await self._check_flights()
                if self._scan_now or time.monotonic() - last_scan >= STRAY_SCAN_S:
                    self._scan_now = False
                    last_scan = time.monotonic()
                    await self._take_stray_results()
                if not (self._draining or self._stopping):
                    await self._dispatch()
            except BrokerDown as exc:
                self._broker_reachable(False, exc)
            except Exception:  # the dispatcher must outlive any one bad tick
                log.exception("the remote dispatcher failed a tick; going on")
            self._announce_positions()

    def _broker_reachable(self, ok: bool, exc: BaseException | None = None) -> None:
        if ok != self._broker_ok:
            if ok:
                log.info("the broker is reachable; %d worker(s) up", len(self._seen))
                # Heartbeats expire while Redis is down (or load expired from its snapshot):
                # give the workers one timeout to beat again before any counts as lost.
                self._up_since = time.monotonic()
            else:
                log.warning("the broker is unreachable (%s); jobs wait for it", exc)
        if not ok:
            self._seen = []
        self._broker_ok = ok

    def _settled_view(self) -> bool:
        """Whether the heartbeats seen now can be trusted to say who is gone."""
        return time.monotonic() - self._up_since >= self._worker_timeout_s

    async def _look_at_workers(self) -> None:
        self._seen = await self.broker.workers()
        image_queue = queue_for(JobKind.IMAGE, self._models[JobKind.IMAGE])
        wanted = set(self._models.items())
        for worker in self._seen:
            if self._seconds_per_unit is None and worker.seconds_per_unit:
                self._seconds_per_unit = worker.seconds_per_unit  # an ETA from the start
            size = worker.native_size
            if size and image_queue in worker.queues and size != self.native_size:
                self.native_size = size
                if self.native_size_seen is not None:
                    self.native_size_seen(size)
            if not any(queue_for(kind, model) in worker.queues for kind, model in wanted) \
                    and worker.info.name not in self._warned:
                self._warned.add(worker.info.name)
                log.warning("worker %s serves %s, but this bot asks for %s: it gets no "
                            "batches (write image.model, story.model and describe.model "
                            "exactly as here)", worker.info.name,
                            ", ".join(worker.info.models) or "nothing",
                            ", ".join(self._models.values()))

    async def _dispatch(self) -> None:
        picks = self._pick()
        try:
            while picks:
                queue, jobs = picks[0]
                await self._send_new(queue, jobs)
                picks.pop(0)
        finally:  # whatever stopped the loop, the batches not sent go back to the queue
            for _queue, jobs in picks:
                self._put_back(jobs, started=False)

    async def _send_new(self, queue: str, jobs: list[Job]) -> None:
        flight = InFlight(_batch_id(), queue, jobs)
        self._inflight[flight.id] = flight
        try:
            # The batch's id is in SQLite before it exists anywhere else: a restart then
            # looks for it instead of sending its jobs a second time.
            for job in jobs:
                self._store(self.repository.job_dispatched(job, flight.id))
            await self.flush()
            task = await asyncio.to_thread(batch_task, flight.id, queue, jobs,
                                           self.batch_limit)
            await self.broker.send(task)
        except BaseException:
            self._inflight.pop(flight.id, None)  # the caller puts the jobs back
            raise
        log.info("sent batch %s (%d job(s)) to %s", flight.id, len(jobs), queue)

    def _pick(self) -> list[tuple[str, list[Job]]]:
        """Batches for the workers that have a free slot, in fair order."""
        claimed = {f.worker for f in self._inflight.values() if f.worker}
        free = [w for w in self._seen if w.info.name not in claimed and not w.busy_with]
        for flight in self._inflight.values():  # sent, not claimed yet: a free worker's
            if flight.worker is None:
                match = next((w for w in free if flight.queue in w.queues), None)
                if match is not None:
                    free.remove(match)
        picks = []
        with self._lock:
            for worker in free:
                batch = self._queue.pop_batch(self._batch_key, self.runner.batch_size,
                                              self.batch_limit, self._served_by(worker))
                if not batch:
                    continue
                for job in batch:
                    self._running[job.id] = job
                picks.append((self._queue_of(batch[0]), batch))
        return picks

    async def _check_flights(self) -> None:
        for flight in list(self._inflight.values()):
            try:
                await self._check_flight(flight)
            except BrokerDown:
                raise
            except Exception:  # one bad batch must not stop the others, nor dispatching
                log.exception("batch %s could not be checked; failing it", flight.id)
                self._take(flight.id, BatchResult(
                    flight.id, flight.worker or "?", 0.0,
                    error="The GPU worker's result could not be read."))

    async def _check_flight(self, flight: InFlight) -> None:
        """One batch in flight: take its result, or note its claim, or give it up when it
        can no longer come back (its claimer gone, or not on it; nobody left to take it)."""
        state, raw = await self.broker.batch_state(flight.id)
        if raw is not None:
            self._take(flight.id, await asyncio.to_thread(decode_result, raw))
            return
        now = time.monotonic()
        if state.get("status") == "claimed":
            flight.worker = state.get("worker")
            flight.incarnation = state.get("incarnation", "")
            if not flight.announced:
                self._mark_started(flight)
        claimer = next((w for w in self._seen if (w.info.name, w.incarnation)
                        == (flight.worker, flight.incarnation)), None)
        grace = 2 * self._worker_timeout_s
        counted = True
        if not state:
            verdict = await self.broker.supersede(flight.id, force=True)
        elif flight.worker is not None:
            if claimer is not None and claimer.busy_with == flight.id:
                flight.seen_on_it = now
                return
            restarted = any(w.info.name == flight.worker for w in self._seen)
            if claimer is None and not restarted and not self._settled_view():
                return  # Redis just came back: its heartbeat may not be there yet
            if claimer is not None and now - flight.seen_on_it < grace:
                return  # alive, not on it (yet, or any more): its result may be coming
            # Its claimer is gone, or alive but has not been on it for a while (it failed
            # outside the batch, or its result was lost): give it up.
            verdict = await self.broker.supersede(flight.id, force=False,
                                                  idle_claimer=claimer is not None)
        elif not self._settled_view():
            return
        elif now - flight.first_sent_at > self._visibility_timeout_s \
                or flight.resends >= MAX_RESENDS:
            verdict = await self.broker.supersede(flight.id, force=True)
        elif not any(flight.queue in w.queues for w in self._seen):
            if now - flight.sent_at < grace:
                return
            # Nobody left who could take it: its jobs wait in the queue, where members see
            # why, rather than as "running" (a copy a worker takes later finds it gone).
            verdict = await self.broker.supersede(flight.id, force=True)
            counted = False
        elif flight.resend or (now - flight.sent_at >= grace and any(
                flight.queue in w.queues and not w.busy_with for w in self._seen)):
            # Sent again where the first copy may be lost: after a restart, or when a
            # worker took it and died before its claim (an idle worker that serves it
            # would have claimed it by now). A second copy is harmless (keys.CLAIM).
            flight.resend = False
            flight.sent_at = now
            flight.resends += 1
            task = await asyncio.to_thread(batch_task, flight.id, flight.queue, flight.jobs,
                                           self.batch_limit)
            await self.broker.send(task, record=False)
            return
        else:
            return
        if verdict == "superseded":
            self._lost(flight, f"its worker {flight.worker} was lost" if flight.worker
                       else "no worker took it", counted=counted)
        elif verdict == "gone":  # Redis lost it (a restart): not the jobs' fault
            self._lost(flight, "the broker lost it", counted=False)
        elif verdict == "result":
            self._kick.set()  # there after all: taken next tick

    async def _take_stray_results(self) -> None:
        """Results of batches this run is not waiting for: from before a restart, from a
        worker given up as lost that finished after all, or already recorded."""
        for batch_id in await self.broker.results():
            if batch_id in self._inflight:
                continue
            try:
                result = await self.broker.result(batch_id)
            except BrokerDown:
                raise
            except Exception:
                log.exception("the result of batch %s cannot be read; dropping it", batch_id)
                await self._forget(batch_id)
                continue
            if result is not None:
                self._take(batch_id, result)

    # ----- settling batches -------------------------------------------------------------------

    def _mark_started(self, flight: InFlight) -> None:
        count = not flight.started
        flight.started = flight.announced = True
        flight.started_at = time.monotonic()
        for job in flight.jobs:
            if job.id not in self._handles or job.id in self._finished:
                continue
            if count:
                job.attempts += 1
            self._deliver(job.id, Started(len(flight.jobs)))
        self._announce_positions()

    def _take(self, batch_id: str, result: BatchResult) -> None:
        """A batch's result: record what is still owed, then forget it in Redis (only once
        the records have landed: a crash in between finds the result again)."""
        flight = self._inflight.pop(batch_id, None)
        if flight is not None:
            if not flight.announced:
                self._mark_started(flight)
            jobs = flight.jobs
            if result.error is not None:
                exc = OutOfMemory(result.error) if result.oom else RuntimeError(result.error)
                outcomes = self._after_batch_error(jobs, exc)
            else:
                outcomes = self._after_batch(jobs, _outcomes(jobs, result), result.seconds,
                                             result.worker)
            if outcomes is not None:
                self._finish_batch(jobs, outcomes)
            log.info("batch %s done on %s", batch_id, result.worker)
        elif result.error is None:
            self._take_owed(result)
        assert self._loop is not None
        # After the final events' store writes (queued by `_deliver`, which the events above
        # reach through call_soon: callbacks run in order).
        self._loop.call_soon(self._store, self._forget(batch_id))
        self._kick.set()

    def _take_owed(self, result: BatchResult) -> None:
        """A result nobody waits for as a batch: its jobs that are still owed get what it
        made (the first result for a job wins; a copy still on a worker is told to stop)."""
        owed = []
        with self._lock:
            for outcome in result.outcomes:
                handle = self._handles.get(outcome.job_id)
                # Only results: a given-up copy's failure must not fail the job's retry.
                if handle is None or outcome.job_id in self._finished or outcome.result is None:
                    continue
                self._queue.remove(outcome.job_id)  # queued again after a loss: not now
                owed.append(handle.job)
        if not owed:
            return
        log.info("taking %d job(s) from a batch of %s that was given up", len(owed),
                 result.worker)
        outcomes = attribute(owed, _outcomes(owed, result), result.seconds,
                             self.runner.batch_size, result.worker)
        elsewhere = [j.id for j in owed if any(
            j.id in (m.id for m in f.jobs) for f in self._inflight.values())]
        self._finish_batch(owed, outcomes)
        if elsewhere:
            self._spawn(self.broker.cancel(elsewhere), "stop a duplicate batch")

    def _lost(self, flight: InFlight, why: str, *, counted: bool) -> None:
        """The batch will not come back: its jobs queue again, or fail after their second
        lost run. `counted`: a run that started counts (its worker died on it: it runs alone
        next, as it may be what killed the worker); one the broker lost does not."""
        self._inflight.pop(flight.id, None)
        log.warning("batch %s was lost (%s); its jobs queue again", flight.id, why)
        failed = self._put_back(flight.jobs, started=flight.started, counted=counted)
        for job in failed:
            self._deliver(job.id, Failed(LOST_TWICE))

    def _put_back(self, jobs: list[Job], *, started: bool, counted: bool = True) -> list[Job]:
        """Jobs taken for a batch that did not run to the end: back to the head of the
        queue (and to queued in the store, where they had started). Returns those that have
        had their last chance."""
        failed: list[Job] = []
        stored: list[tuple[Job, bool]] = []
        with self._wakeup:
            for job in reversed(jobs):
                self._running.pop(job.id, None)
                if job.id in self._finished or job.id not in self._handles:
                    self._finished.discard(job.id)  # cancelled (or settled) meanwhile
                    self._cancelled.discard(job.id)
                    continue
                if started and counted:
                    if job.attempts >= 2:
                        failed.append(job)
                        continue
                    self._solo.add(job.id)
                self._queue.push_front(job)
                if started:
                    stored.append((job, counted))
        for job, counts in stored:
            if counts:
                self._store(self.repository.job_requeued(job))
            else:  # `job_interrupted` takes the attempt back in the store, too
                job.attempts = max(0, job.attempts - 1)
                self._store(self.repository.job_interrupted(job))
        return failed

    async def _forget(self, batch_id: str) -> None:
        try:
            await self.broker.forget(batch_id)
        except BrokerDown:  # found again by the next scan for stray results
            log.warning("could not forget batch %s in Redis yet", batch_id)

    # ----- events from the workers ------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            try:
                async for event in self.broker.events():
                    try:
                        self._on_event(event)
                    except Exception:
                        log.exception("could not handle a worker event")
            except Exception:  # progress must not stop for good over one surprise
                log.exception("the worker event listener failed; restarting it")
                await asyncio.sleep(1.0)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        flight = self._inflight.get(str(event.get("batch")))
        if kind == "result":
            self._scan_now = flight is None
            self._kick.set()
            return
        if flight is None:
            return
        if kind == "started" or (kind == "progress" and not flight.announced):
            flight.worker = flight.worker or str(event.get("worker"))
            if not flight.announced:
                self._mark_started(flight)
        if kind == "progress":
            job_id = str(event["job"])
            preview = event.get("preview")
            self._deliver(job_id, Progress(int(event["step"]), int(event["total"]),
                                           image_from_b64(preview) if preview else None,
                                           note=event.get("note") or None,
                                           text=event.get("text")))

    # ----- helpers ----------------------------------------------------------------------------

    def _served_by(self, worker: SeenWorker) -> Callable[[Job], bool]:
        return lambda job: self._queue_of(job) in worker.queues

    def _queue_of(self, job: Job) -> str:
        return queue_for(job.kind, self._models[job.kind])

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        async def run() -> None:
            try:
                await work
            except BrokerDown as exc:
                log.warning("could not %s: %s", what, exc)

        task = asyncio.get_running_loop().create_task(run())
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)


def _batch_id() -> str:
    return secrets.token_hex(8)


def _outcomes(jobs: list[Job], result: BatchResult) -> list[JobResult | Exception]:
    by_id = {o.job_id: o for o in result.outcomes}
    outcomes: list[JobResult | Exception] = []
    for job in jobs:
        outcome = by_id.get(job.id)
        if outcome is None:
            outcomes.append(RuntimeError("the GPU worker returned no result for this job"))
        elif outcome.result is not None:
            outcomes.append(outcome.result)
        else:
            outcomes.append(RuntimeError(outcome.error or "the GPU worker failed this job"))
    return outcomes
