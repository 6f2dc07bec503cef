"""A worker node on a real Redis, with a scripted runner in place of the models: it claims,
runs, reports and stores each batch as the bot expects, and keeps its name to itself."""

from __future__ import annotations

import json
import os
from typing import Any, cast

import pytest

from bot.config import settings_from_mapping
from bot.executor.executor import ExecutorLimits
from bot.executor.jobs import TextResult
from bot.pipelines.runner import ModelRunner
from bot.remote import keys
from bot.remote.broker import decode_result, parse_worker
from bot.remote.protocol import batch_task
from bot.remote.worker import WorkerNameTaken, WorkerNode
from testkit.executor import ScriptedRunner, text_job
from testkit.redis_server import RedisServer


class NamedRunner(ScriptedRunner):
    model_names = ("tiny-image", "tiny-story")


def node(redis_server: RedisServer, runner: ScriptedRunner, name: str = "w1") -> WorkerNode:
    settings = settings_from_mapping({"executor": {"mode": "celery",
                                                   "broker_url": redis_server.url}})
    return WorkerNode(settings, cast(ModelRunner, runner), ExecutorLimits(), name,
                      redis_server.client())


def send(redis_server: RedisServer, batch_id: str, jobs: list[Any]) -> dict[str, Any]:
    task = batch_task(batch_id, "q", jobs)
    redis_server.client().hset(keys.batch_key(batch_id), mapping={"status": "dispatched"})
    return task.to_json()


def test_runs_a_claimed_batch_and_stores_its_result(redis_server: RedisServer) -> None:
    r = redis_server.client()
    worker = node(redis_server, NamedRunner())
    worker.beat_once()
    events = r.pubsub(ignore_subscribe_messages=True)
    events.subscribe(keys.EVENTS)
    events.get_message(timeout=1.0)  # the subscription is in place before the batch runs
    jobs = [text_job(1, "a", steps=3), text_job(2, "b", steps=3)]
    worker.run(send(redis_server, "b1", jobs))

    result = decode_result(str(r.get(keys.result_key("b1"))))
    assert [o.job_id for o in result.outcomes] == [j.id for j in jobs]
    assert all(isinstance(o.result, TextResult) for o in result.outcomes)
    assert result.worker == "w1" and result.seconds > 0
    assert r.hget(keys.worker_key("w1"), "busy") == ""
    seen = []
    while (message := events.get_message(timeout=1.0)) is not None:
        seen.append(json.loads(message["data"]))
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "started" and kinds[-1] == "result"
    assert [e["step"] for e in seen if e["type"] == "progress" and e["job"] == jobs[0].id] == [
        1, 2, 3]


def test_drops_a_batch_the_bot_gave_up_and_skips_cancelled_jobs(
        redis_server: RedisServer) -> None:
    r = redis_server.client()
    runner = NamedRunner()
    worker = node(redis_server, runner)
    worker.beat_once()
    worker.run(batch_task("given-up", "q", [text_job(1, "x")]).to_json())
    assert runner.calls == 0 and not r.exists(keys.result_key("given-up"))

    keep, drop = text_job(1, "keep"), text_job(2, "drop")
    r.zadd(keys.CANCELLED, {drop.id: 1.0})
    worker.run(send(redis_server, "b2", [keep, drop]))
    result = decode_result(str(r.get(keys.result_key("b2"))))
    assert [o.job_id for o in result.outcomes] == [keep.id]
    assert runner.order == ["keep"]


def test_out_of_memory_and_failures_travel_back(redis_server: RedisServer) -> None:
    r = redis_server.client()
    runner = NamedRunner(batchable=True)
    runner.oom_over = 1
    worker = node(redis_server, runner)
    worker.run(send(redis_server, "b3", [text_job(1, "a"), text_job(2, "b")]))
    oom = decode_result(str(r.get(keys.result_key("b3"))))
    assert oom.oom and oom.error and not oom.outcomes
    worker.run(send(redis_server, "b4", [text_job(1, "c", fail=True)]))
    [failed] = decode_result(str(r.get(keys.result_key("b4")))).outcomes
    assert failed.result is None and failed.error


def test_heartbeat_says_what_it_serves(redis_server: RedisServer) -> None:
    worker = node(redis_server, NamedRunner(), "gpu-2")
    worker.native_size = 64
    worker.beat_once()
    seen = parse_worker(redis_server.client().hgetall(keys.worker_key("gpu-2")))
    assert seen.info.name == "gpu-2" and seen.info.models == ("tiny-image", "tiny-story")
    assert not seen.info.busy and seen.info.images_per_s is None
    assert seen.native_size == 64 and len(seen.queues) == 3  # image, text, describe
    ttl = redis_server.client().pttl(keys.worker_key("gpu-2"))
    assert 0 < ttl <= 15_000, "it expires when the worker stops beating"


def test_a_name_in_use_here_is_refused(redis_server: RedisServer) -> None:
    first = node(redis_server, NamedRunner(), "twin")
    first.beat_once()
    r = redis_server.client()
    r.hset(keys.worker_key("twin"), "pid", str(os.getppid()))  # a live process, not us
    with pytest.raises(WorkerNameTaken, match="--name"):
        node(redis_server, NamedRunner(), "twin").check_name()
    r.hset(keys.worker_key("twin"), "pid", str(os.getpid()))
    node(redis_server, NamedRunner(), "twin").check_name()  # our own earlier heartbeat


class LimitRecorder(NamedRunner):
    def run(self, jobs: Any, ctx: Any) -> Any:
        self.seen_limit = ctx.max_batch
        return super().run(jobs, ctx)


def test_the_bots_lowered_batch_limit_travels_with_the_task(redis_server: RedisServer) -> None:
    runner = LimitRecorder()
    worker = node(redis_server, runner)  # its own limit: ExecutorLimits' default, 4
    task = send(redis_server, "b5", [text_job(1, "a")])
    worker.run({**task, "max_batch": 1})  # the bot halved its limit after out-of-memory
    assert runner.seen_limit == 1
    worker.run({**send(redis_server, "b6", [text_job(1, "b")]), "max_batch": 16})
    assert runner.seen_limit == 4, "never over the worker's own limit"


class LiveRunner(NamedRunner):
    """Writes its line live: two partial texts, then the result with its candidates."""

    def run(self, jobs: Any, ctx: Any) -> list[Any]:
        ctx.line(jobs[0], 2, 60, "The dragon…")
        ctx.progress(jobs[0], 3, 60, None)
        ctx.line(jobs[0], 5, 60, "The dragon slept…")
        return [TextResult("The dragon slept.", {}, "tiny-story",
                           candidates=("The dragon slept.", "It woke."))]


def test_live_text_and_candidates_reach_the_bot(redis_server: RedisServer) -> None:
    r = redis_server.client()
    worker = node(redis_server, LiveRunner())
    events = r.pubsub(ignore_subscribe_messages=True)
    events.subscribe(keys.EVENTS)
    events.get_message(timeout=1.0)
    job = text_job(1, "a")
    worker.run(send(redis_server, "b1", [job]))
    seen = []
    while (message := events.get_message(timeout=1.0)) is not None:
        seen.append(json.loads(message["data"]))
    progress = [(e["step"], e["text"]) for e in seen if e["type"] == "progress"]
    assert progress == [(2, "The dragon…"), (3, None), (5, "The dragon slept…")]
    result = decode_result(str(r.get(keys.result_key("b1"))))
    got = result.outcomes[0].result
    assert isinstance(got, TextResult) and got.candidates == ("The dragon slept.", "It woke.")
