"""`python -m bot render`: the same executor as the bot, writing files instead of posting."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from tqdm import tqdm

from bot.app import build_runner, executor_limits, with_model
from bot.config import Settings
from bot.executor.executor import Executor
from bot.executor.jobs import (
    Cancelled,
    Done,
    Failed,
    ImageResult,
    Job,
    JobEvent,
    Progress,
    Queued,
)
from bot.images.files import grid_file, save_images
from bot.images.requests import ImageOptions, OptionError, build_image_params
from bot.pipelines.errors import ModelLoadError
from bot.prompts import PromptError


async def render(settings: Settings, args: argparse.Namespace) -> int:
    settings = with_model(settings, args.model)
    options = ImageOptions(prompt=args.prompt, style=args.style, negative=args.negative,
                           seed=args.seed, steps=args.steps, guidance=args.guidance,
                           aspect=args.aspect, count=args.count)
    try:
        build_image_params(options, settings.image)  # bad options fail before the model loads
    except (OptionError, PromptError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runner = build_runner(settings)
    print(f"loading {settings.image.model} ...", file=sys.stderr)
    async with Executor(runner, executor_limits(settings)) as executor:
        try:
            await executor.call(runner.warm_up)  # on the thread that will render
        except ModelLoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        params = build_image_params(options, settings.image, runner.native_size)
        job = Job(user_id=0, user_name="cli", params=params)
        handle = await executor.submit(job)
        final = await _follow(handle.events(), total=params.steps)
    if isinstance(final, Failed):
        print(f"error: {final.reason}", file=sys.stderr)
        return 1
    if not isinstance(final, Done) or not isinstance(final.result, ImageResult):
        print("cancelled", file=sys.stderr)
        return 1
    paths = await asyncio.to_thread(_write_files, job, final.result, args.out)
    for path in paths:
        print(path)
    return 0


async def _follow(events: AsyncIterator[JobEvent], total: int) -> JobEvent | None:
    """Show a job's progress as a terminal bar; returns its final event."""
    final: JobEvent | None = None
    with tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True) as bar:
        async for event in events:
            if isinstance(event, Queued):
                bar.set_description(f"queued #{event.position}")
            elif isinstance(event, Progress):
                bar.set_description("rendering")
                bar.total = event.total
                bar.n = event.step
                bar.refresh()
            elif isinstance(event, Done | Failed | Cancelled):
                final = event
    return final


def _write_files(job: Job, result: ImageResult, out: Path) -> list[Path]:
    paths = save_images(job, result, out)
    if len(result.images) > 1:
        data, extension = grid_file(job, result)
        grid_path = out / f"{job.id}-grid.{extension}"
        grid_path.write_bytes(data)
        paths.append(grid_path)
    return paths
