"""StoryWriter on the tiny GPT-Neo (gibberish text, real logic) and its text helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.pipelines.errors import BlockedTextError, ModelLoadError
from bot.pipelines.text import (
    GenerationStopped,
    StoryWriter,
    TextModelOptions,
    build_context,
    clean_continuation,
)
from bot.pipelines.tiny import TinyModelPaths

SEED_LINE = "Once upon a time, a dragon lived under the old lighthouse."
LINES = ["It dreamed of the sea every night.", "One morning it woke up and stretched its wings"]
ENDINGS = (".", "!", "?", "…", '"', "'", "”", "’", ")", "]", "»")


def test_next_line_is_a_clean_sentence(story_writer: StoryWriter) -> None:
    for seed in range(3):
        line = story_writer.next_line(SEED_LINE, LINES, rng_seed=seed)
        assert line.strip() == line and line
        assert "\n" not in line and "  " not in line
        assert line.endswith(ENDINGS), line


def test_next_line_is_reproducible(story_writer: StoryWriter) -> None:
    first = story_writer.next_line(SEED_LINE, LINES, rng_seed=42)
    assert story_writer.next_line(SEED_LINE, LINES, rng_seed=42) == first
    others = {story_writer.next_line(SEED_LINE, LINES, rng_seed=s) for s in range(43, 47)}
    assert others - {first}  # other seeds give other lines


def test_context_is_clamped_to_the_model(story_writer: StoryWriter) -> None:
    assert story_writer.context_limit == 256  # 1024 asked, tiny model has 256 positions
    many = [f"Line {i}: the robot oiled the gears again." for i in range(300)]
    line = story_writer.next_line(SEED_LINE, many, rng_seed=1)
    assert line


def test_blocked_lines_are_regenerated_then_refused(story_writer: StoryWriter) -> None:
    seen: list[str] = []

    def block_all(text: str) -> str | None:
        seen.append(text)
        return "dragon"

    with pytest.raises(BlockedTextError, match="dragon") as info:
        story_writer.next_line(SEED_LINE, LINES, rng_seed=3, is_blocked=block_all)
    assert info.value.term == "dragon" and info.value.attempts == 3
    assert len(seen) == 3 and len(set(seen)) > 1  # regenerated with other seeds


def test_blocked_once_then_accepted(story_writer: StoryWriter) -> None:
    calls: list[str] = []

    def block_first(text: str) -> str | None:
        calls.append(text)
        return "bad" if len(calls) == 1 else None

    line = story_writer.next_line(SEED_LINE, LINES, rng_seed=3, is_blocked=block_first)
    assert line == calls[1] != calls[0]


def test_max_chars(story_writer: StoryWriter) -> None:
    line = story_writer.next_line(SEED_LINE, LINES, rng_seed=5, max_chars=12)
    assert 0 < len(line) <= 12


def test_tokens_are_reported_and_a_stop_ends_the_line(story_writer: StoryWriter) -> None:
    seen: list[tuple[int, int]] = []
    line = story_writer.next_line(SEED_LINE, LINES, rng_seed=7,
                                  on_token=lambda n, total: seen.append((n, total)))
    assert line == story_writer.next_line(SEED_LINE, LINES, rng_seed=7)  # watching is free
    limit = story_writer.options.max_new_tokens
    assert seen and seen[0][0] == 1 and all(total == limit for _, total in seen)
    assert [n for n, _ in seen] == sorted(n for n, _ in seen)
    asked: list[int] = []

    def stop_after_three() -> bool:
        asked.append(1)
        return len(asked) >= 3

    with pytest.raises(GenerationStopped, match="stopped"):
        story_writer.next_line(SEED_LINE, LINES, rng_seed=7, should_stop=stop_after_three)
    assert len(asked) == 3  # it stopped at the third token, not at the end of the line


def test_missing_story_model_is_a_clear_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        StoryWriter(TextModelOptions(model=str(tmp_path / "nope"))).load()
    name = "greenheart-tests/no-such-story-model"
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE") as info:
        StoryWriter(TextModelOptions(model=name)).load()
    assert name in str(info.value)


def test_context_too_small_for_the_new_tokens_is_a_load_error(
    tiny_models: TinyModelPaths,
) -> None:
    """`python -m bot` and the story CLI print a ModelLoadError as one line, not a trace."""
    options = TextModelOptions(model=str(tiny_models.story), context_tokens=64,
                               max_new_tokens=60)
    with pytest.raises(ModelLoadError, match=r"story\.context_tokens \(64.*at least 16"):
        StoryWriter(options).load()


# -- build_context ------------------------------------------------------------------------------


def test_build_context_keeps_seed_and_recent_lines(story_writer: StoryWriter) -> None:
    tok = story_writer.tokenizer
    lines = [f"Line {i} of the tale, with the river and the mill." for i in range(100)]
    context = build_context(tok, "SEED LINE about a garden.", lines, budget_tokens=120)
    assert context.startswith("SEED LINE about a garden. ")
    assert context.endswith("Line 99 of the tale, with the river and the mill.")
    assert "Line 0 of" not in context  # the oldest middle lines went first
    assert len(tok.encode(context)) <= 120
    kept = [i for i in range(100) if f"Line {i} of" in context]
    assert kept == list(range(kept[0], 100))  # a contiguous recent run


def test_build_context_small_story_and_punctuation(story_writer: StoryWriter) -> None:
    context = build_context(story_writer.tokenizer, "The seed", ["  a   line  ", "", "Done!"], 200)
    assert context == "The seed. a line. Done!"


def test_build_context_seed_alone_too_long(story_writer: StoryWriter) -> None:
    tok = story_writer.tokenizer
    seed = "word " * 500
    context = build_context(tok, seed, ["later line"], budget_tokens=50)
    assert len(tok.encode(context)) <= 50 and "later line" not in context


# -- clean_continuation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "finished", "expected"),
    [
        (" It flew away. Then it came back. And more", False, "It flew away. Then it came back."),
        (
            "A very long first sentence that goes on and on for quite a while. Second one.",
            False,
            "A very long first sentence that goes on and on for quite a while.",
        ),
        (", and the sea was calm. The end", False, "and the sea was calm."),
        (
            "Mr. Smith met Dr. J. Watson at noon. Later",
            False,
            "Mr. Smith met Dr. J. Watson at noon.",
        ),
        ('"Run!" she said, and ran. Far away.', False, '"Run!" she said, and ran. Far away.'),
        ('"Come in," said the robot. "There is tea', False, '"Come in," said the robot.'),
        ('He whispered "hello there and', False, 'He whispered "hello there…"'),
        ("no sentence end but cut mi", False, "no sentence end but cut…"),
        ("no sentence end and finished", True, "no sentence end and finished."),
        ("First line.\n\nChapter 2\nSomething else.", False, "First line."),
        ("Broken \ufffd byte. Next", False, "Broken byte."),
        ("  \n … ,", False, ""),
        ("Wait… what? Yes.", False, "Wait… what? Yes."),
    ],
)
def test_clean_continuation(raw: str, finished: bool, expected: str) -> None:
    assert clean_continuation(raw, finished=finished) == expected


def test_clean_continuation_caps_length() -> None:
    text = "One short sentence here. " + "Word " * 400
    assert clean_continuation(text, max_chars=30) == "One short sentence here."
    capped = clean_continuation("word " * 400, max_chars=30)
    assert len(capped) <= 30 and capped.endswith("…")


# -- candidates ---------------------------------------------------------------------------------


def test_candidates_are_different_lines_from_one_call(story_writer: StoryWriter) -> None:
    calls: list[int] = []
    original = story_writer.model.generate

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(int(kwargs["num_return_sequences"]))  # type: ignore[call-overload]
        return original(*args, **kwargs)

    story_writer.model.generate = counting
    try:
        lines = story_writer.next_lines(SEED_LINE, LINES, rng_seed=8, candidates=3)
    finally:
        del story_writer.model.generate
    assert calls == [3] and len(lines) == 3 == len(set(lines))
    assert all(line.endswith(ENDINGS) for line in lines)
    assert story_writer.next_lines(SEED_LINE, LINES, rng_seed=8, candidates=3) == lines


def test_a_blocked_candidate_is_written_again_or_dropped(story_writer: StoryWriter) -> None:
    first = story_writer.next_lines(SEED_LINE, LINES, rng_seed=8, candidates=3)
    again = story_writer.next_lines(SEED_LINE, LINES, rng_seed=8, candidates=3,
                                    is_blocked=lambda text: "x" if text == first[1] else None)
    assert len(again) == 3 and first[1] not in again and again[0] == first[0]
    seen: list[str] = []

    def only_the_first(text: str) -> str | None:
        seen.append(text)
        return None if text == first[0] else "dragon"

    assert story_writer.next_lines(SEED_LINE, LINES, rng_seed=8, candidates=3,
                                   is_blocked=only_the_first) == (first[0],)
    with pytest.raises(BlockedTextError, match="dragon") as info:
        story_writer.next_lines(SEED_LINE, LINES, rng_seed=8, candidates=3,
                                is_blocked=lambda text: "dragon")
    assert info.value.attempts == 3
