"""A worker node with several models: a runner's notice ("loading model X") reaches the bot
in the progress event, and with batch_limit "auto" the runner's capacity bounds each call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from bot.config import settings_from_mapping
from bot.executor.executor import ExecutorLimits, RunContext
from bot.executor.jobs import Job, JobResult
from bot.pipelines.runner import ModelRunner
from bot.remote import keys
from bot.remote.protocol import batch_task
from bot.remote.worker import WorkerNode
from testkit.executor import ScriptedRunner, text_job
from testkit.redis_server import RedisServer


class LoadingRunner(ScriptedRunner):
    model_names = ("tiny-image", "tiny-story")

    def __init__(self, capacity: int | None = None) -> None:
        super().__init__()
        self.capacity = capacity
        self.seen_limit = 0

    def batch_capacity(self, job: Job) -> int | None:
        return self.capacity

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        self.seen_limit = ctx.max_batch
        for job in jobs:
            ctx.notify(job, "loading model dreamy")
        return super().run(jobs, ctx)


def node(redis_server: RedisServer, runner: ScriptedRunner, limits: ExecutorLimits,
         ) -> WorkerNode:
    settings = settings_from_mapping({"executor": {"mode": "celery",
                                                   "broker_url": redis_server.url}})
    return WorkerNode(settings, cast(ModelRunner, runner), limits, "w1", redis_server.client())


def send(redis_server: RedisServer, batch_id: str, jobs: list[Any]) -> dict[str, Any]:
    redis_server.client().hset(keys.batch_key(batch_id), mapping={"status": "dispatched"})
    return batch_task(batch_id, "q", jobs).to_json()


def test_a_notice_travels_in_the_progress_event(redis_server: RedisServer) -> None:
    r = redis_server.client()
    worker = node(redis_server, LoadingRunner(), ExecutorLimits())
    events = r.pubsub(ignore_subscribe_messages=True)
    events.subscribe(keys.EVENTS)
    events.get_message(timeout=1.0)
    job = text_job(1, "a", steps=2)
    worker.run(send(redis_server, "b1", [job]))
    seen = []
    while (message := events.get_message(timeout=1.0)) is not None:
        seen.append(json.loads(message["data"]))
    progress = [(e["step"], e["total"], e["note"]) for e in seen
                if e["type"] == "progress" and e["job"] == job.id]
    assert progress == [(0, 0, "loading model dreamy"), (1, 2, None), (2, 2, None)]


def test_auto_limits_each_call_to_the_runners_capacity(redis_server: RedisServer) -> None:
    runner = LoadingRunner(capacity=2)
    auto = node(redis_server, runner, ExecutorLimits(batch_limit=16, auto_batch=True))
    auto.run({**send(redis_server, "b2", [text_job(1, "a")]), "max_batch": 16})
    assert runner.seen_limit == 2
    fixed = node(redis_server, runner, ExecutorLimits(batch_limit=8))
    fixed.run({**send(redis_server, "b3", [text_job(1, "b")]), "max_batch": 16})
    assert runner.seen_limit == 8, "a fixed limit overrides the capacity"
