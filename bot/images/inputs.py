"""A member's own picture for img2img (/imagine image:): checked, decoded and fitted.

Everything about the upload is checked before it costs anything: the size Discord reports
before a byte is fetched, the type, the pixel count from the header before the pixels are
decoded (no decompression bombs), then a full decode (a truncated file is refused, not
half-used). EXIF orientation is applied, transparency goes onto white, and the picture is
fitted to the model's size with its aspect kept. Every refusal names the option, what was
wrong and what is allowed.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.config import ImageSettings
from bot.executor.jobs import ImageMode, ImageParams

ACCEPTED_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp")
SHOWN_TYPES = "PNG, JPEG, WebP, GIF or BMP"
MIN_SIDE = 64  # the smallest side a Stable Diffusion picture can have


class InputPictureError(ValueError):
    """The attachment is not a picture we can use; the message is meant for the member."""


@dataclass(frozen=True)
class InputPicture:
    image: Image.Image  # RGB, already at `size`
    original_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def check_upload(filename: str, size: int, content_type: str | None,
                 settings: ImageSettings) -> None:
    """What can be told before downloading: the byte size and the declared type."""
    limit = settings.max_input_mb * 1024 * 1024
    if size > limit:
        raise InputPictureError(
            f"image: {filename} is {size / 1024 / 1024:.1f} MB; at most "
            f"{settings.max_input_mb} MB is allowed (image.max_input_mb).")
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind and kind not in ACCEPTED_TYPES:
        raise InputPictureError(
            f"image: {filename} is {kind}, not a picture; attach a {SHOWN_TYPES} file.")


def read_picture(data: bytes, filename: str, settings: ImageSettings,
                 native: int) -> InputPicture:
    """Decode and fit the picture (see the module). Raises InputPictureError."""
    if len(data) > settings.max_input_mb * 1024 * 1024:
        raise InputPictureError(
            f"image: {filename} is larger than {settings.max_input_mb} MB "
            "(image.max_input_mb).")
    max_pixels = int(settings.max_input_megapixels * 1_000_000)
    try:
        with warnings.catch_warnings():
            # PIL warns (and past twice the limit raises) on huge pictures: we check first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise InputPictureError(
                        f"image: {filename} is {width}×{height} "
                        f"({width * height / 1e6:.1f} megapixels); at most "
                        f"{settings.max_input_megapixels:g} megapixels are allowed "
                        "(image.max_input_megapixels).")
                if img.format not in ("PNG", "JPEG", "WEBP", "GIF", "BMP", "MPO"):
                    raise InputPictureError(
                        f"image: {filename} is a {img.format} file; attach a {SHOWN_TYPES} "
                        "picture.")
                img.load()  # the whole file: a truncated one fails here
                upright = ImageOps.exif_transpose(img)
                picture = _on_white(upright)
    except InputPictureError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise InputPictureError(
            f"image: {filename} is not a picture this bot can read; attach a {SHOWN_TYPES} "
            "file.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputPictureError(
            f"image: {filename} could not be read to the end ({exc}); it may be truncated "
            "or damaged. Save it again and attach it once more.") from None
    target = fit_size(picture.size, settings, native)
    fitted = picture.resize(target, Image.Resampling.LANCZOS) if picture.size != target \
        else picture
    return InputPicture(fitted, (width, height))


def fit_size(size: tuple[int, int], settings: ImageSettings, native: int) -> tuple[int, int]:
    """About the model's area (its 1:1 size squared), the picture's aspect kept, sides
    multiples of 8 within image.max_side, and none under the 64 px a picture needs."""
    base_w = settings.width or native
    base_h = settings.height or native
    width, height = size
    scale = math.sqrt(base_w * base_h / max(1, width * height))
    scale = max(scale, MIN_SIDE / max(1, min(width, height)))  # a long, thin picture
    scale = min(scale, settings.max_side / max(width, height))
    return (max(MIN_SIDE, int(width * scale) // 8 * 8),
            max(MIN_SIDE, int(height * scale) // 8 * 8))


def img2img_params(params: ImageParams, picture: InputPicture, source: Path,
                   strength: float) -> ImageParams:
    """`params` rendered from the picture saved at `source`, at its size."""
    width, height = picture.size
    return replace(params, mode=ImageMode.IMG2IMG, strength=float(strength),
                   source_path=str(source), width=width, height=height)


def save_input(picture: InputPicture, images_dir: Path, job_id: str) -> Path:
    """The picture as the job's source file (removed with the job: `input_path`)."""
    path = input_path(images_dir, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.image.save(path, format="PNG")
    return path


def input_path(images_dir: Path, job_id: str) -> Path:
    return images_dir / "inputs" / f"{job_id}.png"


def _on_white(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")
