"""Turning a finished image job into files: PNGs that carry their generation parameters."""

from __future__ import annotations

from pathlib import Path

from bot.executor.jobs import ImageMode, ImageParams, ImageResult, Job
from bot.images.grids import make_grid
from bot.images.journey import step_of
from bot.images.pnginfo import GenerationParameters, LoraUse
from bot.images.upload import DISCORD_UPLOAD_LIMIT, fit_under
from bot.pipelines.errors import public_model_name


def parameters_for(job: Job, result: ImageResult, index: int) -> GenerationParameters:
    """The AUTOMATIC1111-style parameters of one image of a job."""
    params = job.params
    assert isinstance(params, ImageParams)
    image = result.images[index]
    extra: dict[str, str] = {}
    # A 🎞 journey's frame, or a step kept from one, is labelled with its step, not a style.
    step = step_of(image.label)
    label = "" if step else image.label
    if label or params.style:
        extra["Style"] = label or params.style or ""
    if step:
        extra["Journey"] = image.label  # "step N/M"; Steps below is N
    if params.mode is ImageMode.JOURNEY:
        if params.strength > 0:
            extra["Denoising strength"] = f"{params.strength:g}"
    elif params.mode is not ImageMode.TXT2IMG:
        extra["Denoising strength"] = f"{params.strength:g}"
        extra["Mode"] = params.mode.value
    if params.mode is ImageMode.OUTPAINT:
        # AUTOMATIC1111 writes outpainting as img2img with a mask: Denoising strength (1:
        # the border is painted from noise) and Mask blur (here the seam's width).
        extra["Mask blur"] = str(params.mask_blur)
        if params.pan:
            extra["Pan"] = params.pan
        else:
            extra["Zoom out"] = f"{params.zoom_out:g}"
    width, height = image.image.size
    hashes = dict(result.lora_hashes)
    return GenerationParameters(
        prompt=params.prompt_for(index),
        negative=params.negative_for(index),
        steps=step[0] if step else params.steps,  # a journey's frame: the step it shows
        sampler=result.sampler,
        cfg_scale=params.guidance,
        seed=image.seed,
        width=width,
        height=height,
        model=public_model_name(result.model),  # a folder by its name, not the host's path
        extra=extra,
        loras=tuple(LoraUse(name, weight, hashes.get(name, "")) for name, weight in params.loras),
    )


def image_file(job: Job, result: ImageResult, index: int) -> tuple[bytes, str]:
    """One image as PNG with its parameters, under Discord's 10 MiB upload limit (a large
    upscale is shrunk to fit); returns the bytes and the file extension."""
    return fit_under(result.images[index].image, DISCORD_UPLOAD_LIMIT,
                     parameters_for(job, result, index))


def grid_file(job: Job, result: ImageResult, limit: int = DISCORD_UPLOAD_LIMIT
              ) -> tuple[bytes, str]:
    """The job's pictures as one file under `limit` bytes: a grid (captioned with the style
    labels, if any) or the single picture, with the first picture's parameters; returns the
    bytes and the file extension."""
    labels = ["" if step_of(img.label) else img.label for img in result.images]  # styles
    picture = make_grid([img.image for img in result.images],
                        labels=labels if any(labels) else None)
    return fit_under(picture, limit, parameters_for(job, result, 0))


def save_images(job: Job, result: ImageResult, directory: Path) -> list[Path]:
    """Write every image of a job as `<job id>-<index>.png`; returns the paths.

    All or nothing: if a write fails (a full disk), the files written so far and the
    half-written one are removed before the error is raised, so no button ever points at a
    partial picture and nothing is left behind."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    tmp: Path | None = None
    try:
        for index, _ in enumerate(result.images):
            data, extension = image_file(job, result, index)
            path = directory / f"{job.id}-{index}.{extension}"
            tmp = path.with_suffix(".part")
            write_file(tmp, data)
            tmp.replace(path)  # never leave a half-written PNG behind a button
            tmp = None
            paths.append(path)
    except BaseException:
        for leftover in [*paths, *([tmp] if tmp else [])]:
            leftover.unlink(missing_ok=True)
        raise
    return paths


def write_file(path: Path, data: bytes) -> None:
    """Where a job's bytes reach the disk (a test makes it fail as a full disk would)."""
    path.write_bytes(data)
