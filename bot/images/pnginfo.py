"""Image output helpers (Pillow only): A1111-style PNG metadata, grids, size fitting."""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from PIL import Image, ImageDraw, ImageFont, PngImagePlugin, UnidentifiedImageError

__all__ = [
    "GenerationParameters",
    "encode_png",
    "fit_under",
    "format_parameters",
    "grid_shape",
    "make_grid",
    "parse_parameters",
    "read_png_parameters",
]

PARAMETERS_KEY = "parameters"  # the PNG text keyword AUTOMATIC1111 writes and reads


# --------------------------------------------------------------------------- infotext


@dataclass(frozen=True)
class GenerationParameters:
    prompt: str
    negative: str
    steps: int
    sampler: str  # A1111 sampler name, e.g. "Euler a"
    cfg_scale: float
    seed: int
    width: int
    height: int
    model: str
    # Further "Key: value" pairs in order, e.g. {"Denoising strength": "0.55"}.
    extra: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Read-only copy so the frozen dataclass really is immutable.
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))


# A1111's own regexes (modules/infotext_utils.py), so what it parses, we parse.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_SIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_KEY = re.compile(r"\w[\w \-/]+")
_CORE_KEYS = frozenset({"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model"})
_NEGATIVE_PREFIX = "Negative prompt:"


def _quote(value: str) -> str:
    """A1111's `quote`: JSON-quote values that would break the comma-separated line.

    Also quotes a value that starts with '"', which A1111 leaves bare and then mangles.
    """
    if any(c in value for c in ",:\n") or value.startswith('"'):
        return json.dumps(value, ensure_ascii=False)
    return value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            loaded = json.loads(value)
        except ValueError:
            return value
        return loaded if isinstance(loaded, str) else value
    return value


def _format_number(value: float) -> str:
    """7.0 -> "7", 7.5 -> "7.5" (what A1111 infotexts show for sliders)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_parameters(p: GenerationParameters) -> str:
    """AUTOMATIC1111's infotext: prompt, "Negative prompt: …" (if any), then the settings."""
    fields: dict[str, str] = {
        "Steps": str(p.steps),
        "Sampler": p.sampler,
        "CFG scale": _format_number(p.cfg_scale),
        "Seed": str(p.seed),
        "Size": f"{p.width}x{p.height}",
    }
    if p.model:
        fields["Model"] = p.model
    for key, value in p.extra.items():
        if key in _CORE_KEYS or not _RE_KEY.fullmatch(key):
            raise ValueError(f"extra key {key!r} can't be written to infotext")
        fields[key] = str(value)
    settings = ", ".join(f"{k}: {_quote(v)}" for k, v in fields.items())
    negative = f"\n{_NEGATIVE_PREFIX} {p.negative}" if p.negative else ""
    return f"{p.prompt}{negative}\n{settings}".strip()


def _split_prompts(lines: Sequence[str]) -> tuple[str, str]:
    """A1111's rule: lines are stripped; everything from "Negative prompt:" on is negative."""
    prompt: list[str] = []
    negative: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not negative and line.startswith(_NEGATIVE_PREFIX):
            negative.append(line[len(_NEGATIVE_PREFIX) :].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    return "\n".join(prompt), "\n".join(negative)


def _required(fields: Mapping[str, str], key: str) -> str:
    if key not in fields:
        raise ValueError(f"infotext has no {key!r} field")
    return fields[key]


def parse_parameters(text: str) -> GenerationParameters:
    """Parse A1111 infotext. Raises ValueError when it isn't one (no settings line,
    or Steps/Sampler/CFG scale/Seed/Size missing or malformed)."""
    *lines, last = text.replace("\r\n", "\n").strip().split("\n")
    pairs = _RE_PARAM.findall(last)
    if len(pairs) < 3:  # same test A1111 uses to tell the settings line from the prompt
        raise ValueError("infotext has no settings line")
    prompt, negative = _split_prompts(lines)
    fields = {key: _unquote(value) for key, value in pairs}
    size = _RE_SIZE.match(_required(fields, "Size"))
    if size is None:
        raise ValueError(f"infotext Size {fields['Size']!r} is not WIDTHxHEIGHT")
    return GenerationParameters(
        prompt=prompt,
        negative=negative,
        steps=int(_required(fields, "Steps")),
        sampler=_required(fields, "Sampler"),
        cfg_scale=float(_required(fields, "CFG scale")),
        seed=int(_required(fields, "Seed")),
        width=int(size.group(1)),
        height=int(size.group(2)),
        model=fields.get("Model", ""),
        extra={k: v for k, v in fields.items() if k not in _CORE_KEYS},
    )


# --------------------------------------------------------------------------- PNG I/O


def _png_ready(image: Image.Image) -> Image.Image:
    if image.mode in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        return image
    return image.convert("RGBA" if "A" in image.getbands() else "RGB")


def _encode(image: Image.Image, text: str | None, *, optimize: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    if text is not None:
        # Like A1111: tEXt when Latin-1 suffices, else (emoji, CJK...) UTF-8 iTXt.
        info.add_text(PARAMETERS_KEY, text)
    buffer = io.BytesIO()
    _png_ready(image).save(buffer, format="PNG", pnginfo=info, optimize=optimize)
    return buffer.getvalue()


def encode_png(image: Image.Image, params: GenerationParameters | None) -> bytes:
    """PNG bytes with a `parameters` text chunk that A1111, Civitai etc. can read."""
    return _encode(image, format_parameters(params) if params is not None else None)


def _parameters_text(image: Image.Image) -> str | None:
    value = image.info.get(PARAMETERS_KEY)
    if value is None and isinstance(image, PngImagePlugin.PngImageFile):
        value = image.text.get(PARAMETERS_KEY)  # chunks after IDAT; loads the image
    return str(value) if value is not None else None


def read_png_parameters(data: bytes) -> GenerationParameters | None:
    """Parameters from PNG bytes; None if absent, unparseable, or not an image at all."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            text = _parameters_text(image)
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if text is None:
        return None
    try:
        return parse_parameters(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- grids

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


# --------------------------------------------------------------------------- size limits

DISCORD_UPLOAD_LIMIT = 10 * 1024 * 1024
_MIN_SIDE = 64


_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def _load(data_or_image: bytes | Image.Image) -> tuple[Image.Image, str | None, str | None]:
    """(image, embedded parameters text, extension if it is bytes we could pass through)."""
    if isinstance(data_or_image, Image.Image):
        return data_or_image, _parameters_text(data_or_image), None
    image = Image.open(io.BytesIO(data_or_image))
    image.load()
    return image, _parameters_text(image), _EXTENSIONS.get(image.format or "")


def _jpeg_under(image: Image.Image, limit: int) -> bytes:
    """Last resort for absurdly small limits: shrink a JPEG until it fits."""
    rgb = image.convert("RGB")
    for quality in (90, 80, 70, 60, 50, 40):
        buffer = io.BytesIO()
        rgb.save(buffer, format="JPEG", quality=quality, optimize=True)
        if buffer.tell() <= limit:
            return buffer.getvalue()
        rgb = rgb.resize((max(1, rgb.width * 3 // 4), max(1, rgb.height * 3 // 4)))
    raise ValueError(f"can't fit the image under {limit} bytes")


def fit_under(
    data_or_image: bytes | Image.Image,
    limit_bytes: int = DISCORD_UPLOAD_LIMIT,
    params: GenerationParameters | None = None,
) -> tuple[bytes, str]:
    """Encode to at most `limit_bytes`; returns (data, extension).

    Prefers PNG (lossless, and it keeps the `parameters` chunk for "copy settings"):
    as is, then optimized, then downscaled (Lanczos, aspect kept) in steps sized from
    the overshoot. Only if even a 64-pixel-side PNG won't fit does it fall back to
    JPEG ("jpg"), which loses the metadata. `params` replaces any parameters already
    embedded in the input; otherwise those are carried over. PNG/JPEG/WebP bytes that
    already fit (and no `params`) come back untouched, with their own extension.
    """
    image, text, passthrough = _load(data_or_image)
    if params is not None:
        text = format_parameters(params)
    elif isinstance(data_or_image, bytes) and passthrough and len(data_or_image) <= limit_bytes:
        return data_or_image, passthrough  # already fits: don't re-encode

    data = _encode(image, text)
    if len(data) > limit_bytes and len(data) <= limit_bytes * 1.15:
        data = _encode(image, text, optimize=True)  # zlib 9 gains a few % at most
    current = image
    while len(data) > limit_bytes:
        if min(current.size) <= _MIN_SIDE:
            return _jpeg_under(image, limit_bytes), "jpg"
        # PNG size scales ~ with pixel count; aim 10% low so one step usually suffices.
        scale = min(0.9, math.sqrt(limit_bytes / len(data)) * 0.95)
        width = max(_MIN_SIDE, int(current.width * scale))
        height = max(_MIN_SIDE, int(current.height * scale))
        current = image.resize((width, height), Image.Resampling.LANCZOS)
        data = _encode(current, text)
    return data, "png"
