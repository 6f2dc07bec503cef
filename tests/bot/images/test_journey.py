"""🎞 The journey's WebP (frames, size under the limit, decodes, animated) and its params."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageSequence

from bot.executor.jobs import ImageMode, ImageParams
from bot.images.journey import (
    FRAME_MS,
    LAST_FRAME_MS,
    JourneyTooBig,
    journey_params,
    journey_webp,
    kept_params,
    step_of,
)
from bot.images.upload import DISCORD_UPLOAD_LIMIT


def frames(count: int, side: int = 96) -> list[Image.Image]:
    """Noise that settles into a picture, as a journey does (noise is the hardest to fit)."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:side, 0:side] / side  # the finished picture: smooth, as pictures are
    final = np.stack([255 * x, 255 * y, 128 + 100 * np.sin(6 * x * y)], axis=-1)
    out = []
    for i in range(count):
        noise = rng.integers(0, 256, (side, side, 3))
        mix = (i + 1) / count
        out.append(Image.fromarray((final * mix + noise * (1 - mix)).astype(np.uint8)))
    return out


def decoded(data: bytes) -> tuple[Image.Image, list[Image.Image], list[int]]:
    image = Image.open(io.BytesIO(data))
    pictures, durations = [], []
    for frame in ImageSequence.Iterator(image):
        pictures.append(frame.convert("RGB"))  # loads it: then its duration is known
        durations.append(int(frame.info["duration"]))
    return image, pictures, durations


def test_the_webp_is_every_frame_looping_with_the_picture_held() -> None:
    made = frames(12)
    data = journey_webp(made)
    image, pictures, durations = decoded(data)
    assert image.format == "WEBP" and image.is_animated and image.n_frames == 12
    assert image.info.get("loop", 0) == 0  # forever
    assert durations == [FRAME_MS] * 11 + [LAST_FRAME_MS]
    assert len(data) <= DISCORD_UPLOAD_LIMIT
    assert pictures[-1].size == made[-1].size
    last = np.asarray(pictures[-1], dtype=np.float64)
    assert np.abs(last - np.asarray(made[-1], dtype=np.float64)).mean() < 4  # lossy, close


def test_a_tight_limit_lowers_quality_then_shrinks_the_frames() -> None:
    made = frames(10, side=256)
    roomy = journey_webp(made)
    limit = len(roomy) // 5
    data = journey_webp(made, limit)
    image, pictures, _ = decoded(data)
    assert len(data) <= limit and image.n_frames == 10
    assert pictures[0].size[0] < 256  # quality alone was not enough


def test_a_limit_nothing_fits_is_said() -> None:
    with pytest.raises(JourneyTooBig):
        journey_webp(frames(5), 200)
    with pytest.raises(ValueError, match="at least one frame"):
        journey_webp([])


def test_step_labels() -> None:
    assert step_of("step 7/20") == (7, 20)
    assert step_of("watercolor") is None and step_of("step 7") is None


def base(**changes: object) -> ImageParams:
    params = ImageParams(prompt="a fox, watercolor", negative="blurry", subject="a fox",
                         style="watercolor", seeds=(10, 11, 12, 13), steps=12, guidance=6.5,
                         width=64, height=64, model="tiny", loras=(("ink", 0.5),))
    return ImageParams(**{**params.__dict__, **changes})  # type: ignore[arg-type]


def test_a_journey_renders_one_picture_as_it_was_made() -> None:
    journey = journey_params(base(), 2, "abc123")
    assert journey.mode is ImageMode.JOURNEY and journey.seeds == (12,)
    assert (journey.steps, journey.guidance, journey.model, journey.loras) == \
        (12, 6.5, "tiny", (("ink", 0.5),))
    assert (journey.source_job, journey.source_index, journey.strength) == ("abc123", 2, 0.0)
    assert journey.source_path is None
    # A variation's journey starts from the same source picture at the same strength.
    variation = base(mode=ImageMode.VARIATION, strength=0.6, source_path="/p/x-0.png",
                     source_job="parent")
    journey = journey_params(variation, 1, "var1")
    assert (journey.strength, journey.source_path, journey.seeds) == (0.6, "/p/x-0.png", (11,))
    # A sweep's picture: its own prompt and style.
    sweep = base(labels=("ink", "oil"), prompts=("a fox, ink", "a fox, oil"),
                 negatives=("n1", "n2"), style="all styles", seeds=(5, 5))
    journey = journey_params(sweep, 1, "sw")
    assert (journey.prompt, journey.negative, journey.style) == ("a fox, oil", "n2", "oil")
    assert journey.labels == () and journey.prompts == ()


def test_a_kept_step_renders_as_the_picture_it_became() -> None:
    kept = kept_params(journey_params(base(), 0, "abc123"))
    assert kept.mode is ImageMode.TXT2IMG and kept.seeds == (10,) and kept.steps == 12
    assert kept.source_job is None and kept.source_path is None
    variation = base(mode=ImageMode.VARIATION, strength=0.6, source_path="/p/x-0.png")
    kept = kept_params(journey_params(variation, 0, "v"))
    assert kept.mode is ImageMode.VARIATION and kept.source_path == "/p/x-0.png"
    assert kept.strength == 0.6
