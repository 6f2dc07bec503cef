"""Story threads: the model and members write lines, every line gets a picture."""

from bot.story.models import Author, LineSource, Story, StoryLine, StoryState, model_label
from bot.story.pending import PendingOp, PendingWork
from bot.story.repository import StoryRepository
from bot.story.requests import (
    MAX_LINE_CHARS,
    MAX_TITLE_CHARS,
    StoryOptionError,
    clean_line,
    clean_title,
    derive_seed,
    illustration_params,
    resolve_style,
    text_params,
)
from bot.story.teller import (
    Resumed,
    StoryBusy,
    StoryError,
    StoryTeller,
    is_story_job,
    story_origin,
)
from bot.story.turns import Turn, Turns

__all__ = [
    "MAX_LINE_CHARS",
    "MAX_TITLE_CHARS",
    "Author",
    "LineSource",
    "PendingOp",
    "PendingWork",
    "Resumed",
    "Story",
    "StoryBusy",
    "StoryError",
    "StoryLine",
    "StoryOptionError",
    "StoryRepository",
    "StoryState",
    "StoryTeller",
    "Turn",
    "Turns",
    "clean_line",
    "clean_title",
    "derive_seed",
    "illustration_params",
    "is_story_job",
    "model_label",
    "resolve_style",
    "story_origin",
    "text_params",
]
