"""A story line's picture as the blog's WebP files, converted once.

A file's name comes from the stored picture's path (a redraw is a new job, so a new path),
so a picture published before is found by name and never converted again, even after the
bot's retention sweep removed the PNG it came from (`storage.keep_days`): the blog keeps it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from bot.story.atomic import write_atomic

QUALITY = 85
THUMB_QUALITY = 80
MAX_SIDE = 1600  # larger pictures (upscales) are shrunk: a page is read, not printed
THUMB_SIDE = 480  # the index's thumbnails: two columns on a wide screen, one on a phone


@dataclass(frozen=True)
class WebPicture:
    path: str  # relative to the site's root, with "/" separators: "images/3/001-ab12.webp"
    width: int
    height: int


def picture_stem(source: Path, number: int) -> str:
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:12]
    return f"{number:03d}-{digest}"


def publish_picture(root: Path, folder: str, source: Path, number: int, *,
                    thumb: bool = False) -> tuple[WebPicture, WebPicture | None] | None:
    """The WebP of `source` under root/folder (and its thumbnail, with `thumb`), converted
    unless already there; None when there is neither a picture published before nor a
    readable source."""
    stem = picture_stem(source, number)
    full = _ensure(root, f"{folder}/{stem}.webp", source, MAX_SIDE, QUALITY)
    if full is None:
        return None
    small = _ensure(root, f"{folder}/{stem}-thumb.webp", source, THUMB_SIDE,
                    THUMB_QUALITY) if thumb else None
    return full, small


def _ensure(root: Path, rel: str, source: Path, side: int, quality: int) -> WebPicture | None:
    target = root / rel
    size = _size(target)
    if size is None:
        size = _convert(source, target, side, quality)
        if size is None:
            return None
    return WebPicture(rel, *size)


def _size(path: Path) -> tuple[int, int] | None:
    """The size of a WebP written before (reads only its header); None when it is missing
    or damaged (then it is written again)."""
    try:
        with Image.open(path) as img:
            return img.size if img.format == "WEBP" else None
    except (OSError, UnidentifiedImageError):
        return None


def _convert(source: Path, target: Path, side: int, quality: int) -> tuple[int, int] | None:
    try:
        with Image.open(source) as img:
            img.load()
            picture = img.convert("RGBA" if _has_alpha(img) else "RGB")
    except (OSError, UnidentifiedImageError):
        return None  # gone (retention) or not a picture: the line is published without it
    if max(picture.size) > side:
        picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "WEBP", quality=quality, method=4)
    write_atomic(target, out.getvalue())
    return picture.size


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
