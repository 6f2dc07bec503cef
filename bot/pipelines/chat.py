"""Instruct and chat models (SmolLM2, Qwen2.5, Llama 3.2 …) as story writers.

A base model such as GPT-Neo continues the story's text itself ("completion" style). A chat
model is asked instead: a system message says what to write, the story so far is the user's
message, and its chat template (the tokenizer's own) frames both. Its reply is cleaned of the
chatty parts (a "Here is the next line:" preamble, quotes around the whole line, markdown)
before the usual one-line cleaning.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SYSTEM_PROMPT", "chat_prompt", "clean_chat_reply", "resolve_prompt_style"]

PROMPT_STYLES = ("auto", "completion", "chat")

SYSTEM_PROMPT = (
    "You are co-writing a story with a group of friends. Reply with only the next line of "
    "the story: one or two sentences that continue it in the same voice and tense. No "
    "preamble, no title, no quotation marks around the line, no explanation."
)
_STORY_HEADING = "The story so far:\n\n"

# "Sure! Here is the next line:", "Here's a continuation:", "Next line:" … up to the colon.
_PREAMBLE = re.compile(
    r"^\s*(?:(?:sure|okay|ok|certainly|of course|absolutely)\b[!,.]*\s*)?"
    r"(?:here(?:'s| is| are)\b[^:\n]{0,80}|(?:the )?next line\b[^:\n]{0,40}|continuation)"
    r":\s*",
    re.IGNORECASE,
)
# What a preamble starts with, while the model has not reached its colon yet.
_PREAMBLE_START = re.compile(
    r"^\s*(?:sure|okay|ok|certainly|of course|absolutely|here|next line|continuation)\b",
    re.IGNORECASE,
)
_WRAPPING_QUOTES = (('"', '"'), ("“", "”"), ("'", "'"), ("‘", "’"))
_QUOTE_CHARS = "\"“”'‘’"


def resolve_prompt_style(style: str, tokenizer: Any) -> str:
    """"completion" or "chat": "auto" is chat when the tokenizer has a chat template.
    Raises ValueError for "chat" without one, or an unknown style."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"story.prompt_style must be one of {', '.join(PROMPT_STYLES)}, "
                         f"not {style!r}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if style == "chat" and not has_template:
        raise ValueError("story.prompt_style = 'chat' but this model's tokenizer has no chat "
                         "template; use 'completion' (or 'auto')")
    if style == "auto":
        return "chat" if has_template else "completion"
    return style


def chat_prompt(tokenizer: Any, story: str) -> str:
    """The prompt text for a chat model: the instructions and the story in its template,
    ending where the assistant's reply begins. The story comes last in the user's message,
    so a longer story shares every token before it with the shorter one's prompt (the
    key/value cache keeps working; bot/pipelines/kv_cache.py)."""
    from jinja2.exceptions import TemplateError

    user = _STORY_HEADING + story
    try:
        return str(tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}],
            add_generation_prompt=True, tokenize=False))
    except TemplateError:  # a template without a system role (Gemma's): one user message
        return str(tokenizer.apply_chat_template(
            [{"role": "user", "content": f"{SYSTEM_PROMPT}\n\n{user}"}],
            add_generation_prompt=True, tokenize=False))


def clean_chat_reply(raw: str, *, finished: bool = True) -> str:
    """The reply without its chatty wrapping; "" while a half-written reply may still turn
    out to be a preamble (live writing shows nothing rather than "Here is…")."""
    text = raw.strip()
    match = _PREAMBLE.match(text)
    if match:
        text = text[match.end():]
    elif not finished and _PREAMBLE_START.match(text) and ":" not in text.split("\n", 1)[0]:
        return ""
    text = text.strip().strip("*_").strip()
    text = re.sub(r"^>\s*", "", text)
    for opening, closing in _WRAPPING_QUOTES:
        inner = text[1:-1]
        if (len(text) > 2 and text.startswith(opening) and text.endswith(closing)
                and not any(q in inner for q in _QUOTE_CHARS)):
            text = inner.strip()
            break
    return text
