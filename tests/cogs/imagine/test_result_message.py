"""What a result message says: a capped "all styles" sweep tells how many styles it left out."""

from __future__ import annotations

from bot.config import ImageSettings
from bot.executor.jobs import Job
from bot.images.requests import ALL_STYLES, ImageOptions, build_image_params
from bot.prompts import StylePreset
from cogs.imagine.result_message import result_content

PRESETS = tuple(StylePreset(f"style {i}", f"phrase {i}") for i in range(12))


def sweep_job(styles: tuple[StylePreset, ...], max_sweep: int, prompt: str = "a fox") -> Job:
    params = build_image_params(ImageOptions(prompt=prompt, style=ALL_STYLES),
                                ImageSettings(styles=styles, max_sweep=max_sweep,
                                              max_prompt_chars=6000))
    return Job(user_id=7, params=params)


def test_a_capped_sweep_says_how_many_styles_it_left_out() -> None:
    text = result_content(sweep_job(PRESETS, 8))
    assert text.startswith("**a fox** — <@7>\n")
    assert text.endswith("🎨 The first 8 of 12 styles: one sweep makes at most 8 pictures. "
                         "For the other 4, use the style menu or /imagine's style option.")
    one_more = result_content(sweep_job(PRESETS[:9], 8))
    assert "The first 8 of 9 styles" in one_more and "For the other one," in one_more


def test_a_whole_sweep_and_a_long_subject() -> None:
    assert result_content(sweep_job(PRESETS[:5], 8)) == "**a fox** — <@7>"
    # The note survives a subject long enough to fill the message.
    long = result_content(sweep_job(PRESETS, 3, prompt="fox " * 1400))
    assert len(long) <= 2000 and long.endswith("/imagine's style option.")
