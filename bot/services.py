"""The objects every cog needs, built once in `serve` and passed in (no globals)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import aiosqlite

from bot.config import Settings
from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.db.kv import KeyValues
from bot.engine import ModelRunner
from bot.executor.executor import Executor, JobHandle

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: aiosqlite.Connection
    jobs: JobRepository
    kv: KeyValues
    executor: Executor
    runner: ModelRunner
    # Jobs brought back from the database at start; the cogs pick up the ones they own.
    restored: list[JobHandle]
    # The image model's own side in pixels: the size of a 1:1 picture unless configured.
    native_size: int


@asynccontextmanager
async def open_services(settings: Settings, runner: ModelRunner) -> AsyncIterator[Services]:
    """Database, executor (with jobs restored from the last run) and models, then clean-up."""
    from bot.app import executor_limits

    db = await open_database(settings.storage.database)
    jobs = JobRepository(db, settings.storage.images)
    executor = Executor(runner, executor_limits(settings), store=jobs)
    try:
        await executor.start()
        # Fail at start, with the loader's clear message, rather than on the first job (or
        # the first story line, minutes later, in a thread). On the worker thread: the thread
        # that will run the models must be the only one that ran torch.
        native = await executor.call(partial(_load_models, runner))
        restored = await executor.restore()
        yield Services(settings, db, jobs, KeyValues(db), executor, runner, restored, native)
    finally:
        await executor.stop()
        await db.close()


def _load_models(runner: ModelRunner) -> int:
    """Load both models; returns the image model's native side."""
    runner.warm_up(image=True, text=True)
    return runner.native_size


async def serve(settings: Settings) -> None:
    """Run the bot until it is stopped: the main job of `python -m bot`."""
    from bot.app import build_runner
    from bot.client import GreenheartBot, point_at

    point_at(settings.discord)
    async with open_services(settings, build_runner(settings)) as services:
        bot = GreenheartBot(services)
        async with bot:
            assert settings.token
            await bot.start(settings.token)
