"""What a story is made of, as plain values read from SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class StoryState(StrEnum):
    OPEN = "open"
    ENDED = "ended"


class LineSource(StrEnum):
    SEED = "seed"  # line 1, written by whoever started the story
    MODEL = "model"  # written by the story model, at someone's request
    MEMBER = "member"  # written by a member (/story add or a plain message)


@dataclass(frozen=True)
class Author:
    """Someone who wrote a line or asked for one (Discord user, or the CLI's user)."""

    id: int
    name: str


@dataclass(frozen=True)
class Story:
    id: int
    title: str
    style: str | None
    author: Author
    state: StoryState
    created_at: float
    ended_at: float | None = None
    guild_id: int | None = None
    channel_id: int | None = None
    thread_id: int | None = None

    @property
    def open(self) -> bool:
        return self.state is StoryState.OPEN


@dataclass(frozen=True)
class StoryLine:
    story_id: int
    number: int  # 1 = the seed
    source: LineSource
    text: str
    author: Author  # the writer; for model lines, who asked for it
    created_at: float
    updated_at: float
    model: str | None = None
    text_job_id: str | None = None
    image_job_id: str | None = None
    image_path: Path | None = None
    image_seed: int | None = None
    image_error: str | None = None
    image_nsfw: bool = False  # flagged by the model's safety checker
    revision: int = 0
    redraws: int = 0
    message_id: int | None = None

    @property
    def by_model(self) -> bool:
        return self.source is LineSource.MODEL

    def byline(self) -> str:
        """Who wrote it, as readers should see it: "alice", or "gpt-neo-125M, asked by bob"."""
        if self.by_model:
            return f"{model_label(self.model)}, asked by {self.author.name}"
        return self.author.name


def model_label(model: str | None) -> str:
    """A short name for a model id or folder: "EleutherAI/gpt-neo-1.3B" -> "gpt-neo-1.3B"."""
    if not model:
        return "the story model"
    return Path(model.rstrip("/\\")).name or model
