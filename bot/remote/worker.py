"""A remote GPU worker: `python -m bot worker` on each GPU host.

It loads the models once, with the same loading code and `ModelRunner` the local executor
uses, and runs one batch at a time as a Celery task on the solo pool: the task runs on the
main thread, the thread that loaded the models (the one-thread-runs-torch rule of
bot/executor/executor.py). Three daemon threads keep it in touch:

- the heartbeat: what it serves, whether it is busy, how fast it is (bot/remote/keys.py);
- the cancel listener: a cancel reaches the running batch at its next step;
- the watchdog: a batch with no step for `executor.step_timeout_s` is hung, and only a new
  process helps, so the worker exits (its supervisor restarts it; the bot, seeing the
  heartbeat stop, sends the batch again and counts the attempt).

A result is written to Redis before the task is acknowledged; if Redis is down at that
moment the worker keeps trying, so a finished batch is not lost to a broker restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from redis.exceptions import RedisError

from bot.config import Settings
from bot.executor.executor import (
    BatchContext,
    ExecutorLimits,
    OutOfMemory,
    describe_failure,
)
from bot.executor.jobs import Job, JobEvent, JobKind, JobResult, Progress
from bot.executor.previews import PreviewBudget, PreviewCost
from bot.pipelines.runner import ModelRunner
from bot.remote import keys
from bot.remote.celery_app import make_celery
from bot.remote.protocol import (
    TASK_NAME,
    BatchResult,
    BatchTask,
    Outcome,
    preview_b64,
    queue_for,
    with_local_sources,
)

log = logging.getLogger(__name__)

WATCHDOG_EXIT = 3  # the exit status of a worker that hung (as the bot's, bot/__main__.py)


class WorkerNameTaken(RuntimeError):
    """Another live worker on this host already uses the name."""


class WorkerNode:
    """One worker's state, shared by the task (main thread) and its daemon threads."""

    def __init__(self, settings: Settings, runner: ModelRunner, limits: ExecutorLimits,
                 name: str, client: redis.Redis) -> None:
        self.settings = settings
        self.runner = runner
        self.limits = limits
        self.name = name
        self.host = socket.gethostname()
        self.redis = client
        # Every image model of the config is served from the queue of the default one:
        # the worker's pool loads whichever model a batch names.
        self.queues = (queue_for(JobKind.IMAGE, settings.image.model),
                       queue_for(JobKind.TEXT, settings.story.model),
                       queue_for(JobKind.DESCRIBE, settings.describe.model))
        self.native_size = 0
        self.incarnation = secrets.token_hex(8)  # this start of the worker, not its name
        self._claim = client.register_script(keys.CLAIM)
        self._lock = threading.Lock()
        # Held while the busy mark is written to Redis (a claim, a result, a heartbeat).
        self._busy_writes = threading.Lock()
        self._cancelled: set[str] = set()
        self._busy = ""
        self._last_step = time.monotonic()
        self._preview_cost = PreviewCost()
        self._images_per_s: float | None = None
        self._seconds_per_unit: float | None = None
        self._batches = 0
        self._stop = threading.Event()
        timeout = settings.executor.worker_timeout_s
        self._beat_every = max(0.5, timeout / 5)
        self._beat_ttl_ms = int(timeout * 1000)

    # ----- start and stop ---------------------------------------------------------------------

    def check_name(self) -> None:
        """Refuse a name a live worker on this host is using (two would share a heartbeat)."""
        try:
            found = self.redis.hgetall(keys.worker_key(self.name))
        except RedisError:
            return  # the heartbeat thread waits for Redis; nothing to compare with yet
        pid = int(found.get("pid", 0) or 0)
        if found.get("host") == self.host and pid and pid != os.getpid() and _alive(pid):
            raise WorkerNameTaken(
                f"a worker named {self.name!r} already runs on this host (pid {pid}); "
                "start this one with another --name")

    def start_threads(self) -> None:
        for target, name in ((self._beat, "heartbeat"), (self._listen_for_cancels, "cancels"),
                             (self._watch, "watchdog")):
            threading.Thread(target=target, name=f"worker-{name}", daemon=True).start()

    def stop(self) -> None:
        """Leaving cleanly: the bot learns at once that this worker is gone."""
        self._stop.set()
        with contextlib.suppress(RedisError):
            self.redis.delete(keys.worker_key(self.name))

    # ----- the task -----------------------------------------------------------------------------

    def run(self, payload: dict[str, Any]) -> None:
        """Run one batch (the Celery task's body, on the main thread)."""
        try:
            task = BatchTask.from_json(payload)
        except (KeyError, TypeError, ValueError) as exc:  # another version's task
            log.error("dropping a batch this worker cannot read (%s); the bot sends it "
                      "again, then gives it up", exc)
            return
        with self._busy_writes:
            verdict = self._until_redis(lambda: self._claim(
                keys=[keys.batch_key(task.batch_id), keys.worker_key(self.name),
                      keys.result_key(task.batch_id)],
                args=[self.name, keys.WORKER_PREFIX, str(time.time()), task.batch_id,
                      self.incarnation]))
            if verdict == "ok":
                with self._lock:
                    self._busy = task.batch_id
                    self._last_step = time.monotonic()
        if verdict != "ok":
            log.info("batch %s: %s; dropping this copy", task.batch_id, {
                "gone": "given up by the bot", "done": "already done"}.get(
                    verdict, "another worker runs it"))
            return
        try:
            try:
                result = self._render(task)
            except Exception as exc:  # whatever failed, the bot hears of it (never silence)
                log.exception("batch %s failed outside its run", task.batch_id)
                result = BatchResult(task.batch_id, self.name, 0.0,
                                     error=describe_failure(exc))
            # Stored before the task returns (and Celery acknowledges it); the busy mark
            # stays until then, so the bot never takes this worker for one that left it.
            with self._busy_writes:
                self._until_redis(lambda: self._put_result(result))
                with self._lock:
                    self._busy = ""
        finally:
            with self._lock:
                self._busy = ""

    def _render(self, task: BatchTask) -> BatchResult:
        cancelled = self._already_cancelled([j.id for j in task.jobs])
        with self._lock:
            self._cancelled |= cancelled
        self._publish({"type": "started", "batch": task.batch_id, "worker": self.name})
        with tempfile.TemporaryDirectory(prefix="greenheart-batch-") as folder:
            jobs = [j for j in with_local_sources(task, Path(folder)) if j.id not in cancelled]
            started = time.monotonic()
            try:
                context = self._context(task.batch_id, task.max_batch,
                                        jobs[0] if jobs else None)
                outcomes = self.runner.run(jobs, context) if jobs else []
            except OutOfMemory as exc:
                return BatchResult(task.batch_id, self.name, time.monotonic() - started,
                                   error=str(exc), oom=True)
            except Exception as exc:
                log.exception("batch %s failed", task.batch_id)
                return BatchResult(task.batch_id, self.name, time.monotonic() - started,
                                   error=describe_failure(exc))
        seconds = time.monotonic() - started
        if len(outcomes) != len(jobs):
            outcomes = [RuntimeError("the runner returned the wrong number of results")] * len(
                jobs)
        self._learn(jobs, outcomes, seconds)
        return BatchResult(task.batch_id, self.name, seconds, tuple(
            Outcome(job.id, error=describe_failure(o)) if isinstance(o, Exception)
            else Outcome(job.id, result=o) for job, o in zip(jobs, outcomes, strict=True)))

    def _context(self, batch_id: str, max_batch: int = 0,
                 first: Job | None = None) -> BatchContext:
        own = self.limits.batch_limit
        capacity = getattr(self.runner, "batch_capacity", None)
        if self.limits.auto_batch and capacity is not None and first is not None:
            own = min(own, max(1, capacity(first) or own))  # "auto": what fits here now
        limit = min(own, max_batch) if max_batch > 0 else own

        def emit(job_id: str, event: JobEvent) -> None:
            with self._lock:
                self._last_step = time.monotonic()
            if isinstance(event, Progress):
                self._publish({"type": "progress", "batch": batch_id, "job": job_id,
                               "step": event.step, "total": event.total,
                               "preview": preview_b64(event.preview) if event.preview else None,
                               "note": event.note, "text": event.text})

        return BatchContext(
            batch_limit=lambda: limit,
            emit=emit,
            cancelled=self._is_cancelled,
            previews=PreviewBudget(self.limits, self._preview_cost),
        )

    def _is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled  # a set read: a flag seen a step late costs a step

    def _already_cancelled(self, job_ids: list[str]) -> set[str]:
        try:
            scores = self.redis.zmscore(keys.CANCELLED, job_ids)
        except RedisError:
            return set()
        return {j for j, score in zip(job_ids, scores, strict=True) if score is not None}

    def _put_result(self, result: BatchResult) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.result_key(result.batch_id), json.dumps(result.to_json()),
                     ex=keys.RESULT_TTL_S)
            pipe.hset(keys.worker_key(self.name), "busy", "")
            pipe.publish(keys.EVENTS, json.dumps({"type": "result", "batch": result.batch_id}))
            pipe.execute()

    def _learn(self, jobs: Sequence[Job], outcomes: list[JobResult | Exception],
               seconds: float) -> None:
        units = max((j.work_units for j in jobs), default=0)
        images = sum(self.runner.batch_size(j) for j in jobs if j.kind is JobKind.IMAGE)
        with self._lock:
            self._batches += 1
            if units and seconds > 0:
                rate = seconds / units
                known = self._seconds_per_unit
                self._seconds_per_unit = rate if known is None else 0.7 * known + 0.3 * rate
            if images and seconds > 0 and all(j.kind is JobKind.IMAGE for j in jobs):
                speed = images / seconds
                known = self._images_per_s
                self._images_per_s = speed if known is None else 0.7 * known + 0.3 * speed

    def _publish(self, event: dict[str, Any]) -> None:
        # Progress only: the bot reads the batch's state from its key anyway.
        with contextlib.suppress(RedisError):
            self.redis.publish(keys.EVENTS, json.dumps(event))

    def _until_redis(self, call: Any) -> Any:
        """Retry a Redis call until it works (Redis restarting): the task must not end
        before its claim or its result is stored."""
        delay = 0.5
        while True:
            try:
                return call()
            except RedisError as exc:
                log.warning("Redis is unreachable (%s); retrying in %.0f s", exc, delay)
                time.sleep(delay)
                delay = min(5.0, delay * 2)

    # ----- the daemon threads -------------------------------------------------------------------

    def heartbeat(self) -> dict[str, str]:
        with self._lock:
            busy, ips, spu, batches = (self._busy, self._images_per_s, self._seconds_per_unit,
                                       self._batches)
        return {
            "name": self.name, "host": self.host, "pid": str(os.getpid()),
            "models": json.dumps(list(self.runner.model_names)),
            "queues": json.dumps(list(self.queues)), "busy": busy,
            "images_per_s": "" if ips is None else f"{ips:.4f}",
            "seconds_per_unit": "" if spu is None else f"{spu:.6f}",
            "batches": str(batches), "native_size": str(self.native_size),
            "incarnation": self.incarnation,
        }

    def beat_once(self) -> None:
        key = keys.worker_key(self.name)
        # Not between a claim (or a stored result) and the busy mark it sets: a beat with
        # the mark read before would undo it in Redis.
        with self._busy_writes, self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=dict(self.heartbeat()))  # type: ignore[arg-type]
            pipe.pexpire(key, self._beat_ttl_ms)
            pipe.execute()

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat_once()
                wait = self._beat_every
            except RedisError as exc:
                log.debug("heartbeat failed: %s", exc)
                wait = 0.5  # beat again as soon as Redis is back: the bot waits for it
            self._stop.wait(wait)

    def _listen_for_cancels(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(keys.CANCELS)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        ids = json.loads(message["data"])
                        with self._lock:
                            self._cancelled.update(str(i) for i in ids)
            except (RedisError, ValueError) as exc:
                log.debug("cancel listener: %s; reconnecting", exc)
                self._stop.wait(1.0)

    def _watch(self) -> None:
        timeout = self.limits.step_timeout_s
        while not self._stop.wait(min(1.0, timeout / 4)):
            with self._lock:
                busy, idle = self._busy, time.monotonic() - self._last_step
            if busy and idle >= timeout:
                log.critical("batch %s made no step for %.0f s: the worker is hung; exiting "
                             "(its batch is sent again)", busy, idle)
                logging.shutdown()
                os._exit(WATCHDOG_EXIT)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_worker(settings: Settings, *, name: str | None = None, loglevel: str = "INFO",
               runner: ModelRunner | None = None) -> int:
    """Load the models, then take batches until stopped (SIGTERM: the running batch
    finishes first, as Celery's warm shutdown does). `runner` replaces the one the settings
    describe (tests)."""
    from bot.app import build_runner, executor_limits

    name = name or socket.gethostname()
    client = redis.Redis.from_url(settings.executor.broker_url, socket_timeout=10,
                                  socket_connect_timeout=5, decode_responses=True)
    runner = runner or build_runner(settings)
    node = WorkerNode(settings, runner, executor_limits(settings), name, client)
    node.check_name()
    log.info("worker %s: loading %s and %s", name, *runner.model_names)
    runner.warm_up(image=True, text=True)  # on this thread, which runs every batch
    node.native_size = runner.native_size
    app = make_celery(settings)

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)  # type: ignore[misc]
    def run_batch(payload: dict[str, Any]) -> None:
        node.run(payload)

    node.start_threads()
    try:
        app.worker_main([
            "worker", f"--hostname={name}@{node.host}", "--pool=solo", "--concurrency=1",
            f"--queues={','.join(node.queues)}", "--without-gossip", "--without-mingle",
            "--without-heartbeat", f"--loglevel={loglevel}",
        ])
    finally:
        node.stop()
    return 0
