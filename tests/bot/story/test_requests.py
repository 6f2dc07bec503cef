"""Validation of story input and the job parameters derived from a story."""

from __future__ import annotations

import pytest

from bot.config import Settings, settings_from_mapping
from bot.story import (
    MAX_LINE_CHARS,
    StoryOptionError,
    clean_line,
    clean_title,
    derive_seed,
    illustration_params,
    resolve_style,
    text_params,
)
from bot.story.cast import CastMember, cast_seed
from bot.story.models import Author
from bot.story.requests import recent_lines, shorten


@pytest.fixture
def settings() -> Settings:
    return settings_from_mapping({
        "image": {"steps": 20, "width": 512, "height": 512},
        "story": {"style": "painting", "steps": 12, "context_tokens": 64},
        "safety": {"blocked_terms": ["gore"], "nsfw_terms": ["nude"]},
    })


def test_clean_line_repairs_and_collapses_whitespace(settings: Settings) -> None:
    assert clean_line("  The   sky\n turned green.  ", settings) == "The sky turned green."


@pytest.mark.parametrize(("text", "words"), [
    ("   ", ["`text`", "empty"]),
    ("x" * (MAX_LINE_CHARS + 1), ["`text`", str(MAX_LINE_CHARS + 1), str(MAX_LINE_CHARS)]),
    ("so much GORE here", ["`text`", "blocked"]),
    ("a nude statue", ["`text`", "NSFW"]),
])
def test_clean_line_refusals_name_the_option(settings: Settings, text: str,
                                             words: list[str]) -> None:
    with pytest.raises(StoryOptionError) as caught:
        clean_line(text, settings)
    for word in words:
        assert word in str(caught.value)
    assert "gore" not in str(caught.value).lower()  # the term is not echoed


def test_nsfw_terms_pass_in_nsfw_channels(settings: Settings) -> None:
    assert clean_line("a nude statue", settings, nsfw_allowed=True) == "a nude statue"


def test_style_defaults_to_the_configured_one_and_must_be_a_preset(settings: Settings) -> None:
    assert resolve_style(None, settings) == "painting"
    assert resolve_style("Pencil-Drawing", settings) == "pencil drawing"
    with pytest.raises(StoryOptionError, match=r"`style` 'crayon'.*watercolor"):
        resolve_style("crayon", settings)


def test_title_defaults_to_the_seeds_first_words(settings: Settings) -> None:
    assert clean_title(None, "The sky.", settings) == "The sky"
    long_seed = "The sky over the old harbour turned the colour of a ripe plum at dusk today"
    title = clean_title("", long_seed, settings)
    assert len(title) <= 60 and long_seed.startswith(title) and not title.endswith(" ")
    assert clean_title("  My  story ", long_seed, settings) == "My story"
    with pytest.raises(StoryOptionError, match="`title`"):
        clean_title("t" * 101, long_seed, settings)


def test_seeds_are_deterministic_and_distinct() -> None:
    assert derive_seed(1, 2, 0, "image") == derive_seed(1, 2, 0, "image")
    seeds = {derive_seed(s, n, v, p) for s in (1, 2) for n in (1, 2) for v in (0, 1)
             for p in ("image", "text")}
    assert len(seeds) == 16
    assert all(0 <= seed < 2**32 for seed in seeds)


def test_text_params_keep_the_seed_and_the_newest_lines(settings: Settings) -> None:
    texts = ["The sky."] + [f"Line {i} " + "x" * 100 + "." for i in range(2, 40)]
    params = text_params(7, texts, 40, 0, settings)
    assert params.seed_line == "The sky."
    assert params.lines[-1] == texts[-1]
    assert len(params.lines) < len(texts) - 1  # 64 tokens × 8 chars: older lines dropped
    assert sum(len(line) + 1 for line in params.lines) <= 64 * 8
    assert params.rng_seed == derive_seed(7, 40, 0, "text")
    assert text_params(7, texts, 40, 1, settings).rng_seed != params.rng_seed


def test_recent_lines() -> None:
    assert recent_lines(["aaaa", "bbbb", "cccc"], 10) == ("bbbb", "cccc")
    assert recent_lines(["a" * 50], 10) == ()


def test_illustration_uses_the_whole_line_the_style_and_a_story_seed(
        settings: Settings) -> None:
    params = illustration_params(3, "watercolor", "The sky | was green.", 2, 0, settings)
    assert params.subject == "The sky / was green."
    assert params.prompt.startswith("The sky / was green., watercolor painting")
    assert params.style == "watercolor"
    assert params.seeds == (derive_seed(3, 2, 0, "image"),)
    assert params.steps == 12  # story.steps wins over image.steps
    assert (params.width, params.height) == (512, 512)
    assert "photo" in params.negative  # the preset's negative
    redrawn = illustration_params(3, "watercolor", "The sky | was green.", 2, 1, settings)
    assert redrawn.seeds != params.seeds


def test_illustration_takes_the_model_size_when_the_config_leaves_it_open() -> None:
    settings = settings_from_mapping({})
    params = illustration_params(1, "painting", "a cat", 1, 0, settings, native=1024)
    assert (params.width, params.height) == (1024, 1024)


def test_illustration_of_a_long_line_fits_the_prompt_limit(settings: Settings) -> None:
    params = illustration_params(1, "painting", "word " * 400, 1, 0, settings)
    assert len(params.prompt) <= settings.image.max_prompt_chars
    unstyled = illustration_params(1, None, "a cat", 1, 0, settings)
    assert unstyled.prompt == "a cat" and unstyled.style is None


def test_shorten() -> None:
    assert shorten("short", 10) == "short"
    cut = shorten("one two three four five six", 14)
    assert len(cut) <= 14 and cut.endswith("…")


def test_illustration_shows_the_cast_it_names_with_the_characters_seed(
        settings: Settings) -> None:
    added = Author(1, "alice")
    cast = [CastMember(3, "Mira", "a tall woman with red hair", added, 0.0, 0.0),
            CastMember(3, "Tom", "an old man with a grey beard", added, 0.0, 0.0)]
    first = illustration_params(3, "watercolor", "Mira walked in.", 2, 0, settings,
                                cast=cast)
    assert first.prompt.startswith("Mira walked in., Mira: a tall woman with red hair, "
                                   "watercolor painting")
    assert "Tom" not in first.prompt
    assert first.subject == "Mira walked in."  # the line alone, as before
    later = illustration_params(3, "watercolor", "Tom saw mira's cloak.", 9, 0, settings,
                                cast=cast)
    assert later.prompt.startswith("Tom saw mira's cloak., Tom: an old man with a grey "
                                   "beard, Mira: a tall woman with red hair")
    # The first-mentioned character's seed: Mira keeps hers across lines, Tom has his own.
    assert first.seeds == (cast_seed(3, "Mira", 0),)
    assert later.seeds == (cast_seed(3, "Tom", 0),)
    again = illustration_params(3, "watercolor", "Then Mira sat.", 5, 0, settings, cast=cast)
    assert again.seeds == first.seeds
    # A line without a character keeps its own seed; a redraw still gets a new one.
    nobody = illustration_params(3, "watercolor", "Rain fell.", 5, 0, settings, cast=cast)
    assert nobody.seeds == (derive_seed(3, 5, 0, "image"),) != first.seeds
    redrawn = illustration_params(3, "watercolor", "Then Mira sat.", 5, 1, settings,
                                  cast=cast)
    assert redrawn.seeds == (cast_seed(3, "Mira", 1),) != again.seeds
