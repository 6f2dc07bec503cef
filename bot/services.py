"""The objects every cog needs, built once by the composition root (`bot.app`) and passed in:
nothing is global, and a cog never builds a service of its own."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiosqlite

from bot.config import Settings
from bot.db.jobs import JobRepository
from bot.db.kv import KeyValues
from bot.executor.executor import Executor
from bot.executor.handle import JobHandle
from bot.images.lifecycle import ImageJobs
from bot.metrics import Metrics
from bot.pipelines.runner import ModelRunner
from bot.story.repository import StoryRepository
from bot.story.teller import StoryTeller


@dataclass
class Services:
    settings: Settings
    db: aiosqlite.Connection
    jobs: JobRepository
    kv: KeyValues
    executor: Executor
    runner: ModelRunner
    # The features' Discord-free sides: an image job's life, and story operations.
    images: ImageJobs
    stories: StoryRepository
    teller: StoryTeller
    # Jobs brought back from the database at start; the cogs pick up the ones they own.
    restored: list[JobHandle]
    # Prometheus counters (bot/metrics.py): counted always, served when metrics.port is set.
    metrics: Metrics = field(default_factory=Metrics)
