"""The bot's own copy of the image model's CLIP tokenizer, and the estimate without one."""

from __future__ import annotations

from pathlib import Path

from bot.config import settings_from_mapping
from bot.pipelines.tiny import TinyModelPaths
from bot.story.cast import estimate_tokens
from bot.story.clip_tokens import PromptTokens, load_clip_counter


def test_the_image_models_tokenizer_counts_without_markers(tiny_models: TinyModelPaths
                                                           ) -> None:
    count = load_clip_counter(str(tiny_models.image))
    assert count is not None
    assert count("ab c") == 3  # the tiny vocabulary: one token per byte; spaces split
    assert count("x" * 200) == 200  # long texts are counted whole, not truncated at 77


def test_a_model_without_a_tokenizer_here_gives_none(tmp_path: Path) -> None:
    assert load_clip_counter(str(tmp_path / "nothing")) is None
    assert load_clip_counter("no-such-owner/no-such-model") is None  # never downloaded


async def test_prompt_tokens_loads_once_and_falls_back_to_the_estimate(
        tiny_models: TinyModelPaths, tmp_path: Path) -> None:
    tiny = PromptTokens(settings_from_mapping({"image": {"model": str(tiny_models.image)}})
                        .image)
    first = await tiny.counter()
    assert first is await tiny.counter()
    assert first("ab c") == 3
    missing = PromptTokens(settings_from_mapping({"image": {"model": str(tmp_path)}}).image)
    assert await missing.counter() is estimate_tokens
