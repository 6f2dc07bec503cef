"""<lora:NAME:W> tags in prompts, and matching LoRAs against [image.loras.NAME]."""

from __future__ import annotations

import pytest

from bot.config import ImageSettings, LoraProfile
from bot.prompts.loras import extract_loras, resolve_loras, trigger_words
from bot.prompts.parsing import PromptError

SETTINGS = ImageSettings(
    loras=(
        LoraProfile(name="Pixel Art", path="loras/pixel.safetensors", weight=0.7,
                    triggers=("pixel art", "8-bit")),
        LoraProfile(name="detail", path="owner/add-detail", triggers=("Pixel Art", "sharp")),
        LoraProfile(name="ink", path="loras/ink.safetensors", weight=-0.5),
    ),
    max_loras=2,
)

# -- extract_loras -----------------------------------------------------------------------------


@pytest.mark.parametrize(("prompt", "cleaned"), [
    ("a cat, <lora:pixel:0.8>, sunset", "a cat, sunset"),
    ("a cat <lora:pixel:0.8>", "a cat"),
    ("<lora:pixel:0.8>, a cat", "a cat"),
    ("a cat,<lora:pixel:0.8>", "a cat"),
    ("a <lora:pixel:0.8> cat", "a cat"),
    ("a cat <lora:pixel:0.8>, sunset", "a cat, sunset"),
    ("a cat\n<lora:pixel:0.8>\nsunset", "a cat\nsunset"),
    ("line one <lora:pixel:0.8>\nline two", "line one\nline two"),
    ("<lora:pixel:0.8>", ""),
])
def test_tags_are_removed_and_the_text_tidied(prompt: str, cleaned: str) -> None:
    assert extract_loras(prompt) == (cleaned, (("pixel", 0.8),))


def test_several_tags_in_order_with_and_without_weights() -> None:
    text, loras = extract_loras("a, <lora:Pixel Art> <LoRA:detail:-0.5>, b <lora: ink :+1.25>")
    assert text == "a, b"
    assert loras == (("Pixel Art", None), ("detail", -0.5), ("ink", 1.25))


def test_a_prompt_without_tags_is_returned_as_it_is() -> None:
    prompt = "  a cat,, in a <hat>  (x:1.2) "
    assert extract_loras(prompt) == (prompt, ())


@pytest.mark.parametrize(("prompt", "problem"), [
    ("a <lora:> cat", "names no LoRA"),
    ("a <lora: :0.5> cat", "names no LoRA"),
    ("a <lora:x:abc> cat", "'abc' is not a number"),
    ("a <lora:x:nan> cat", "'nan' is not a number"),
    ("a <lora:x:> cat", "'' is not a number"),
    ("a <lora:x:0.5:0.8> cat", "more than one weight"),
    ("a <lora:x:0.5 cat", "not closed"),
    ("a <lora:x <lora:y:1> cat", "not closed"),
])
def test_malformed_tags_say_what_is_wrong_and_the_form(prompt: str, problem: str) -> None:
    with pytest.raises(PromptError) as info:
        extract_loras(prompt)
    assert problem in str(info.value)
    assert "<lora:NAME:WEIGHT>" in str(info.value)


# -- resolve_loras -----------------------------------------------------------------------------


def test_names_match_ignoring_case_and_spaces_and_weights_default() -> None:
    assert resolve_loras([("pixelart", None), ("DETAIL", 1.5)], SETTINGS) == (
        ("Pixel Art", 0.7), ("detail", 1.5))
    assert resolve_loras([("ink", None)], SETTINGS) == (("ink", -0.5),)
    assert resolve_loras([("detail", None)], SETTINGS) == (("detail", 0.8),)  # LoraProfile's
    assert resolve_loras([], SETTINGS) == ()


def test_duplicates_merge_with_the_last_weight_winning() -> None:
    got = resolve_loras([("pixel art", 0.2), ("detail", 1), ("Pixel Art", 0.9)], SETTINGS)
    assert got == (("Pixel Art", 0.9), ("detail", 1.0))


def test_an_unknown_name_lists_the_loras_offered() -> None:
    with pytest.raises(PromptError, match="no LoRA 'pixl'") as info:
        resolve_loras([("pixl", 1.0)], SETTINGS)
    assert "Pixel Art, detail, ink" in str(info.value)
    with pytest.raises(PromptError, match="no LoRAs are configured"):
        resolve_loras([("pixel", 1.0)], ImageSettings())


@pytest.mark.parametrize("weight", [4.5, -4.01])
def test_weights_outside_the_range_are_refused(weight: float) -> None:
    with pytest.raises(PromptError, match="from -4 to 4"):
        resolve_loras([("ink", weight)], SETTINGS)
    assert resolve_loras([("ink", 4.0)], SETTINGS) == (("ink", 4.0),)  # the ends are allowed


def test_more_than_max_loras_is_refused() -> None:
    with pytest.raises(PromptError, match="at most 2") as info:
        resolve_loras([("ink", None), ("detail", None), ("pixel art", None)], SETTINGS)
    assert "3 LoRAs" in str(info.value)
    # The same LoRA twice counts once.
    assert len(resolve_loras([("ink", None), ("detail", None), ("INK", 1)], SETTINGS)) == 2


# -- trigger_words -----------------------------------------------------------------------------


def test_trigger_words_of_the_loras_used_each_once() -> None:
    used = resolve_loras([("pixel art", None), ("detail", None)], SETTINGS)
    assert trigger_words(used, SETTINGS) == ["pixel art", "8-bit", "sharp"]
    assert trigger_words([("ink", 1.0)], SETTINGS) == []
    assert trigger_words([], SETTINGS) == []
