"""🎞 A journey without Discord: its frames as one animated WebP under an upload limit, and
the params of a step a member keeps as a picture of its own."""

from __future__ import annotations

import io
import re
from dataclasses import replace

from PIL import Image

from bot.executor.jobs import ImageMode, ImageParams
from bot.images.requests import ALL_STYLES
from bot.images.upload import DISCORD_UPLOAD_LIMIT

FRAME_MS = 180  # each step on screen
LAST_FRAME_MS = 2000  # the finished picture is held before the loop starts again
QUALITIES = (85, 70, 55, 40)  # tried in turn; then the frames are shrunk
# Pictures a journey can be made of: one denoising run from noise or from a stored picture.
# An upscale or a zoom/pan is two stages (resize + refine, inpaint + blend), not one run.
JOURNEY_MODES = (ImageMode.TXT2IMG, ImageMode.VARIATION, ImageMode.IMG2IMG)
STEP_LABEL = re.compile(r"step (?P<step>\d+)/(?P<total>\d+)")


class JourneyTooBig(ValueError):
    """Not even the smallest frames fit the upload limit."""


def journey_webp(frames: list[Image.Image], limit: int = DISCORD_UPLOAD_LIMIT) -> bytes:
    """The frames as a looping animated WebP of at most `limit` bytes (and Discord's 10 MiB):
    lower quality first, then smaller frames, until it fits. libwebp merges a frame that
    differs from the one before by less than its quality shows (the last steps of a run
    often do) into that one, adding its time: the animation loses nothing visible, and every
    frame is still kept as its own PNG."""
    if not frames:
        raise ValueError("a journey needs at least one frame")
    limit = min(limit, DISCORD_UPLOAD_LIMIT)
    rgb = [frame.convert("RGB") for frame in frames]
    while True:
        for quality in QUALITIES:
            data = _encode(rgb, quality)
            if len(data) <= limit:
                return data
        width, height = rgb[0].size
        if min(width, height) <= 64:
            raise JourneyTooBig(f"the journey does not fit in {limit} bytes")
        size = (max(64, width * 3 // 4), max(64, height * 3 // 4))
        rgb = [frame.resize(size, Image.Resampling.LANCZOS) for frame in rgb]


def _encode(frames: list[Image.Image], quality: int) -> bytes:
    buffer = io.BytesIO()
    durations = [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS]
    frames[0].save(buffer, format="WEBP", save_all=True, append_images=frames[1:],
                   duration=durations, loop=0, quality=quality, method=4)
    return buffer.getvalue()


def step_of(label: str) -> tuple[int, int] | None:
    """(step, total) of a frame's label "step N/M"; None for any other label."""
    match = STEP_LABEL.fullmatch(label)
    return (int(match["step"]), int(match["total"])) if match else None


def journey_params(params: ImageParams, index: int, source_job: str) -> ImageParams:
    """🎞 Picture `index` of a finished job, to be rendered again as it was made (its seed,
    prompt, steps, guidance, size, model and LoRAs; from its source picture at its strength
    when it was img2img), keeping frames on the way."""
    seed = params.seeds[index]
    label = params.labels[index] if index < len(params.labels) else None
    from_picture = params.mode is not ImageMode.TXT2IMG
    return replace(
        params, mode=ImageMode.JOURNEY, seeds=(seed,), prompt=params.prompt_for(index),
        negative=params.negative_for(index), labels=(), prompts=(), negatives=(),
        styles_left_out=0, style=label or (params.style if params.style != ALL_STYLES else None),
        strength=params.strength if from_picture else 0.0,
        source_path=params.source_path if from_picture else None,
        source_job=source_job, source_index=index)


def kept_params(journey: ImageParams) -> ImageParams:
    """A kept step is a picture of its own, whose params say how to render the picture it
    became: the journey's, back in its original mode (txt2img, or a variation of the same
    source picture), all its steps. What the step shows is in its PNG info ("Steps: N")."""
    assert journey.mode is ImageMode.JOURNEY
    from_picture = journey.strength > 0 and bool(journey.source_path)
    return replace(journey, mode=ImageMode.VARIATION if from_picture else ImageMode.TXT2IMG,
                   source_job=journey.source_job if from_picture else None,
                   source_path=journey.source_path if from_picture else None,
                   strength=journey.strength if from_picture else 0.0)
