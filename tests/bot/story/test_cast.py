"""Mentions, the picture prompt's CLIP fit (on the tiny model's real CLIP tokenizer) and
character seeds."""

from __future__ import annotations

import pytest

from bot.pipelines.tiny import TinyModelPaths
from bot.story.cast import (
    CHUNK_TOKENS,
    CastMember,
    TokenCounter,
    cast_seed,
    estimate_tokens,
    mentioned,
    picture_prompt,
)
from bot.story.clip_tokens import load_clip_counter
from bot.story.models import Author

ALICE = Author(1, "alice")


def member(name: str, look: str = "a look") -> CastMember:
    return CastMember(story_id=1, name=name, look=look, added_by=ALICE, added_at=0.0,
                      updated_at=0.0)


@pytest.fixture(scope="module")
def clip(tiny_models: TinyModelPaths) -> TokenCounter:
    counter = load_clip_counter(str(tiny_models.image))
    assert counter is not None
    return counter


MIRA, TOM, TOM_BAKER = member("Mira"), member("Tom"), member("Tom Baker")


@pytest.mark.parametrize(("text", "names"), [
    ("Mira walked in.", ["Mira"]),
    ("mira's cloak was green", ["Mira"]),  # any case, a possessive
    ("Then MIRA’s sister came", ["Mira"]),  # a typographic apostrophe
    ("Tom and Mira talked; Mira laughed", ["Tom", "Mira"]),  # first mention first, once
    ("Miranda and Tomas were elsewhere", []),  # inside longer words: not a mention
    ("Tom  Baker arrived, then Tom left", ["Tom Baker", "Tom"]),  # the longer name wins
    ("Baker arrived alone", []),
])
def test_a_line_mentions_the_names_it_holds_as_whole_words(text: str,
                                                          names: list[str]) -> None:
    assert [m.name for m in mentioned(text, [MIRA, TOM, TOM_BAKER])] == names


def test_names_with_marks_are_found() -> None:
    cast = [member("Dr. Ada"), member("Anne-Marie"), member("O'Brien")]
    found = mentioned("O'Brien met Dr. Ada and Anne-Marie.", cast)
    assert [m.name for m in found] == ["O'Brien", "Dr. Ada", "Anne-Marie"]
    assert mentioned("anything", []) == []


def test_the_prompt_is_the_line_then_the_looks_then_the_style(clip: TokenCounter) -> None:
    cast = [member("Mira", "red hair"), member("Tom", "a grey beard")]
    prompt = picture_prompt("Tom met Mira", cast, "ink", clip)
    assert prompt == "Tom met Mira, Mira: red hair, Tom: a grey beard, ink"
    assert picture_prompt("A cat", [], "", clip) == "A cat"


def test_the_cut_keeps_the_line_whole_and_cuts_the_look_and_style_from_the_end(
        clip: TokenCounter) -> None:
    line = "Mira walked into the hall"  # the tiny tokenizer: one token per letter or mark
    look = "a tall woman with long red hair, a green cloak and silver boots"
    style = "watercolor painting, soft washes, paper texture, delicate color bleeds"
    assert clip(f"{line}, Mira: {look}, {style}") > CHUNK_TOKENS
    prompt = picture_prompt(line, [member("Mira", look)], style, clip)
    assert prompt.startswith(f"{line}, Mira: a tall woman")
    assert clip(prompt) <= CHUNK_TOKENS
    assert look not in prompt and "watercolor" not in prompt  # the style goes first
    # Cut at a word, with the most words that fit: one more would not.
    kept = prompt.removeprefix(f"{line}, Mira: ")
    assert look.startswith(kept)
    next_word = look.removeprefix(kept).split()[0]
    assert clip(f"{prompt} {next_word}") > CHUNK_TOKENS

    # A short look leaves room: the style is cut at a word instead.
    prompt = picture_prompt(line, [member("Mira", "red hair")], style, clip)
    assert prompt.startswith(f"{line}, Mira: red hair, watercolor")
    assert style not in prompt and clip(prompt) <= CHUNK_TOKENS


def test_a_line_longer_than_a_chunk_is_kept_and_fills_its_last_chunk(
        clip: TokenCounter) -> None:
    line = "Mira " + "ran and " * 15  # 94 tokens (a letter each): two chunks
    used = clip(line.strip())
    assert CHUNK_TOKENS < used < 2 * CHUNK_TOKENS
    prompt = picture_prompt(line.strip(), [member("Mira", "red hair")], "ink wash", clip)
    assert prompt == f"{line.strip()}, Mira: red hair, ink wash"  # room in chunk 2
    long_look = "a tall woman " * 10
    prompt = picture_prompt(line.strip(), [member("Mira", long_look)], "ink", clip)
    assert prompt.startswith(line.strip()) and clip(prompt) <= 2 * CHUNK_TOKENS
    assert "ink" not in prompt.removeprefix(line.strip())  # no third chunk for decoration


def test_no_room_for_a_look_leaves_the_line_alone(clip: TokenCounter) -> None:
    line = "x" * (CHUNK_TOKENS - 2)
    assert picture_prompt(line, [member("Mira", "red hair")], "ink", clip) == line


def test_the_prompt_stays_within_the_character_limit() -> None:
    prompt = picture_prompt("a cat", [member("Mira", "red hair " * 20)], "ink",
                            max_chars=30)
    assert len(prompt) <= 30 and prompt.startswith("a cat, Mira: red hair")


def test_the_estimate_counts_words_by_length_and_every_mark() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a cat, sitting") == 4
    assert estimate_tokens("extraordinarily") == 3
    # The default counter: the fit holds a word or more per token, as CLIP's does.
    prompt = picture_prompt("Mira walked in", [member("Mira", "red hair " * 40)], "ink")
    assert estimate_tokens(prompt) <= CHUNK_TOKENS < estimate_tokens(f"{prompt} red hair")


def test_a_characters_seed_depends_on_the_story_the_name_and_the_redraw() -> None:
    seed = cast_seed(7, "Mira", 0)
    assert seed == cast_seed(7, "mira", 0) == cast_seed(7, " MIRA ", 0)
    assert seed != cast_seed(8, "Mira", 0)
    assert seed != cast_seed(7, "Tom", 0)
    assert seed != cast_seed(7, "Mira", 1)
    assert 0 <= seed < 2**32
