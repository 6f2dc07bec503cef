"""Turning a finished image job into files: PNGs that carry their generation parameters."""

from __future__ import annotations

from pathlib import Path

from bot.executor.jobs import ImageMode, ImageParams, ImageResult, Job
from bot.images import GenerationParameters, encode_png


def parameters_for(job: Job, result: ImageResult, index: int) -> GenerationParameters:
    """The AUTOMATIC1111-style parameters of one image of a job."""
    params = job.params
    assert isinstance(params, ImageParams)
    image = result.images[index]
    extra: dict[str, str] = {}
    if image.label or params.style:
        extra["Style"] = image.label or params.style or ""
    if params.mode is not ImageMode.TXT2IMG:
        extra["Denoising strength"] = f"{params.strength:g}"
        extra["Mode"] = params.mode.value
    width, height = image.image.size
    return GenerationParameters(
        prompt=params.prompt_for(index),
        negative=params.negative_for(index),
        steps=params.steps,
        sampler=result.sampler,
        cfg_scale=params.guidance,
        seed=image.seed,
        width=width,
        height=height,
        model=result.model,
        extra=extra,
    )


def png_bytes(job: Job, result: ImageResult, index: int) -> bytes:
    return encode_png(result.images[index].image, parameters_for(job, result, index))


def save_images(job: Job, result: ImageResult, directory: Path) -> list[Path]:
    """Write every image of a job as `<job id>-<index>.png`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, _ in enumerate(result.images):
        path = directory / f"{job.id}-{index}.png"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(png_bytes(job, result, index))
        tmp.replace(path)  # never leave a half-written PNG behind a button
        paths.append(path)
    return paths

