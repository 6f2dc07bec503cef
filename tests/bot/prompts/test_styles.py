"""Style presets: the defaults, name lookup that ignores case and spacing, autocomplete."""

from __future__ import annotations

import pytest

from bot.prompts.styles import DEFAULT_STYLES, find_style, style_names, suggest_styles


def test_default_styles() -> None:
    assert style_names(DEFAULT_STYLES) == [
        "painting",
        "pencil drawing",
        "watercolor",
        "fantasy",
        "cyberpunk",
        "science fiction painting",
        "psychedelic surrealism",
    ]
    assert all(s.phrase for s in DEFAULT_STYLES)
    assert find_style(DEFAULT_STYLES, "pencil drawing").negative == "color, photo"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name", ["Watercolor", " WATERCOLOR ", "pencil  drawing", "Pencil-Drawing"]
)
def test_find_style_is_case_and_space_insensitive(name: str) -> None:
    assert find_style(DEFAULT_STYLES, name) is not None


def test_find_style_unknown_or_empty() -> None:
    assert find_style(DEFAULT_STYLES, "vaporwave") is None
    assert find_style(DEFAULT_STYLES, "  ") is None


def test_suggest_styles_prefix_before_substring() -> None:
    assert suggest_styles(DEFAULT_STYLES, "p") == [
        "painting",
        "pencil drawing",
        "psychedelic surrealism",
        "cyberpunk",
        "science fiction painting",
    ]
    assert suggest_styles(DEFAULT_STYLES, "PAINT") == ["painting", "science fiction painting"]
    assert suggest_styles(DEFAULT_STYLES, "") == style_names(DEFAULT_STYLES)
    assert suggest_styles(DEFAULT_STYLES, "", limit=2) == ["painting", "pencil drawing"]
    assert suggest_styles(DEFAULT_STYLES, "zzz") == []
