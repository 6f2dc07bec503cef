"""A chat model writes story lines through its chat template (the tiny Llama with ChatML),
its replies cleaned of their chatty wrapping; the prompt style is picked from the tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.pipelines.chat import SYSTEM_PROMPT, clean_chat_reply, resolve_prompt_style
from bot.pipelines.errors import ModelLoadError
from bot.pipelines.text import StoryWriter, TextModelOptions
from bot.pipelines.tiny import TinyModelPaths

SEED_LINE = "Once upon a time, a dragon lived under the old lighthouse."
LINES = ["It dreamed of the sea every night."]


def chat_writer(folder: Path, **options: Any) -> StoryWriter:
    writer = StoryWriter(TextModelOptions(model=str(folder), device="cpu", **options))
    writer.load()
    return writer


def prompts_seen(writer: StoryWriter, **kwargs: Any) -> tuple[str, list[str]]:
    """The line, and the text of every input of more than one token the model read."""
    seen: list[str] = []

    def note(_module: Any, args: Any, _out: Any) -> None:
        if args[0].shape[1] > 1:
            seen.append(writer.tokenizer.decode(args[0][0]))

    hook = writer.model.get_input_embeddings().register_forward_hook(note)
    try:
        return writer.next_line(SEED_LINE, LINES, rng_seed=4, **kwargs), seen
    finally:
        hook.remove()


def test_a_chat_model_is_asked_through_its_chat_template(tiny_chat_dir: Path) -> None:
    writer = chat_writer(tiny_chat_dir)
    assert writer.prompt_style == "chat"
    line, seen = prompts_seen(writer)
    [prompt] = seen
    assert prompt.startswith("<|im_start|>system\n" + SYSTEM_PROMPT + "<|im_end|>")
    assert "<|im_start|>user\n" in prompt and SEED_LINE in prompt and LINES[0] in prompt
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert line and "\n" not in line and "<|im" not in line


def test_the_chat_prompt_is_cached_up_to_the_story(tiny_chat_dir: Path) -> None:
    writer, plain = chat_writer(tiny_chat_dir), chat_writer(tiny_chat_dir, cache_mb=0)
    lines = list(LINES)
    for n in range(3):
        line = writer.next_line(SEED_LINE, lines, rng_seed=n, cache_key="s")
        assert line == plain.next_line(SEED_LINE, lines, rng_seed=n)
        lines.append(line)
    stats = writer.last_stats
    # Everything before the end of the story (the template's closing tokens) came cached.
    assert stats.cached_tokens > stats.prompt_tokens * 0.6


def test_completion_style_on_a_chat_model_and_chat_style_needs_a_template(
    tiny_chat_dir: Path, tiny_models: TinyModelPaths,
) -> None:
    _, seen = prompts_seen(chat_writer(tiny_chat_dir, prompt_style="completion"))
    assert "<|im_start|>" not in seen[0] and seen[0].startswith(SEED_LINE)
    with pytest.raises(ModelLoadError, match="no chat template"):
        chat_writer(tiny_models.story, prompt_style="chat")
    assert chat_writer(tiny_models.story).prompt_style == "completion"  # auto: GPT-Neo


def test_resolve_prompt_style_refuses_unknown_styles() -> None:
    with pytest.raises(ValueError, match="prompt_style"):
        resolve_prompt_style("poem", object())


@pytest.mark.parametrize(
    ("raw", "finished", "expected"),
    [
        ("Here is the next line: The dragon flew west.", True, "The dragon flew west."),
        ("Sure! Here's the next line of the story:\n\nThe sea was calm.", True,
         "The sea was calm."),
        ("Next line: It slept.", True, "It slept."),
        ('"The dragon flew west."', True, "The dragon flew west."),
        ("“The dragon flew west.”", True, "The dragon flew west."),
        ('"Come in," said the robot.', True, '"Come in," said the robot.'),
        ("**The dragon flew west.**", True, "The dragon flew west."),
        ("Here is the", False, ""),  # may still become a preamble: nothing shown yet
        ("The dragon flew", False, "The dragon flew"),
    ],
)
def test_clean_chat_reply(raw: str, finished: bool, expected: str) -> None:
    assert clean_chat_reply(raw, finished=finished) == expected
