"""Grids of pictures (a job's images as one picture), with optional captions."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

GRID_BACKGROUND = (30, 31, 34)  # Discord's dark theme, so gutters vanish into the chat
LABEL_COLOUR = (235, 235, 235)


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows): 2 -> 2x1, 3-4 -> 2x2, 5-6 -> 3x2, 7-9 -> 3x3, more near-square."""
    if count < 1:
        raise ValueError("a grid needs at least one image")
    if count <= 2:
        return count, 1
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _label_font(tile_width: int) -> _Font:
    # Scales with the tile so captions stay readable after Discord shrinks the preview.
    return ImageFont.load_default(size=max(12, min(48, tile_width // 18)))


def _caption_height(font: _Font) -> int:
    return round(font.size * 1.6) if isinstance(font, ImageFont.FreeTypeFont) else 20


def _fit_label(draw: ImageDraw.ImageDraw, text: str, font: _Font, width: int) -> str:
    if not isinstance(font, ImageFont.FreeTypeFont):
        # Without FreeType Pillow falls back to a bitmap font that only encodes Latin-1.
        text = text.encode("latin-1", "replace").decode("latin-1")
        ellipsis = "..."
    else:
        ellipsis = "…"
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + ellipsis, font=font) > width:
        text = text[:-1]
    return text + ellipsis


def _paste_tile(canvas: Image.Image, image: Image.Image, box: tuple[int, int, int, int]) -> None:
    """Centre `image` in box (left, top, width, height), honouring transparency."""
    left, top, width, height = box
    tile = image.convert("RGBA")
    position = (left + (width - tile.width) // 2, top + (height - tile.height) // 2)
    canvas.paste(tile, position, tile)


def make_grid(
    images: Sequence[Image.Image],
    *,
    labels: Sequence[str] | None = None,
    gutter: int = 8,
) -> Image.Image:
    """Tile images (centred in cells of the largest size) with an optional caption under each.

    A single unlabelled image is returned as is. Glyphs the default font lacks
    (emoji, Thai...) render as boxes rather than failing.
    """
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"got {len(labels)} labels for {len(images)} images")
    columns, rows = grid_shape(len(images))
    if len(images) == 1 and labels is None:
        return images[0]
    tile_w = max(image.width for image in images)
    tile_h = max(image.height for image in images)
    font = _label_font(tile_w) if labels is not None else None
    caption_h = _caption_height(font) if font is not None else 0
    cell_h = tile_h + caption_h
    canvas = Image.new(
        "RGB",
        (columns * tile_w + (columns - 1) * gutter, rows * cell_h + (rows - 1) * gutter),
        GRID_BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)
    for index, image in enumerate(images):
        left = (index % columns) * (tile_w + gutter)
        top = (index // columns) * (cell_h + gutter)
        _paste_tile(canvas, image, (left, top, tile_w, tile_h))
        if labels is not None and font is not None:
            text = _fit_label(draw, labels[index], font, tile_w - 8)
            centre = (left + tile_w // 2, top + tile_h + caption_h // 2)
            draw.text(centre, text, fill=LABEL_COLOUR, font=font, anchor="mm")
    return canvas
