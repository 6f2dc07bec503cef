"""Prometheus metrics: how long the queue is, the job records by state, GPU seconds by model
and worker, and how often posting a result had to be tried again.

Counted always, in a registry of this object's own (no process-wide state: the tests run
several bots in one process); served at http://host:port/metrics only when `metrics.port` is
set. The endpoint runs on the bot's event loop (aiohttp, which discord.py already brings), so
a scrape reads the database through the bot's own connection.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Protocol

import aiosqlite
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from bot.config import MetricsSettings
from bot.executor.executor import QueueEntry
from bot.executor.jobs import Job, JobResult, JobState

log = logging.getLogger(__name__)

# GPU seconds of one job: tiny models take a fraction of a second, an SDXL upscale on a small
# card minutes.
RENDER_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Queue(Protocol):
    """What the metrics read of the executor."""

    def snapshot(self) -> list[QueueEntry]: ...


class MetricsError(RuntimeError):
    """The endpoint could not be started (the port is taken, the host is not this one)."""


class Metrics:
    def __init__(self, queue: Queue | None = None,
                 db: aiosqlite.Connection | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.db = db
        self.render_seconds = Histogram(
            "greenheart_render_seconds",
            "GPU seconds of each job that rendered (its share of its batch), by model and worker",
            ("model", "worker"), buckets=RENDER_BUCKETS, registry=self.registry)
        self.delivery_retries = Counter(
            "greenheart_delivery_retries",
            "Posts of results tried again after a transient failure (429, 5xx, network)",
            registry=self.registry)
        self.queue_length = Gauge(
            "greenheart_queue_length", "Jobs waiting in the executor (not yet running)",
            registry=self.registry)
        self.jobs = Gauge(
            "greenheart_jobs",
            "Job records by state (finished ones are kept storage.keep_days)",
            ("state",), registry=self.registry)
        if queue is not None:
            # Read at scrape time: the executor's snapshot takes its own lock.
            self.queue_length.set_function(
                lambda: sum(1 for e in queue.snapshot() if e.state is JobState.QUEUED))

    # ----- counted as things happen ---------------------------------------------------------

    def job_rendered(self, job: Job, result: JobResult) -> None:
        """A run produced `result` (JobRepository.on_result). Results that don't say their
        GPU time (runners outside the executor) are not counted."""
        seconds = result.timings.get("gpu_s")
        if seconds is None:
            return
        self.render_seconds.labels(model=result.model or "unknown",
                                   worker=result.worker or "unknown").observe(max(0.0, seconds))

    def delivery_retried(self) -> None:
        self.delivery_retries.inc()

    # ----- read at scrape time --------------------------------------------------------------

    async def refresh(self) -> None:
        """Read the job table's counts by state (every state, zeros too: a series that
        appears and vanishes makes rate() and alerts lie)."""
        if self.db is None:
            return
        try:
            async with self.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state") as cur:
                counts = {str(row[0]): int(row[1]) for row in await cur.fetchall()}
        except (sqlite3.Error, ValueError) as exc:  # ValueError: the connection is closed
            log.warning("metrics: could not count the jobs: %s", exc)
            return
        for state in JobState:
            self.jobs.labels(state=state.value).set(counts.get(state.value, 0))

    async def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and content type (text format, or OpenMetrics if asked)."""
        await self.refresh()
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


# ----- the endpoint ---------------------------------------------------------------------------

MetricsServer = web.AppRunner


async def start_metrics_server(settings: MetricsSettings,
                               metrics: Metrics) -> MetricsServer | None:
    """Serve GET /metrics on settings.host:settings.port; None when port is 0 (off).
    Raises MetricsError when it can't listen there."""
    if settings.port == 0:
        return None

    async def scrape(request: web.Request) -> web.Response:
        body, content_type = await metrics.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise MetricsError(
            f"metrics.port = {settings.port}: can't listen on {settings.host}:{settings.port} "
            f"({exc.strerror or exc}); pick another port, or 0 for no endpoint") from exc
    log.info("metrics at http://%s:%d/metrics", settings.host, settings.port)
    return runner


async def stop_metrics_server(server: MetricsServer | None) -> None:
    """Close the endpoint (scrapes in flight are answered or dropped)."""
    if server is not None:
        await server.cleanup()
