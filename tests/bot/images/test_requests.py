"""Options to job parameters: defaults, limits with clear messages, style sweeps, seeds."""

from __future__ import annotations

import pytest

from bot.config import ImageSettings
from bot.executor.jobs import ImageMode, Job
from bot.images.requests import (
    ALL_STYLES,
    ImageOptions,
    OptionError,
    build_image_params,
    derived,
    rerolled,
    restyled,
    size_for,
)
from bot.pipelines.diffusion import ImageModelOptions
from bot.pipelines.runner import ModelRunner
from bot.pipelines.text import TextModelOptions
from bot.prompts import PromptError, StylePreset, find_style

SETTINGS = ImageSettings()


def test_defaults_and_seed_series() -> None:
    p = build_image_params(ImageOptions(prompt="Oregon 💚|watercolor", seed=41), SETTINGS)
    assert p.subject == "Oregon 💚"
    assert p.style == "watercolor"
    assert p.prompt.startswith("Oregon 💚, watercolor")
    assert p.seeds == (41, 42, 43, 44)
    assert (p.steps, p.guidance, p.width, p.height) == (25, 7.0, 512, 512)
    assert "watermark" in p.negative


@pytest.mark.parametrize(("aspect", "size"), [("1:1", (512, 512)), ("3:2", (640, 448)),
                                              ("2:3", (448, 640)), ("16:9", (704, 384)),
                                              ("9:16", (384, 704))])
def test_aspects_keep_about_the_same_area(aspect: str, size: tuple[int, int]) -> None:
    assert size_for(aspect, SETTINGS) == size


@pytest.mark.parametrize(("options", "message"), [
    (ImageOptions(prompt="x", steps=61), "steps = 61 is out of range; choose 1-60."),
    (ImageOptions(prompt="x", count=5), "count = 5 is out of range; choose 1-4."),
    (ImageOptions(prompt="x", guidance=31), "guidance = 31 is out of range; choose 0-30."),
    (ImageOptions(prompt="x", aspect="4:3"), "aspect '4:3' is not offered; choose one of: 1:1"),
    (ImageOptions(prompt="x", seed=-1), "seed = -1 is out of range"),
])
def test_bad_options_say_what_is_allowed(options: ImageOptions, message: str) -> None:
    with pytest.raises(OptionError) as info:
        build_image_params(options, SETTINGS)
    assert message in str(info.value)


def test_unknown_style_option_lists_presets() -> None:
    with pytest.raises(PromptError, match="painting"):
        build_image_params(ImageOptions(prompt="x", style="vaporwave"), SETTINGS)


def test_all_styles_sweep_one_image_per_preset_same_seed() -> None:
    p = build_image_params(ImageOptions(prompt="Oregon 💚", style=ALL_STYLES, seed=7), SETTINGS)
    assert p.labels == tuple(s.name for s in SETTINGS.styles)
    assert set(p.seeds) == {7} and len(p.seeds) == len(SETTINGS.styles)
    assert all(pr.startswith("Oregon 💚, ") for pr in p.prompts)
    assert len(set(p.prompts)) == len(p.prompts)


def test_a_sweep_over_more_presets_than_max_sweep_takes_the_first_and_says_so() -> None:
    presets = tuple(StylePreset(f"style {i}", f"phrase {i}") for i in range(12))
    settings = ImageSettings(styles=presets, max_sweep=8)
    p = build_image_params(ImageOptions(prompt="a fox", style=ALL_STYLES, seed=3), settings)
    assert p.labels == tuple(f"style {i}" for i in range(8))
    assert p.count == len(p.prompts) == 8 and p.styles_left_out == 4
    assert rerolled(p).styles_left_out == 4  # 🔄 makes the same capped sweep again
    # Each picture counts as one image: against the batch limit and in the ETA.
    job = Job(user_id=1, params=p)
    runner = ModelRunner(ImageModelOptions(model="unused"), TextModelOptions(model="unused"))
    assert runner.batch_size(job) == 8
    assert job.work_units == p.steps * 8
    # Presets within the cap: all of them, nothing left out.
    few = build_image_params(ImageOptions(prompt="a fox", style=ALL_STYLES),
                             ImageSettings(styles=presets[:5], max_sweep=8))
    assert few.count == 5 and few.styles_left_out == 0


def test_reroll_restyle_and_derive() -> None:
    p = build_image_params(ImageOptions(prompt="a fox", seed=5, count=2), SETTINGS)
    again = rerolled(p)
    assert again.count == 2 and again.prompt == p.prompt and again.seeds != p.seeds
    cyber = restyled(p, find_style(SETTINGS.styles, "cyberpunk"), SETTINGS)  # type: ignore[arg-type]
    assert cyber.seeds == p.seeds and cyber.style == "cyberpunk" and "neon" in cyber.prompt
    up = derived(p, ImageMode.UPSCALE, 1, "abc123", "/x.png", 0.3)
    assert (up.mode, up.seeds, up.source_index, up.source_path) == (ImageMode.UPSCALE, (6,), 1,
                                                                    "/x.png")
    var = derived(p, ImageMode.VARIATION, 0, "abc123", "/x.png", 0.55)
    assert var.count == 4 and var.strength == 0.55
