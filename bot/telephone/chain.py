"""The whole chain side by side: one picture with every round's picture in a row (a grid
past `PER_ROW`), each with its round, its writer and its text under it (Pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bot.images.upload import fit_under
from bot.telephone.models import Round

TILE = 320  # each picture is fitted into a square of this side
PER_ROW = 4
PAD = 16
FONT_SIZE = 16
TEXT_LINES = 6  # at most, under each picture ("…" when cut)
PAPER, INK, MUTED, EMPTY = (251, 250, 246), (29, 43, 34), (91, 107, 96), (225, 228, 222)


def chain_png(rounds: Sequence[Round], limit: int) -> bytes:
    """The chain as a PNG (or JPEG, at worst) of at most `limit` bytes. Reads the pictures
    from disk (call it off the loop); a round whose picture is gone gets an empty square."""
    data, _ = fit_under(chain_picture(rounds), limit)
    return data


def chain_picture(rounds: Sequence[Round]) -> Image.Image:
    font = ImageFont.load_default(FONT_SIZE)
    line_h = FONT_SIZE + 5
    caption_h = line_h * (TEXT_LINES + 1) + PAD
    columns = max(1, min(PER_ROW, len(rounds)))
    rows = max(1, -(-len(rounds) // PER_ROW))
    sheet = Image.new("RGB", (PAD + columns * (TILE + PAD),
                              PAD + rows * (TILE + caption_h + PAD)), PAPER)
    draw = ImageDraw.Draw(sheet)
    for index, round_ in enumerate(rounds):
        x = PAD + (index % PER_ROW) * (TILE + PAD)
        y = PAD + (index // PER_ROW) * (TILE + caption_h + PAD)
        _paste_picture(sheet, draw, round_.image_path, x, y)
        top = y + TILE + PAD // 2
        draw.text((x, top), f"{round_.number}. {round_.writer}", font=font, fill=MUTED)
        for n, line in enumerate(wrap(round_.text, font, TILE, TEXT_LINES), start=1):
            draw.text((x, top + n * line_h), line, font=font, fill=INK)
    return sheet


def wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int,
         max_lines: int) -> list[str]:
    """`text` in lines no wider than `width` pixels; at most `max_lines`, the last one
    ending in "…" when the text goes on."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and font.getlength(candidate) > width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(last + "…") > width:
            last = last[:-1]
        lines = [*lines[:max_lines - 1], last.rstrip() + "…"]
    return lines


def _paste_picture(sheet: Image.Image, draw: ImageDraw.ImageDraw, path: Path | None,
                   x: int, y: int) -> None:
    picture = _read(path)
    if picture is None:
        draw.rectangle((x, y, x + TILE - 1, y + TILE - 1), fill=EMPTY)
        return
    picture.thumbnail((TILE, TILE))
    # Centred in its square; a small picture is scaled up to fill it.
    if max(picture.size) < TILE:
        scale = TILE / max(picture.size)
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                 Image.Resampling.LANCZOS)
    sheet.paste(picture, (x + (TILE - picture.width) // 2, y + (TILE - picture.height) // 2))


def _read(path: Path | None) -> Image.Image | None:
    if path is None:
        return None
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except OSError:
        return None  # deleted meanwhile

