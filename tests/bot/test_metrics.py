"""The Prometheus endpoint, scraped over HTTP as Prometheus does: the queue, the job records
by state, GPU seconds by model and worker, delivery retries; off by default, a clear error
on a taken port, closed with the services. Waits poll with generous deadlines (no fixed
sleeps), so a loaded machine only makes them slower."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import MetricsSettings
from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.executor.executor import Executor, ExecutorLimits, RunContext
from bot.executor.jobs import Done, Job, JobResult
from bot.metrics import Metrics, MetricsError, start_metrics_server, stop_metrics_server
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.errors import ApiError
from testkit.discord_double.seeding import SeededWorld
from testkit.executor import ScriptedRunner, text_job, until_running
from testkit.harness import BotHarness, harness_settings
from testkit.imagine import imagine

WAIT_S = 60.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scrape(port: int) -> Samples:
    """Every sample the endpoint serves: (name, sorted labels) -> value."""
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def scrape_until(port: int, what: str, ok: Callable[[Samples], bool]) -> Samples:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        samples = await scrape(port)
        if ok(samples):
            return samples
        if loop.time() > deadline:
            raise AssertionError(f"never scraped {what}; last: {samples}")
        await asyncio.sleep(0.05)


class HeldRunner(ScriptedRunner):
    """The scripted runner, held before each batch until `release` (no timeout of its own:
    a slow machine must not let the held job finish early)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def run(self, jobs: Sequence[Job], ctx: RunContext) -> list[JobResult | Exception]:
        self.release.wait(WAIT_S)
        return super().run(jobs, ctx)


@contextlib.asynccontextmanager
async def served(metrics: Metrics, port: int) -> AsyncIterator[None]:
    server = await start_metrics_server(MetricsSettings(port=port), metrics)
    try:
        yield
    finally:
        await stop_metrics_server(server)


async def test_port_0_serves_nothing() -> None:
    assert MetricsSettings().port == 0
    assert await start_metrics_server(MetricsSettings(), Metrics()) is None
    await stop_metrics_server(None)


async def test_the_executor_s_queue_states_and_gpu_seconds(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "jobs.sqlite3")
    jobs = JobRepository(db, tmp_path / "images")
    runner = HeldRunner()
    executor = Executor(runner, ExecutorLimits(per_user_limit=5, batch_limit=1), store=jobs)
    metrics = Metrics(executor, db)
    jobs.on_result = metrics.job_rendered
    port = free_port()
    try:
        async with executor, served(metrics, port):
            idle = await scrape(port)
            assert value(idle, "greenheart_queue_length") == 0
            assert value(idle, "greenheart_jobs", state="queued") == 0
            assert value(idle, "greenheart_delivery_retries_total") == 0
            assert not [k for k in idle if k[0] == "greenheart_render_seconds_count"]

            first = await executor.submit(text_job(1, "a"))
            handles = [first, await executor.submit(text_job(2, "b")),
                       await executor.submit(text_job(3, "c"))]
            await asyncio.wait_for(until_running(first), WAIT_S)
            busy = await scrape_until(port, "one running, two queued", lambda s: (
                value(s, "greenheart_jobs", state="running") == 1
                and value(s, "greenheart_jobs", state="queued") == 2))
            assert value(busy, "greenheart_queue_length") == 2  # waiting, not the running one

            runner.release.set()
            ends = await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), WAIT_S)
            assert all(isinstance(e, Done) for e in ends)
            for handle in handles:
                await asyncio.wait_for(handle.recorded(), WAIT_S)
            done = await scrape(port)
        labels = {"model": "scripted", "worker": "local"}
        assert value(done, "greenheart_render_seconds_count", **labels) == 3
        seconds = value(done, "greenheart_render_seconds_sum", **labels)
        assert seconds is not None and seconds > 0  # each run slept 3 steps
        assert value(done, "greenheart_jobs", state="rendered") == 3
        assert value(done, "greenheart_jobs", state="queued") == 0
        assert value(done, "greenheart_queue_length") == 0
    finally:
        runner.release.set()
        await db.close()


async def test_two_bots_in_one_process_count_apart() -> None:
    one, two = Metrics(), Metrics()  # a global registry would refuse the second
    one.delivery_retried()
    name = "greenheart_delivery_retries_total"
    assert one.registry.get_sample_value(name) == 1
    assert two.registry.get_sample_value(name) == 0


async def test_a_taken_port_stops_start_up_with_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsError, match=rf"^metrics.port = {port}: can't listen on "
                                               rf"127.0.0.1:{port} \(.+\); pick another port"):
            await start_metrics_server(MetricsSettings(port=port), Metrics())


async def test_the_bot_serves_its_metrics_and_closes_them_on_exit(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    discord_world: SeededWorld,
) -> None:
    port = free_port()
    h = BotHarness(discord_double, discord_world, harness_settings(
        tiny_models, tmp_path, discord_double, metrics={"port": port}))
    await h.start()
    try:
        assert value(await scrape(port), "greenheart_jobs", state="delivered") == 0
        # Discord answers the result's first post with a 503 (discord.py does not retry
        # that one itself): the delivery tries again, and that is counted.
        h.double.fail_next("POST", r"^/channels/\d+/messages$",
                           ApiError(503, 0, "Service Unavailable"))
        await imagine(h, prompt="a lighthouse", count=1)
        after = await scrape_until(port, "the delivered job", lambda s: value(
            s, "greenheart_jobs", state="delivered") == 1)
        model = tiny_models.image.name  # results name a folder by its own name
        assert value(after, "greenheart_render_seconds_count", model=model,
                     worker="local") == 1
        assert value(after, "greenheart_delivery_retries_total") == 1
        assert value(after, "greenheart_queue_length") == 0
    finally:
        await h.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(port)
