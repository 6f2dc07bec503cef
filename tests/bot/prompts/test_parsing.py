"""parse_prompt: "subject | style" splitting, explicit styles, limits, negative merging."""

from __future__ import annotations

import pytest

from bot.prompts.parsing import ParsedPrompt, PromptError, parse_prompt
from bot.prompts.styles import DEFAULT_STYLES, StylePreset, find_style


def _parse(raw: str, **kwargs: object) -> ParsedPrompt:
    return parse_prompt(raw, styles=DEFAULT_STYLES, **kwargs)  # type: ignore[arg-type]


def _preset(name: str) -> StylePreset:
    preset = find_style(DEFAULT_STYLES, name)
    assert preset is not None
    return preset


@pytest.mark.parametrize(
    "raw", ["Oregon 💚|painting", "Oregon 💚 | Painting ", "Oregon ๐Ÿ’š|painting"]
)
def test_inline_preset(raw: str) -> None:
    parsed = _parse(raw)
    painting = _preset("painting")
    assert parsed.subject == "Oregon 💚"
    assert parsed.style == painting
    assert parsed.prompt == f"Oregon 💚, {painting.phrase}"
    assert parsed.negative == painting.negative


def test_inline_free_form_style() -> None:
    parsed = _parse("a cat | in the style of ukiyo-e")
    assert parsed.style == StylePreset("in the style of ukiyo-e", "in the style of ukiyo-e")
    assert parsed.prompt == "a cat, in the style of ukiyo-e"


def test_split_on_last_top_level_bar() -> None:
    parsed = _parse("a | b | watercolor")
    assert parsed.subject == "a | b"
    assert parsed.style == _preset("watercolor")
    # A1111 alternation syntax inside brackets is not a style separator.
    assert _parse("a [cat|dog] hybrid").prompt == "a [cat|dog] hybrid"


def test_no_style() -> None:
    parsed = _parse("  just a cat  ")
    assert parsed == ParsedPrompt("just a cat", None, "just a cat", "")
    assert _parse("a cat |").style is None


def test_explicit_style_overrides_inline() -> None:
    parsed = _parse("a cat | watercolor", style="Cyberpunk")
    assert parsed.subject == "a cat"
    assert parsed.style == _preset("cyberpunk")


def test_explicit_unknown_style_lists_presets() -> None:
    with pytest.raises(PromptError) as info:
        _parse("a cat", style="vaporwave")
    assert str(info.value) == (
        "style 'vaporwave' is not a preset; choose one of: painting, pencil drawing, "
        "watercolor, fantasy, cyberpunk, science fiction painting, psychedelic surrealism"
    )


@pytest.mark.parametrize("raw", ["", "   \n ", "| painting", "\x00"])
def test_empty_prompt(raw: str) -> None:
    with pytest.raises(PromptError, match=r"^prompt is empty"):
        _parse(raw)


def test_length_limits_after_cleaning() -> None:
    assert _parse("a" + " " * 50 + "b", max_chars=3).subject == "a b"
    with pytest.raises(PromptError) as info:
        _parse("x" * 1203)
    assert str(info.value) == "prompt is 1203 characters; the limit is 1000."
    with pytest.raises(PromptError, match=r"^negative prompt is 11 characters; the limit is 10\.$"):
        _parse("cat", negative="x" * 11, max_negative_chars=10)


def test_negative_merge_order_dedupe_and_empties() -> None:
    parsed = _parse(
        "a cat | pencil drawing",
        negative=" blurry,, Photo ,(ugly, bad:1.2) ",
        default_negative="blurry, lowres, ",
    )
    assert parsed.negative == "blurry, Photo, (ugly, bad:1.2), color, lowres"


def test_prompt_error_is_value_error() -> None:
    assert issubclass(PromptError, ValueError)
