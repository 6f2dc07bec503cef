"""Stories written straight into a real SQLite file, with real PNG pictures, for the blog's
tests: what `/story end` leaves behind, without running the models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from bot.story.models import Author, LineSource, Story
from bot.story.repository import StoryRepository

ALICE = Author(101, "alice")
BOB = Author(102, "bob")
GUILD = 9001
MODEL = "EleutherAI/gpt-neo-125M"


@dataclass(frozen=True)
class Line:
    text: str
    author: Author = ALICE
    size: tuple[int, int] | None = (96, 64)  # the picture's; None: a line without one
    by_model: bool = False
    nsfw: bool = False


def write_png(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A picture with some structure (a flat colour would make every WebP alike)."""
    img = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 29) % 256))
    draw = ImageDraw.Draw(img)
    for i in range(0, max(size), 16):
        draw.line((i, 0, 0, i), fill=(255 - i % 256, i % 256, 128), width=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "PNG")
    return path


async def make_story(repo: StoryRepository, pictures: Path, title: str, lines: Sequence[Line],
                     *, guild_id: int | None = GUILD, ended_at: float | None = 1_700_000_000.0,
                     author: Author = ALICE) -> Story:
    """A story with `lines` (each picture a PNG under `pictures`), ended at `ended_at`
    (None: left open)."""
    story = await repo.create(title=title, style="watercolor", author=author,
                              guild_id=guild_id, channel_id=1, thread_id=None)
    for number, line in enumerate(lines, start=1):
        source = (LineSource.SEED if number == 1 else
                  LineSource.MODEL if line.by_model else LineSource.MEMBER)
        await repo.add_line(story.id, number, source=source, text=line.text,
                            author=line.author, model=MODEL if line.by_model else None)
        if line.size is not None:
            png = write_png(pictures / f"{story.id}-{number}.png", line.size,
                            story.id * 10 + number)
            await repo.set_image(story.id, number, png, nsfw=line.nsfw)
    if ended_at is not None:
        await repo.end(story.id)
        await repo.db.execute("UPDATE stories SET ended_at = ? WHERE id = ?",
                              (ended_at, story.id))
    found = await repo.get(story.id)
    assert found is not None
    return found
