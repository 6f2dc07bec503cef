"""`python -m bot render`: the same executor as the bot, writing files instead of posting."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
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
    ImageParams,
    ImageResult,
    Job,
    JobEvent,
    Progress,
    Queued,
)
from bot.images.files import grid_file, save_images
from bot.images.inputs import (
    InputPicture,
    InputPictureError,
    check_upload,
    img2img_params,
    read_picture,
    save_input,
)
from bot.images.outpaint import MAX_ZOOM, MIN_ZOOM, Outpaint, OutpaintError
from bot.images.requests import ImageOptions, OptionError, build_image_params, outpainted
from bot.pipelines.errors import ModelLoadError
from bot.prompts import PromptError


async def render(settings: Settings, args: argparse.Namespace) -> int:
    settings = with_model(settings, args.model)
    options = ImageOptions(prompt=args.prompt, style=args.style, negative=args.negative,
                           seed=args.seed, steps=args.steps, guidance=args.guidance,
                           aspect=args.aspect, count=args.count)
    image_path: Path | None = getattr(args, "image", None)
    strength: float | None = getattr(args, "strength", None)
    try:
        build_image_params(options, settings.image)  # bad options fail before the model loads
        data = _input_bytes(image_path, strength, settings)
        widen = _outpaint_of(args, image_path, strength)
    except (OptionError, PromptError, InputPictureError) as exc:
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
        if data is not None and image_path is not None:
            try:
                picture = read_picture(data, image_path.name, settings.image,
                                       runner.native_size)
            except InputPictureError as exc:
                print(f"error: --{exc}", file=sys.stderr)
                return 2
            job.params = img2img_params(params, picture, _saved_input(picture, job),
                                        settings.image.img2img_strength
                                        if strength is None else strength)
        if widen is not None:  # --zoom-out / --pan: that picture (fitted, saved) widened
            source = job.params
            assert isinstance(source, ImageParams) and source.source_path
            try:
                job.params = outpainted(params, 0, None, source.source_path,
                                        (source.width, source.height), widen,
                                        settings.image.max_side)
            except OutpaintError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
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


def _input_bytes(path: Path | None, strength: float | None, settings: Settings) -> bytes | None:
    """The --image file's bytes, checked as an upload would be; None without --image."""
    if path is None:
        if strength is not None:
            raise OptionError("--strength only applies with --image PATH.")
        return None
    if strength is not None and not 0.05 <= strength <= 1.0:
        raise OptionError(f"--strength = {strength:g} is out of range; choose 0.05-1.")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputPictureError(f"image: {path} can't be read ({exc.strerror}).") from None
    check_upload(path.name, size, None, settings.image)
    return path.read_bytes()


def _outpaint_of(args: argparse.Namespace, image: Path | None,
                 strength: float | None) -> Outpaint | None:
    """What --zoom-out or --pan ask for (None: neither); raises OptionError."""
    zoom: float | None = getattr(args, "zoom_out", None)
    pan: str | None = getattr(args, "pan", None)
    if zoom is None and pan is None:
        return None
    if zoom is not None and pan is not None:
        raise OptionError("choose --zoom-out or --pan, not both.")
    if image is None:
        raise OptionError("--zoom-out and --pan widen a picture: give it with --image PATH.")
    if strength is not None:
        raise OptionError("--strength is for img2img; --zoom-out and --pan paint the new "
                          "border from noise (denoising strength 1), so leave it out.")
    if zoom is not None and not MIN_ZOOM <= zoom <= MAX_ZOOM:
        raise OptionError(f"--zoom-out = {zoom:g} is out of range; choose "
                          f"{MIN_ZOOM:g}-{MAX_ZOOM:g}.")
    try:
        return Outpaint(zoom=zoom or 0.0, pan=pan or "")
    except OutpaintError as exc:  # a --pan argparse let through
        raise OptionError(f"--pan: {exc}") from None


def _saved_input(picture: InputPicture, job: Job) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="greenheart-input-"))
    return save_input(picture, folder, job.id)


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
