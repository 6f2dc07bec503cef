"""What an AI telephone game is made of, as plain values read from SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bot.story.models import Author, model_label

MIN_ROUNDS, MAX_ROUNDS, DEFAULT_ROUNDS = 2, 8, 4


class Mode(StrEnum):
    AI = "ai"  # the caption model describes each picture
    PLAYERS = "players"  # members describe them, in turn


class GameState(StrEnum):
    PLAYING = "playing"
    ENDED = "ended"  # every round was played
    STOPPED = "stopped"  # ended early (a picture or a description failed); `reason` says why

    @property
    def over(self) -> bool:
        return self is not GameState.PLAYING


@dataclass(frozen=True)
class Game:
    id: int
    guild_id: int | None
    channel_id: int
    started_by: Author
    mode: Mode
    rounds: int
    state: GameState
    nsfw: bool  # NSFW terms are allowed (the channel was marked NSFW when it started)
    upload_limit: int  # bytes one upload may have in its channel
    created_at: float
    reason: str | None = None
    status_message_id: int | None = None
    chain_message_id: int | None = None
    chain_error: str | None = None
    ended_at: float | None = None

    @property
    def chain_owed(self) -> bool:
        """Over, and its chain and export are neither posted nor given up on."""
        return self.state.over and self.chain_message_id is None and self.chain_error is None


@dataclass(frozen=True)
class Round:
    game_id: int
    number: int  # 1 = the prompt
    text: str
    author: Author  # the member who wrote it; for the model's, who started the game
    created_at: float
    model: str | None = None  # the caption model that wrote it; None: the author did
    text_job_id: str | None = None
    image_job_id: str | None = None
    image_path: Path | None = None
    image_nsfw: bool = False
    image_error: str | None = None
    describe_job_id: str | None = None
    message_id: int | None = None

    @property
    def by_model(self) -> bool:
        return self.model is not None

    @property
    def writer(self) -> str:
        """Who wrote the text, as readers see it: "bob", or "blip-large"."""
        return model_label(self.model) if self.model is not None else self.author.name

    @property
    def settled(self) -> bool:
        """Its picture is made, or it is known that there will be none."""
        return self.image_path is not None or self.image_error is not None
