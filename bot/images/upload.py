"""Fitting a picture under an upload limit (Discord's 10 MiB, or a guild's own), keeping
its parameters where the format allows."""

from __future__ import annotations

import io
import math

from PIL import Image

from bot.images.pnginfo import (
    GenerationParameters,
    encode_png_text,
    format_parameters,
    parameters_text,
)

DISCORD_UPLOAD_LIMIT = 10 * 1024 * 1024
_MIN_SIDE = 64


_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def _load(data_or_image: bytes | Image.Image) -> tuple[Image.Image, str | None, str | None]:
    """(image, embedded parameters text, extension if it is bytes we could pass through)."""
    if isinstance(data_or_image, Image.Image):
        return data_or_image, parameters_text(data_or_image), None
    image = Image.open(io.BytesIO(data_or_image))
    image.load()
    return image, parameters_text(image), _EXTENSIONS.get(image.format or "")


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

    data = encode_png_text(image, text)
    if len(data) > limit_bytes and len(data) <= limit_bytes * 1.15:
        data = encode_png_text(image, text, optimize=True)  # zlib 9 gains a few % at most
    current = image
    while len(data) > limit_bytes:
        if min(current.size) <= _MIN_SIDE:
            return _jpeg_under(image, limit_bytes), "jpg"
        # PNG size scales ~ with pixel count; aim 10% low so one step usually suffices.
        scale = min(0.9, math.sqrt(limit_bytes / len(data)) * 0.95)
        width = max(_MIN_SIDE, int(current.width * scale))
        height = max(_MIN_SIDE, int(current.height * scale))
        current = image.resize((width, height), Image.Resampling.LANCZOS)
        data = encode_png_text(current, text)
    return data, "png"
