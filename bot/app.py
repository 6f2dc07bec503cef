"""The composition root: settings in, wired objects out. Nothing here is a global.

`open_services` builds what the cogs and the story CLI need; `open_app` adds the Discord bot
on top, and is what the main job (`serve`), the tests (testkit.harness) and the benches run.
(`python -m bot render` needs no database: it runs the runner and limits from here on an
executor of its own.)
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from typing import Any

from bot.client import GreenheartBot, point_at
from bot.config import AUTO_BATCH_MAX, Settings
from bot.db.connection import open_database
from bot.db.jobs import JobRepository
from bot.db.kv import KeyValues
from bot.db.lock import DatabaseLock
from bot.db.retention import start_retention, stop_retention
from bot.executor.executor import Executor, ExecutorLimits
from bot.images.lifecycle import ImageJobs
from bot.images.models import ModelCatalog
from bot.metrics import Metrics, start_metrics_server, stop_metrics_server
from bot.pipelines.caption import CaptionModelOptions
from bot.pipelines.diffusion import ImageModelOptions
from bot.pipelines.families import read_model_facts
from bot.pipelines.lora import LoraSource
from bot.pipelines.pool import ImagePool
from bot.pipelines.runner import ModelRunner
from bot.pipelines.text import TextModelOptions
from bot.prompts import find_blocked_term
from bot.services import Services
from bot.story.repository import StoryRepository
from bot.story.teller import StoryTeller

log = logging.getLogger(__name__)

# ----- settings → options ------------------------------------------------------------------


def image_options(settings: Settings) -> ImageModelOptions:
    """The default image model's options (image.model may name an [image.models.NAME])."""
    s = settings.image
    return ImageModelOptions(
        model=s.default_profile.path, scheduler=s.scheduler, device=s.device, dtype=s.dtype,
        attention_slicing=s.attention_slicing, vae_tiling=s.vae_tiling,
        cpu_offload=s.cpu_offload, safety_checker=s.safety_checker,
        upscaler=s.upscaler or None, preview_vae=s.preview_vae or None, compile=s.compile,
        inpaint_model=s.inpaint_model or None,
    )


def text_options(settings: Settings) -> TextModelOptions:
    s = settings.story
    return TextModelOptions(
        model=s.model, device=settings.image.device, dtype=settings.image.dtype,
        max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
        top_k=s.top_k, repetition_penalty=s.repetition_penalty,
        context_tokens=s.context_tokens, attempts=s.attempts, prompt_style=s.prompt_style,
        cache_mb=s.cache_mb,
    )


def describe_options(settings: Settings) -> CaptionModelOptions:
    # The caption model shares the image model's device and dtype (one GPU).
    return CaptionModelOptions(model=settings.describe.model, device=settings.image.device,
                               dtype=settings.image.dtype)


def image_pool(settings: Settings) -> ImagePool:
    """Every model members may pick, each with its own path and sampler (its family's, as
    LCM's; else its section's; else [image]'s) and [image]'s memory options. Only the
    default model gets image.inpaint_model (the others inpaint on their own weights), and
    only models with the default's latents get its preview VAE (taesd is not taesdxl)."""
    s = settings.image
    base = image_options(settings)
    default = s.default_profile.name
    latents = _latents(base.model)
    models = {
        info.name: replace(
            base, model=info.profile.path, scheduler=info.scheduler(s),
            inpaint_model=base.inpaint_model if info.name == default else None,
            preview_vae=base.preview_vae if _latents(info.profile.path) == latents else None)
        for info in ModelCatalog.read(s)  # the models' config files, nothing loaded
    }
    return ImagePool(models, default, max_loaded=s.max_loaded, park_in_ram=s.park_in_ram)


def _latents(source: str) -> str:
    """SDXL or not, from the pipeline class in the model's files ("" when unknown)."""
    name = read_model_facts(source).pipeline_class
    return name and ("sdxl" if name.startswith("StableDiffusionXL") else "sd")


def lora_sources(settings: Settings) -> dict[str, LoraSource]:
    return {lo.name: LoraSource(lo.name, lo.path, lo.weight_name)
            for lo in settings.image.loras}


def model_loras(settings: Settings) -> dict[str, tuple[tuple[str, float], ...]]:
    """Each model's always-on LoRA (its section's `lora`) at that LoRA's weight."""
    s = settings.image
    found: dict[str, tuple[tuple[str, float], ...]] = {}
    for profile in s.profiles():
        lora = s.lora(profile.lora) if profile.lora else None
        if lora is not None:
            found[profile.name] = ((lora.name, lora.weight),)
    return found


def build_runner(settings: Settings) -> ModelRunner:
    terms = settings.safety.blocked_terms
    return ModelRunner(
        image_pool(settings),
        text_options(settings),
        blocked_term=lambda text: find_blocked_term(text, terms),
        describe_options=describe_options(settings),
        loras=lora_sources(settings),
        model_loras=model_loras(settings),
    )


def executor_limits(settings: Settings) -> ExecutorLimits:
    e = settings.executor
    return ExecutorLimits(
        queue_limit=e.queue_limit,
        per_user_limit=e.per_user_limit,
        # "auto" (0): the runner sizes each batch (batch_capacity), up to AUTO_BATCH_MAX.
        batch_limit=e.batch_limit or AUTO_BATCH_MAX,
        auto_batch=e.batch_limit == 0,
        preview_every=settings.image.preview_every,
        stop_grace_s=e.stop_grace_s,
        step_timeout_s=e.step_timeout_s,
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
    # One bot per database file; refused (DatabaseOpenError) before anything loads.
    lock = DatabaseLock.acquire(settings.storage.database)
    try:
        db = await open_database(settings.storage.database)
    except BaseException:
        lock.release()
        raise
    jobs = JobRepository(db, settings.storage.images)
    executor = build_executor(settings, runner, jobs)
    retention = None  # the daily sweep of old finished jobs (storage.keep_days)
    # metrics: counted from the first result on; served only when metrics.port > 0
    metrics = Metrics(executor, db)
    jobs.on_result = metrics.job_rendered
    metrics_server = None
    try:
        await executor.start()
        # Fail at start, with the loader's clear message, rather than on the first job (or
        # the first story line, minutes later, in a thread). On the worker thread: the thread
        # that will run the models must be the only one that ran torch.
        # Remote workers load the models; those up at start tell the image model's size.
        native = (0 if settings.executor.mode == "celery"
                  else await executor.call(partial(_load_models, runner)))
        restored = await executor.restore()
        native = native or getattr(executor, "native_size", None) or DEFAULT_NATIVE_SIZE
        stories = StoryRepository(db)
        teller = StoryTeller(stories, jobs, executor, settings, native)
        # Each model's family and own size, read from its files (not loaded).
        catalog = await asyncio.to_thread(ModelCatalog.read, settings.image,
                                          {settings.image.default_profile.name: native})
        images = ImageJobs(settings, executor, jobs, native, story_waiting=teller.waiting_of,
                           catalog=catalog)
        _follow_native_size(executor, images, teller)
        retention = start_retention(db, settings.storage.images, settings.storage.keep_days)
        metrics_server = await start_metrics_server(settings.metrics, metrics)
        yield Services(
            settings=settings, db=db, jobs=jobs, kv=KeyValues(db), executor=executor,
            runner=runner,
            images=images,
            stories=stories,
            teller=teller,
            restored=restored,
            metrics=metrics,
        )
    finally:
        await stop_metrics_server(metrics_server)
        await stop_retention(retention)
        await executor.stop()
        await db.close()
        lock.release()


# The image size a celery-mode bot assumes while no worker has reported its model's (SD 1.5's).
DEFAULT_NATIVE_SIZE = 512


def build_executor(settings: Settings, runner: ModelRunner, jobs: JobRepository) -> Executor:
    """The in-process executor, or (executor.mode = "celery") the remote one, which keeps
    the queue here and sends batches to GPU workers; it loads no model itself."""
    limits = executor_limits(settings)
    if settings.executor.mode != "celery":
        return Executor(runner, limits, store=jobs)
    from bot.executor.jobs import JobKind
    from bot.remote.broker import Broker
    from bot.remote.dispatch import RemoteExecutor

    return RemoteExecutor(
        runner, limits, jobs, Broker(settings),
        models={JobKind.IMAGE: settings.image.model, JobKind.TEXT: settings.story.model,
                JobKind.DESCRIBE: settings.describe.model},
        visibility_timeout_s=settings.executor.visibility_timeout_s,
        worker_timeout_s=settings.executor.worker_timeout_s)


def _follow_native_size(executor: Executor, images: ImageJobs, teller: StoryTeller) -> None:
    """A remote executor learns the image model's own size from the workers."""
    if hasattr(executor, "native_size_seen"):
        def seen(size: int) -> None:
            images.native_size = teller.native_size = size

        executor.native_size_seen = seen


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


# A clean stop waits at least this long for results being posted, even past the grace.
DELIVERY_WAIT_S = 10.0


class WorkerStuck(RuntimeError):
    """The GPU worker hung and never came back: only a new process recovers."""


async def serve(settings: Settings) -> None:
    """Run the bot until it is stopped: the main job of `python -m bot`.

    SIGTERM and SIGINT are a clean stop, not a crash: no new work is accepted, the running
    batch may finish within `executor.stop_grace_s` (else it is interrupted at a step and
    queued again, its attempt not counted), then the bot disconnects and the database is
    closed; this returns normally (exit 0). Jobs still queued, and results rendered but not
    yet posted, are taken up at the next start. Raises WorkerStuck when the GPU worker hung
    for good, so that the process exits non-zero and its supervisor restarts it."""
    assert settings.token
    async with open_app(settings) as bot:
        await _run_until_stopped(bot, settings.token)


async def _run_until_stopped(bot: GreenheartBot, token: str) -> None:
    loop = asyncio.get_running_loop()
    executor = bot.services.executor
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():  # a second signal: no more grace
            log.warning("stopping now: interrupting the running batch")
            executor.interrupt()
        stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    client = asyncio.create_task(bot.start(token), name="discord-client")
    stopped = asyncio.create_task(stop.wait(), name="stop-signal")
    stuck = asyncio.create_task(executor.stuck.wait(), name="worker-stuck")
    try:
        await asyncio.wait({client, stopped, stuck}, return_when=asyncio.FIRST_COMPLETED)
        if client.done():
            client.result()  # the client's own error (bad token, gateway gone for good)
            return
        if stopped.done():
            grace = executor.limits.stop_grace_s
            log.info("stopping: finishing the running batch (up to %.0f s)", grace)
            started = loop.time()
            await executor.drain()
            # What the last batch made is recorded, then posted, before the bot disconnects
            # (what does not make it in time is posted at the next start).
            await executor.flush()
            await asyncio.sleep(0)  # let the presenters take up the final events
            left = max(DELIVERY_WAIT_S, grace - (loop.time() - started))
            if not await bot.finish_deliveries(left):
                log.warning("some results were not posted in time; they are posted at the "
                            "next start")
        await bot.close()
        await asyncio.gather(client, return_exceptions=True)
        if stuck.done():
            raise WorkerStuck("the GPU worker stopped responding and did not come back; "
                              "exiting so that the bot is restarted (queued jobs resume)")
        log.info("stopped cleanly")
    finally:
        for task in (stopped, stuck):
            task.cancel()
        for sig in signals:
            loop.remove_signal_handler(sig)
