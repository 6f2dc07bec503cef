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
    branch: int = 1  # the branch being told (see `Branch`)

    @property
    def open(self) -> bool:
        return self.state is StoryState.OPEN

    @property
    def in_conversation(self) -> bool:
        """Told in a DM or group DM, where the bot can't post: no thread, each message is
        the answer to the interaction that asked for it."""
        return self.thread_id is None and self.channel_id is not None

    @property
    def place(self) -> int | None:
        """Where it is told: its thread, or its conversation's channel."""
        return self.thread_id if self.thread_id is not None else self.channel_id


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
    branch: int = 1  # the branch that holds the row (lines before a fork are shared)
    chosen_by: Author | None = None  # who kept it among the model's candidates (✅)

    @property
    def by_model(self) -> bool:
        return self.source is LineSource.MODEL

    def byline(self) -> str:
        """Who wrote it, as readers should see it: "alice", or "gpt-neo-125M, asked by bob"."""
        if self.by_model:
            chosen = (f", chosen by {self.chosen_by.name}"
                      if self.chosen_by and self.chosen_by.id != self.author.id else "")
            return f"{model_label(self.model)}, asked by {self.author.name}{chosen}"
        return self.author.name


@dataclass(frozen=True)
class Branch:
    """One way the story goes. Branch 1 is the story as it began; ⏪ Rewind to line k
    starts a new one from the current branch (`parent`), sharing its lines up to
    `fork_line`; the lines after it stay where they were, in the parent."""

    story_id: int
    id: int
    parent: int | None
    fork_line: int  # lines 1..fork_line are the parent's (0 for branch 1)
    created_at: float
    lines: int = 0  # how many lines it tells, the shared ones included
    last_text: str = ""  # its latest line


@dataclass(frozen=True)
class Candidate:
    """One line the model offered for a choice (Continue ▶ with story.candidates > 1)."""

    idx: int  # 0.. in the order written; ↻ appends
    text: str
    job_id: str
    model: str | None


@dataclass(frozen=True)
class Choice:
    """The open choice of a story: the candidates for line `number` of `branch`, the one
    its message shows, and who asked for them."""

    story_id: int
    branch: int
    number: int
    shown: int
    asked_by: Author
    message_id: int | None
    created_at: float
    candidates: tuple[Candidate, ...]

    @property
    def current(self) -> Candidate:
        return self.candidates[min(self.shown, len(self.candidates) - 1)]

    @property
    def job_ids(self) -> frozenset[str]:
        return frozenset(c.job_id for c in self.candidates)


def model_label(model: str | None) -> str:
    """A short name for a model id or folder: "EleutherAI/gpt-neo-1.3B" -> "gpt-neo-1.3B"."""
    if not model:
        return "the story model"
    return Path(model.rstrip("/\\")).name or model
