"""Checking a character's name and look: each refusal names the option, says what was wrong
and what is allowed."""

from __future__ import annotations

import pytest

from bot.config import Settings, settings_from_mapping
from bot.story import StoryOptionError
from bot.story.cast_options import MAX_LOOK_CHARS, MAX_NAME_CHARS, clean_look, clean_name


@pytest.fixture
def settings() -> Settings:
    return settings_from_mapping({
        "safety": {"blocked_terms": ["gore"], "nsfw_terms": ["nude"]},
    })


def test_names_and_looks_are_cleaned(settings: Settings) -> None:
    assert clean_name("  Old   Tom ", settings) == "Old Tom"
    assert clean_name("Anne-Marie", settings) == "Anne-Marie"
    assert clean_name("Dr. O'Brien", settings) == "Dr. O'Brien"
    assert clean_look(" red  hair | green cloak ", settings) == "red hair / green cloak"


@pytest.mark.parametrize(("name", "words"), [
    ("   ", ["`name`", "empty"]),
    ("M" * (MAX_NAME_CHARS + 1), ["`name`", str(MAX_NAME_CHARS + 1), str(MAX_NAME_CHARS)]),
    ("<@123>", ["`name`", "letters and digits", "hyphens"]),
    ("Mira, the brave", ["`name`", "letters and digits"]),
    ("-Mira", ["`name`", "letters and digits"]),
    ("Gore Man", ["`name`", "blocked"]),
    ("Nude Bob", ["`name`", "NSFW"]),
])
def test_bad_names_are_refused_saying_why(settings: Settings, name: str,
                                          words: list[str]) -> None:
    with pytest.raises(StoryOptionError) as caught:
        clean_name(name, settings)
    for word in words:
        assert word in str(caught.value)
    assert "gore" not in str(caught.value).lower()  # the term is not echoed


@pytest.mark.parametrize(("look", "words"), [
    ("  ", ["`look`", "empty", "describe"]),
    ("x" * (MAX_LOOK_CHARS + 1), ["`look`", str(MAX_LOOK_CHARS + 1), str(MAX_LOOK_CHARS)]),
    ("covered in gore", ["`look`", "blocked"]),
    ("a nude giant", ["`look`", "NSFW"]),
])
def test_bad_looks_are_refused_saying_why(settings: Settings, look: str,
                                          words: list[str]) -> None:
    with pytest.raises(StoryOptionError) as caught:
        clean_look(look, settings)
    for word in words:
        assert word in str(caught.value)


def test_nsfw_terms_pass_in_nsfw_channels(settings: Settings) -> None:
    assert clean_look("a nude giant", settings, nsfw_allowed=True) == "a nude giant"
    assert clean_name("Nude Bob", settings, nsfw_allowed=True) == "Nude Bob"
