"""What members typed for a character (`/story cast add name look`), validated.

The same rules and messages as a story's lines (`bot.story.requests`): each refusal names
the option, says what was wrong and what is allowed, and never echoes a blocked term.
"""

from __future__ import annotations

import re

from bot.config import Settings
from bot.prompts import clean_prompt
from bot.story.requests import StoryOptionError, _refuse_blocked

MAX_NAME_CHARS = 40
MAX_LOOK_CHARS = 300
MAX_CAST = 25  # a story's characters: one /story cast list message, 25 autocomplete choices

# Letters and digits, with spaces, apostrophes, hyphens and dots between them ("Dr. Mira",
# "O'Brien", "Anne-Marie"): a name must read as words for a line's mention to be found.
_NAME = re.compile(r"[^\W_]+(?:[ '’.\-]+[^\W_]+)*\.?")


def clean_name(name: str, settings: Settings, *, nsfw_allowed: bool = False) -> str:
    """A character's name, cleaned; raises StoryOptionError."""
    cleaned = clean_prompt(name)
    if not cleaned:
        raise StoryOptionError("`name` is empty; give the character's name, e.g. `Mira`.")
    if len(cleaned) > MAX_NAME_CHARS:
        raise StoryOptionError(f"`name` is {len(cleaned)} characters; a name may have at "
                               f"most {MAX_NAME_CHARS}.")
    if not _NAME.fullmatch(cleaned):
        raise StoryOptionError(
            "`name` can only be found in a line if it is made of letters and digits, with "
            "spaces, apostrophes, hyphens or dots between them (e.g. `Mira`, `Old Tom`, "
            "`Anne-Marie`).")
    _refuse_blocked(cleaned, settings, "name", nsfw_allowed)
    return cleaned


def clean_look(look: str, settings: Settings, *, nsfw_allowed: bool = False) -> str:
    """A character's look, cleaned; raises StoryOptionError."""
    cleaned = clean_prompt(look).replace("|", "/")  # a '|' would be read as a style
    if not cleaned:
        raise StoryOptionError("`look` is empty; describe how the character looks, e.g. "
                               "`a tall woman with red hair and a green cloak`.")
    if len(cleaned) > MAX_LOOK_CHARS:
        raise StoryOptionError(f"`look` is {len(cleaned)} characters; a look may have at "
                               f"most {MAX_LOOK_CHARS}.")
    _refuse_blocked(cleaned, settings, "look", nsfw_allowed)
    return cleaned
