"""Prompt text handling, in five modules.

- `styles`: style presets (StylePreset, DEFAULT_STYLES) and finding/suggesting them.
- `repair`: mojibake repair (UTF-8 read as cp1252/latin-1 or Windows-874).
- `cleaning`: clean_prompt, repair plus control-character and whitespace cleanup.
- `parsing`: "subject | style" parsing into the final prompt pair (parse_prompt).
- `blocklist`: blocked-term matching (find_blocked_term).

Pure Python (plus ftfy) so that it is cheap to import from cogs and tests.
"""

from __future__ import annotations

from bot.prompts.blocklist import find_blocked_term
from bot.prompts.cleaning import clean_prompt
from bot.prompts.parsing import ParsedPrompt, PromptError, parse_prompt
from bot.prompts.repair import repair_text
from bot.prompts.styles import (
    DEFAULT_STYLES,
    StylePreset,
    find_style,
    style_names,
    suggest_styles,
)

__all__ = [
    "DEFAULT_STYLES",
    "ParsedPrompt",
    "PromptError",
    "StylePreset",
    "clean_prompt",
    "find_blocked_term",
    "find_style",
    "parse_prompt",
    "repair_text",
    "style_names",
    "suggest_styles",
]
