"""Celery mode end to end: the real bot against the Discord double, a real redis-server and
real worker subprocesses (`python -m bot worker`) on the tiny models; each fault case ends
with every result delivered exactly once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_runner
from bot.config import settings_from_mapping
from bot.executor.executor import ExecutorLimits
from bot.pipelines.tiny import TinyModelPaths
from bot.remote import keys
from bot.remote.protocol import BatchResult
from bot.remote.worker import WorkerNode
from testkit.discord_double import DiscordDouble
from testkit.discord_double.models import Message
from testkit.discord_double.seeding import SeededWorld
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import click_for_result, is_result, job_id_of
from testkit.redis_server import RedisServer
from testkit.remote import WorkerProcess, wait_for_workers, wait_until, write_config
from testkit.story import StoryBot

SIZE = {"width": 64, "height": 64}


class Remote:
    """The bot in celery mode, its workers and its Redis, for one test."""

    def __init__(self, tiny: TinyModelPaths, tmp: Path, double: DiscordDouble,
                 world: SeededWorld, redis_server: RedisServer,
                 worker_timeout_s: float = 3) -> None:
        self.tmp, self.redis_server = tmp, redis_server
        self.redis = redis_server.client()
        executor = {"mode": "celery", "broker_url": redis_server.url,
                    "worker_timeout_s": worker_timeout_s, "batch_limit": 1}
        self.harness = BotHarness(double, world, harness_settings(
            tiny, tmp, double, image={**SIZE, "steps": 6, "max_steps": 60, "preview_every": 1},
            executor={**executor, "stop_grace_s": 0}))
        self.worker_config = write_config(tmp / "worker.toml", {
            "image": {"model": str(tiny.image), **SIZE},
            "story": {"model": str(tiny.story), "max_new_tokens": 16},
            "executor": executor,
        })
        self.workers: dict[str, WorkerProcess] = {}

    async def start_workers(self, *names: str, step_delay: float = 0.15) -> None:
        for name in names:
            self.workers[name] = WorkerProcess(self.worker_config, name, self.tmp,
                                               step_delay=step_delay).start()
        await wait_for_workers(self.redis, list(names),
                               processes=[self.workers[n] for n in names])

    def busy_worker(self) -> str | None:
        for name in self.workers:
            if self.redis.hget(keys.worker_key(name), "busy"):
                return name
        return None

    def job_rows(self) -> dict[str, sqlite3.Row]:
        db = sqlite3.connect(self.harness.settings.storage.database)
        db.row_factory = sqlite3.Row
        try:
            return {r["id"]: r for r in db.execute("SELECT * FROM jobs")}
        finally:
            db.close()

    def results(self) -> list[Message]:
        return [m for m in self.harness.double.channel_messages(self.harness.studio_id)
                if is_result(m)]

    async def imagine(self, prompt: str, user: Any = None) -> Any:
        rec = await self.harness.slash("imagine", user=user, prompt=prompt, count=1)
        await rec.wait_ack()
        return rec

    async def wait_for_results(self, count: int, timeout: float = 120) -> list[Message]:  # noqa: ASYNC109
        await wait_until(lambda: len(self.results()) >= count, timeout=timeout,
                         what=f"{count} result(s)")
        await asyncio.sleep(1.0)  # a duplicate would show up now
        return self.results()

    def close(self) -> None:
        for worker in self.workers.values():
            worker.kill()


@pytest.fixture
async def remote(tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
                 discord_world: SeededWorld, redis_server: RedisServer,
                 request: pytest.FixtureRequest) -> AsyncIterator[Remote]:
    marker = request.node.get_closest_marker("worker_timeout")
    r = Remote(tiny_models, tmp_path, discord_double, discord_world, redis_server,
               *(marker.args if marker else ()))
    try:
        yield r
    finally:
        await r.harness.stop()
        r.close()


def custom_id(message: Message, prefix: str) -> str:
    found = [c for c in message.custom_ids if c.startswith(prefix)]
    assert found, f"no {prefix} button on {message.content!r}: {message.custom_ids}"
    return found[0]


def job_id_of_only(remote: Remote) -> str:
    [job_id] = remote.job_rows()
    return job_id


def delivered_once(results: list[Message], expected: int) -> list[str]:
    ids = [job_id_of(m) for m in results]
    assert len(ids) == expected, ids
    assert len(set(ids)) == expected, f"a job was posted twice: {ids}"
    return ids


async def test_no_worker_then_two_workers_fair_spread_with_progress(remote: Remote) -> None:
    h = remote.harness
    await h.start()
    world = h.world
    recs = []
    for n in range(2):  # alice, bob and mod queue two each, one member after the other
        for user in (world.alice, world.bob, world.mod):
            recs.append(await remote.imagine(f"fox {user.username} {n}", user=user))
    # No worker is up: the members are told so, without an ETA.
    ack = recs[-1].ack.body["data"]["content"] if recs[-1].ack else ""
    statuses = [ack, *[m.content for m in h.double.channel_messages(h.studio_id)]]
    assert any("waiting for a GPU worker" in s for s in statuses), statuses
    assert not any("ETA" in s and "waiting for a GPU worker" in s for s in statuses)

    await remote.start_workers("w1", "w2")
    results = await remote.wait_for_results(6)
    delivered_once(results, 6)

    rows = sorted(remote.job_rows().values(), key=lambda r: r["started_at"])
    assert {r["state"] for r in rows} == {"delivered"}
    # Round-robin across members, not first come first served: the first three to start
    # belong to three different members.
    assert len({r["user_id"] for r in rows[:3]}) == 3, [r["user_id"] for r in rows]
    assert {r["worker"] for r in rows} == {"w1", "w2"}, "both workers rendered"
    assert all(r["gpu_s"] and r["gpu_s"] > 0 for r in rows)
    # Progress from the workers reached the status messages, with previews.
    edits = h.double.requests_matching("PATCH", r"/webhooks/.*/messages/@original")
    contents = [(r.json or {}).get("content", "") for r in edits]
    assert any("▰" in c and "/6" in c for c in contents), contents
    assert any(f.filename == "preview.jpg" for r in edits for f in r.files)
    # /queue lists the workers.
    rec = await h.slash("queue")
    reply = (await rec.wait_ack()).body["data"]["content"]
    assert "w1" in reply and "w2" in reply and "idle" in reply, reply


async def test_a_worker_killed_mid_batch_is_replaced_and_a_late_copy_ignored(
        remote: Remote) -> None:
    await remote.start_workers("w1", "w2", step_delay=0.5)
    await remote.harness.start()
    await remote.imagine("a long fox")
    await wait_until(lambda: remote.busy_worker() is not None, what="a worker to start")
    victim = remote.busy_worker()
    assert victim is not None
    remote.workers[victim].kill()

    results = await remote.wait_for_results(1)
    [job_id] = delivered_once(results, 1)
    row = remote.job_rows()[job_id]
    assert row["worker"] != victim
    assert row["attempts"] == 2, "the lost run counts"

    # A late result for the same job (the lost worker finishing after all) is ignored.
    late = BatchResult("late-copy", victim, 1.0, ())
    payload = late.to_json()
    payload["outcomes"] = [{"job": job_id, "error": "a late copy"}]
    remote.redis.set(keys.result_key("late-copy"), json.dumps(payload))
    await wait_until(lambda: not remote.redis.exists(keys.result_key("late-copy")),
                     timeout=30, what="the late copy to be dropped")
    await asyncio.sleep(0.5)
    delivered_once(remote.results(), 1)
    assert remote.job_rows()[job_id]["state"] == "delivered"


async def test_results_wait_in_redis_while_the_bot_restarts(remote: Remote) -> None:
    await remote.start_workers("w1", step_delay=0.3)
    await remote.harness.start()
    await remote.imagine("a patient fox")
    await wait_until(lambda: remote.busy_worker() is not None, what="the worker to start")
    await remote.harness.stop()  # a clean stop with no grace: the worker goes on
    await wait_until(lambda: bool(remote.redis.keys(f"{keys.RESULT_PREFIX}*")),
                     what="the result to wait in Redis")
    assert not remote.results()

    await remote.harness.start()
    [job_id] = delivered_once(await remote.wait_for_results(1), 1)
    assert remote.job_rows()[job_id]["attempts"] == 1, "adopted, not run again"
    await wait_until(lambda: not remote.redis.keys(f"{keys.RESULT_PREFIX}*"),
                     what="the result to be forgotten once recorded")


async def test_redis_restarted_under_a_running_batch_and_while_jobs_wait(
        remote: Remote) -> None:
    await remote.start_workers("w1", step_delay=0.3)
    await remote.harness.start()
    h = remote.harness
    await remote.imagine("fox one")
    await wait_until(lambda: remote.busy_worker() is not None, what="the worker to start")
    remote.redis_server.kill()  # everything in it is gone: the batch, its task
    await remote.imagine("fox two", user=h.world.bob)
    await asyncio.sleep(2.0)
    statuses = [m.content for m in h.double.channel_messages(h.studio_id)]
    edits = [(r.json or {}).get("content", "")
             for r in h.double.requests_matching("PATCH", r"/webhooks/.*/messages/@original")]
    assert any("waiting for a GPU worker" in s for s in statuses + edits), statuses + edits

    remote.redis_server.start()  # back, empty, on the same port
    results = await remote.wait_for_results(2, timeout=180)
    delivered_once(results, 2)
    assert {r["state"] for r in remote.job_rows().values()} == {"delivered"}


async def test_a_cancel_reaches_the_running_worker(remote: Remote) -> None:
    await remote.start_workers("w1", step_delay=0.5)
    await remote.harness.start()
    h = remote.harness
    rec = await h.slash("imagine", prompt="a fox that never finishes", count=1, steps=60)
    await rec.wait_ack()
    await wait_until(lambda: remote.busy_worker() is not None, what="the worker to start")
    cancel = await h.slash("cancel")
    assert "Cancelled 1" in (await cancel.wait_ack()).body["data"]["content"]
    # 60 steps of 0.5 s would take 30 s; a cancel stops it at the next step.
    await wait_until(lambda: remote.busy_worker() is None, timeout=12,
                     what="the worker to stop the cancelled batch")
    await asyncio.sleep(1.0)
    assert not remote.results()
    assert {r["state"] for r in remote.job_rows().values()} == {"cancelled"}


async def test_batches_only_reach_a_worker_that_has_the_model(remote: Remote,
                                                              tmp_path: Path) -> None:
    # The same tiny files under another name: a worker that serves "another" model.
    other = tmp_path / "another-image-model"
    other.symlink_to(Path(remote.harness.settings.image.model), target_is_directory=True)
    elsewhere = write_config(tmp_path / "elsewhere.toml", {
        "image": {"model": str(other), **SIZE},
        "story": {"model": remote.harness.settings.story.model},
        "executor": {"mode": "celery", "broker_url": remote.redis_server.url,
                     "worker_timeout_s": 3}})
    stranger = WorkerProcess(elsewhere, "stranger", tmp_path, step_delay=0.1).start()
    remote.workers["stranger"] = stranger
    await wait_for_workers(remote.redis, ["stranger"], processes=[stranger])
    await remote.harness.start()
    h = remote.harness
    rec = await remote.imagine("a fox for the right worker")
    await asyncio.sleep(3.0)
    assert not remote.results()
    assert remote.busy_worker() is None, "the stranger never took it"
    edits = [(r.json or {}).get("content", "")
             for r in h.double.requests_matching("PATCH", r"/webhooks/.*/messages/@original")
             if rec.token in r.path]
    assert any("waiting for a GPU worker" in c
               for c in [rec.ack.body["data"]["content"], *edits])

    await remote.start_workers("w1")
    [job_id] = delivered_once(await remote.wait_for_results(1), 1)
    assert remote.job_rows()[job_id]["worker"] == "w1"


@pytest.mark.worker_timeout(120)
async def test_a_worker_restarted_under_its_name_is_not_waited_on(remote: Remote) -> None:
    # Its supervisor restarts it at once, so its name beats on without a gap: the batch
    # its first start claimed is sent again all the same (to its new start, here).
    await remote.start_workers("w1", step_delay=0.5)
    await remote.harness.start()
    await remote.imagine("a fox that outlives its worker")
    await wait_until(lambda: remote.busy_worker() is not None, what="the worker to start")
    remote.workers["w1"].kill()
    assert remote.redis.exists(keys.worker_key("w1")), "its heartbeat has not expired"
    await remote.start_workers("w1", step_delay=0.1)
    [job_id] = delivered_once(await remote.wait_for_results(1, timeout=90), 1)
    assert remote.job_rows()[job_id]["attempts"] == 2


async def test_a_story_and_a_variation_run_on_the_workers(
        remote: Remote, tiny_models: TinyModelPaths, tmp_path: Path,
        discord_double: DiscordDouble, discord_world: SeededWorld) -> None:
    await remote.start_workers("w1", step_delay=0.02)
    # Pictures from a stored result travel to the worker (it cannot read the bot's files).
    await remote.harness.start()
    await remote.imagine("a fox to vary")
    [parent] = await remote.wait_for_results(1)
    child = await click_for_result(remote.harness, parent,
                                   custom_id(parent, f"gh:var:{job_id_of(parent)}"))
    assert child.attachments and job_id_of(child) != job_id_of(parent)
    await remote.harness.stop()

    # A story: its lines (text jobs) and their pictures, written by the worker.
    executor = {"mode": "celery", "broker_url": remote.redis_server.url,
                "worker_timeout_s": 3}
    story = StoryBot(discord_double, discord_world, tiny_models,
                     build_runner(remote.harness.settings), tmp_path / "story", discord={},
                     sections={"executor": executor})
    world = discord_world
    async with story.running():
        await story.slash(world.alice.id, world.studio.id, "start", seed="The sky")
        thread = await story.story_thread()
        first = await story.line(thread, 1)
        second = await story.continue_line(world.bob.id, first, 2)
        assert "✍️" in second.content and second.attachments
    workers = {r["worker"] for r in remote.job_rows().values()}
    assert workers == {"w1"}


def ghost_worker(remote: Remote) -> WorkerNode:
    """A heartbeat with no worker behind it: the bot sends it a batch that nobody claims
    (as when a worker takes a task from the queue and dies before its claim)."""
    settings = settings_from_mapping({
        "image": {"model": remote.harness.settings.image.model},
        "story": {"model": remote.harness.settings.story.model},
        "executor": {"broker_url": remote.redis_server.url, "worker_timeout_s": 3}})
    ghost = WorkerNode(settings, build_runner(settings), ExecutorLimits(), "ghost",
                       remote.redis)
    ghost.beat_once()
    return ghost


async def test_a_batch_sent_to_a_worker_that_vanished_queues_again(remote: Remote) -> None:
    ghost = ghost_worker(remote)
    await remote.harness.start()
    await remote.imagine("a fox nobody claimed")
    image_queue = ghost.queues[0]
    await wait_until(lambda: remote.redis.llen(image_queue) > 0, what="the task to be sent")
    remote.redis.delete(image_queue, keys.worker_key("ghost"))
    # With nobody left to take it, the job waits in the queue again, and says why.
    await wait_until(lambda: [e.state.value for e in remote.harness.services.executor.snapshot()]
                     == ["queued"], timeout=30, what="the job to queue again")
    assert remote.job_rows()[job_id_of_only(remote)]["attempts"] == 0

    await remote.start_workers("w1", step_delay=0.02)
    [job_id] = delivered_once(await remote.wait_for_results(1, timeout=90), 1)
    assert remote.job_rows()[job_id]["worker"] == "w1"


async def test_a_batch_whose_taker_died_before_claiming_it_is_sent_again(
        remote: Remote) -> None:
    await remote.start_workers("w1", step_delay=0.3)
    await remote.harness.start()
    h = remote.harness
    await remote.imagine("keeps w1 busy", user=h.world.mod)
    await wait_until(lambda: remote.busy_worker() is not None, what="w1 to start")
    ghost = ghost_worker(remote)  # idle: the bot sends it the next batch
    await remote.imagine("a fox the ghost took")
    image_queue = ghost.queues[0]
    await wait_until(lambda: remote.redis.llen(image_queue) > 0, what="the task to be sent")
    remote.redis.delete(image_queue, keys.worker_key("ghost"))
    # Once w1 is idle and the batch still unclaimed, the bot sends it again.
    results = delivered_once(await remote.wait_for_results(2, timeout=120), 2)
    assert {remote.job_rows()[j]["worker"] for j in results} == {"w1"}


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "aof-redis", persistent=True)
    server.start()
    yield server
    server.kill()


async def test_a_persistent_redis_back_after_the_heartbeats_expired_loses_nothing(
        tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
        discord_world: SeededWorld, persistent_redis: RedisServer) -> None:
    # docker-compose's Redis keeps its data; its heartbeats come back expired. The worker
    # rendering all along is not taken for lost: its one run is all the job costs.
    remote = Remote(tiny_models, tmp_path, discord_double, discord_world, persistent_redis)
    try:
        await remote.start_workers("w1", step_delay=0.5)
        await remote.harness.start()
        await remote.imagine("a fox through a Redis restart")
        await wait_until(lambda: remote.busy_worker() is not None, what="the worker to start")
        persistent_redis.kill()
        await asyncio.sleep(5.0)  # past worker_timeout_s (3 s): every heartbeat expires
        persistent_redis.start()
        [job_id] = delivered_once(await remote.wait_for_results(1, timeout=120), 1)
        assert remote.job_rows()[job_id]["attempts"] == 1, "its run was not counted lost"
    finally:
        await remote.harness.stop()
        remote.close()
