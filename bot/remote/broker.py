"""The bot's side of Redis and Celery: send batches, see workers, take results, cancel.

Every call may raise `BrokerDown` (Redis restarted or unreachable): the remote executor then
keeps its jobs queued and says so, and tries again a moment later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.config import Settings
from bot.executor.workers import WorkerInfo
from bot.remote import keys
from bot.remote.celery_app import make_celery
from bot.remote.protocol import TASK_NAME, BatchResult, BatchTask

log = logging.getLogger(__name__)


class BrokerDown(RuntimeError):
    """Redis (or the Celery connection to it) is unreachable."""


@dataclass(frozen=True)
class SeenWorker:
    """A worker's heartbeat as the bot reads it."""

    info: WorkerInfo  # what /queue shows
    queues: tuple[str, ...]  # the Celery queues it consumes (bot/remote/protocol.queue_for)
    busy_with: str  # the batch it runs, or ""
    native_size: int  # its image model's own side in pixels (0: not known)
    seconds_per_unit: float | None  # its measured speed, for ETAs
    incarnation: str  # new at each start of the worker


def parse_worker(data: dict[str, str]) -> SeenWorker:
    def number(key: str) -> float | None:
        value = data.get(key, "")
        return float(value) if value not in ("", "None") else None

    info = WorkerInfo(
        name=data.get("name", "?"), host=data.get("host", ""),
        models=tuple(json.loads(data.get("models", "[]"))),
        busy=bool(data.get("busy")), images_per_s=number("images_per_s"),
        batches=int(data.get("batches", "0") or 0))
    return SeenWorker(info, tuple(json.loads(data.get("queues", "[]"))),
                      data.get("busy", ""), int(number("native_size") or 0),
                      number("seconds_per_unit"), data.get("incarnation", ""))


class Broker:
    def __init__(self, settings: Settings) -> None:
        url = settings.executor.broker_url
        # Short timeouts: a call must fail fast when Redis is gone, so the bot stays
        # responsive and tells members their jobs wait for a worker.
        self.redis = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=3,
                                       decode_responses=True)
        self._celery = make_celery(settings)
        self._supersede = self.redis.register_script(keys.SUPERSEDE)

    async def close(self) -> None:
        await self.redis.aclose()
        await asyncio.to_thread(self._celery.close)

    # ----- batches --------------------------------------------------------------------------

    async def send(self, task: BatchTask, *, record: bool = True) -> None:
        """Send a batch: its key first (a worker's claim needs it), then the Celery task.
        `record=False` sends the task of an existing batch key again (after a restart, when
        the bot cannot tell whether the first copy reached the broker)."""
        try:
            if record:
                await self.redis.hset(keys.batch_key(task.batch_id), mapping={
                    "status": "dispatched", "queue": task.queue,
                    "jobs": json.dumps([j.id for j in task.jobs]),
                    "dispatched_at": str(time.time())})
            await asyncio.to_thread(self._send_task, task)
        except (RedisError, OSError) as exc:
            raise BrokerDown(str(exc)) from exc

    def _send_task(self, task: BatchTask) -> None:
        try:
            self._celery.send_task(TASK_NAME, args=[task.to_json()], queue=task.queue,
                                   task_id=task.batch_id, retry=False)
        except Exception as exc:  # kombu raises its own and socket errors alike
            raise BrokerDown(f"could not send the batch: {exc}") from exc

    async def batch_state(self, batch_id: str) -> tuple[dict[str, str], str | None]:
        """The batch's key (empty when there is none) and its raw result (None when none)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.batch_key(batch_id))
                pipe.get(keys.result_key(batch_id))
                state, result = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerDown(str(exc)) from exc
        return state, result

    async def supersede(self, batch_id: str, *, force: bool, idle_claimer: bool = False) -> str:
        """Give a batch up unless it is alive or done (see keys.SUPERSEDE for the verdicts).
        `idle_claimer`: also from a live claimer that is not on it."""
        try:
            verdict = await self._supersede(
                keys=[keys.batch_key(batch_id), keys.result_key(batch_id)],
                args=[keys.WORKER_PREFIX, "1" if force else "0", batch_id,
                      "1" if idle_claimer else "0"])
        except (RedisError, OSError) as exc:
            raise BrokerDown(str(exc)) from exc
        return str(verdict)

    async def results(self) -> list[str]:
        """The ids of every batch whose result waits in Redis."""
        try:
            found = [key async for key in self.redis.scan_iter(f"{keys.RESULT_PREFIX}*")]
        except (RedisError, OSError) as exc:
            raise BrokerDown(str(exc)) from exc
        return [key.removeprefix(keys.RESULT_PREFIX) for key in found]

    async def result(self, batch_id: str) -> BatchResult | None:
        try:
            raw = await self.redis.get(keys.result_key(batch_id))
        except (RedisError, OSError) as exc:
            raise BrokerDown(str(exc)) from exc
        return None if raw is None else await asyncio.to_thread(decode_result, str(raw))

    async def forget(self, batch_id: str) -> None:
        """The bot has recorded the batch's result: nothing about it is needed any more."""
        try:
            await self.redis.delete(keys.result_key(batch_id), keys.batch_key(batch_id))
        except (RedisError, OSError) as exc:
            raise BrokerDown(str(exc)) from exc

    async def cancel(self, job_ids: list[str]) -> None:
        """Tell the workers; the set keeps it for a worker that claims the batch later."""
        if not job_ids:
            return
        now = time.time()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(keys.CANCELLED, {job_id: now for job_id in job_ids})
                pipe.zremrangebyscore(keys.CANCELLED, 0, now - keys.CANCEL_MEMORY_S)
                pipe.publish(keys.CANCELS, json.dumps(job_ids))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerDown(str(exc)) from exc

    # ----- workers and events ---------------------------------------------------------------

    async def workers(self) -> list[SeenWorker]:
        """Every worker with a live heartbeat (see `parse_worker`)."""
        try:
            names = [key async for key in self.redis.scan_iter(f"{keys.WORKER_PREFIX}*")]
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hgetall(name)
                rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerDown(str(exc)) from exc
        seen = []
        for row in rows:
            try:
                seen.append(parse_worker(row))
            except (ValueError, TypeError, KeyError):  # another version's, or half-written
                log.warning("ignoring a heartbeat that cannot be read: %s", row.get("name"))
        return sorted(seen, key=lambda w: w.info.name)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Workers' events as they come, across Redis restarts (waits while Redis is down;
        what was published meanwhile is lost, which only costs progress updates)."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.EVENTS)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        try:
                            yield json.loads(message["data"])
                        except (ValueError, TypeError):
                            log.warning("ignoring a malformed worker event")
            except (RedisError, OSError) as exc:
                log.debug("worker events unavailable (%s); retrying", exc)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()


def shown_url(url: str) -> str:
    """The broker URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def decode_result(raw: str | bytes) -> BatchResult:
    return BatchResult.from_json(json.loads(raw))
