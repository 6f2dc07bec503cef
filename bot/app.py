"""The composition root: settings in, wired objects out. Nothing here is a global.

`open_services` builds what the cogs and the story CLI need; `open_app` adds the Discord bot
on top, and is what the main job (`serve`), the tests (testkit.harness) and the benches run.
(`python -m bot render` needs no database: it runs the runner and limits from here on an
executor of its own.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from bot.client import GreenheartBot, point_at
from bot.config import Settings
from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.db.kv import KeyValues
from bot.executor.executor import Executor, ExecutorLimits
from bot.images.lifecycle import ImageJobs
from bot.pipelines.diffusion import ImageModelOptions
from bot.pipelines.runner import ModelRunner
from bot.pipelines.text import TextModelOptions
from bot.prompts import find_blocked_term
from bot.services import Services
from bot.story.repository import StoryRepository
from bot.story.teller import StoryTeller

# ----- settings → options ------------------------------------------------------------------


def image_options(settings: Settings) -> ImageModelOptions:
    s = settings.image
    return ImageModelOptions(
        model=str(s.model), scheduler=s.scheduler, device=s.device, dtype=s.dtype,
        attention_slicing=s.attention_slicing, vae_tiling=s.vae_tiling,
        cpu_offload=s.cpu_offload, safety_checker=s.safety_checker,
        upscaler=s.upscaler or None, preview_vae=s.preview_vae or None, compile=s.compile,
    )


def text_options(settings: Settings) -> TextModelOptions:
    s = settings.story
    return TextModelOptions(
        model=s.model, device=settings.image.device, dtype=settings.image.dtype,
        max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
        top_k=s.top_k, repetition_penalty=s.repetition_penalty,
        context_tokens=s.context_tokens, attempts=s.attempts,
    )


def build_runner(settings: Settings) -> ModelRunner:
    terms = settings.safety.blocked_terms
    return ModelRunner(
        image_options(settings),
        text_options(settings),
        blocked_term=lambda text: find_blocked_term(text, terms),
    )


def executor_limits(settings: Settings) -> ExecutorLimits:
    e = settings.executor
    return ExecutorLimits(
        queue_limit=e.queue_limit,
        per_user_limit=e.per_user_limit,
        batch_limit=e.batch_limit,
        preview_every=settings.image.preview_every,
    )


def with_model(settings: Settings, model: str | None) -> Settings:
    """Settings with another image model (the CLI's --model)."""
    if not model:
        return settings
    return replace(settings, image=replace(settings.image, model=model))


# ----- wiring ------------------------------------------------------------------------------

RunnerFactory = Callable[[Settings], ModelRunner]


@asynccontextmanager
async def open_services(
    settings: Settings, runner: ModelRunner | None = None
) -> AsyncIterator[Services]:
    """Database, executor (with jobs restored from the last run), models and the features'
    services; closed in reverse order on exit. `runner` replaces the one the settings
    describe (tests and benches pass stand-ins or wrappers)."""
    if runner is None:
        runner = build_runner(settings)
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
        stories = StoryRepository(db)
        yield Services(
            settings=settings, db=db, jobs=jobs, kv=KeyValues(db), executor=executor,
            runner=runner,
            images=ImageJobs(settings, executor, jobs, native),
            stories=stories,
            teller=StoryTeller(stories, jobs, executor, settings, native),
            restored=restored,
        )
    finally:
        await executor.stop()
        await db.close()


def _load_models(runner: ModelRunner) -> int:
    """Load both models; returns the image model's native side."""
    runner.warm_up(image=True, text=True)
    return runner.native_size


@asynccontextmanager
async def open_app(
    settings: Settings, runner: ModelRunner | None = None, **bot_options: Any
) -> AsyncIterator[GreenheartBot]:
    """Services and the bot on them, pointed where the config says; not connected yet
    (`bot.start(token)` does that). `bot_options` go to GreenheartBot (`extensions`) and on
    to discord.py's Client (e.g. `guild_ready_timeout`)."""
    restore = point_at(settings.discord)
    try:
        async with open_services(settings, runner) as services:
            bot = GreenheartBot(services, **bot_options)
            async with bot:
                yield bot
    finally:
        restore()


async def serve(settings: Settings) -> None:
    """Run the bot until it is stopped: the main job of `python -m bot`."""
    assert settings.token
    async with open_app(settings) as bot:
        await bot.start(settings.token)
