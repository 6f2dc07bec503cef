"""A telephone game as the same HTML page and Markdown as a story's export
(`bot/story/export.py`): each round is a line, with its picture and who wrote it."""

from __future__ import annotations

from collections.abc import Sequence

from bot.story.export import ExportFile, export_for_upload
from bot.story.models import LineSource, Story, StoryLine, StoryState
from bot.story.requests import shorten
from bot.telephone.models import Game, Round

TITLE_CHARS = 60


def title_of(rounds: Sequence[Round]) -> str:
    prompt = rounds[0].text if rounds else "a lost prompt"
    return f"Telephone: {shorten(prompt, TITLE_CHARS)}"


def as_story(game: Game, rounds: Sequence[Round]) -> tuple[Story, list[StoryLine]]:
    """The game in the story export's terms: the prompt is the seed, the caption model's
    descriptions are model lines (asked by the starter), the members' are members' lines."""
    story = Story(id=game.id, title=title_of(rounds), style=None, author=game.started_by,
                  state=StoryState.ENDED, created_at=game.created_at, ended_at=game.ended_at,
                  guild_id=game.guild_id, channel_id=game.channel_id)
    lines = [StoryLine(
        story_id=game.id, number=r.number,
        source=(LineSource.SEED if r.number == 1 else
                LineSource.MODEL if r.by_model else LineSource.MEMBER),
        text=r.text, author=r.author, created_at=r.created_at, updated_at=r.created_at,
        model=r.model, text_job_id=r.text_job_id, image_job_id=r.image_job_id,
        image_path=r.image_path, image_error=r.image_error, image_nsfw=r.image_nsfw,
        message_id=r.message_id) for r in rounds]
    return story, lines


def export_files(game: Game, rounds: Sequence[Round], limit: int) -> tuple[list[ExportFile], bool]:
    """The HTML, the Markdown (and its zip when there is room) within `limit` bytes; also
    says whether the pictures had to be made smaller. Reads the pictures: off the loop."""
    story, lines = as_story(game, rounds)
    return export_for_upload(story, lines, limit)
