"""Zoom out and pan, without a model: where a picture goes on its larger canvas, the mask of
what is to be painted, and the blend that puts the original back over the painted result.

A zoom out centres the picture on a canvas about `factor` times its size; a pan extends the
canvas on one side by half the picture's side there. Canvas sizes are multiples of 8 (what
the models need) and so is the border added, so a bot picture (always a multiple of 8) keeps
its own pixels, none resampled. When the canvas would exceed `image.max_side`, canvas and
picture are scaled down together until the canvas fits: the view still widens as asked, at
a lower resolution (each axis scaled to its multiple of 8, so the shape may change by less
than 8 pixels). A canvas whose short side would be under MIN_SIDE (a long strip after many
pans the same way, or a very small max_side) is refused with a message saying why.

The seam: the painted region reaches into the picture on each side that faces new border, by
the blur width and then to the 8-pixel grid the latents see, and the original is blended back
over the result with a linear ramp over `blur` pixels from that edge. Every pixel further in
than `blur` is the original's, exactly; on the ramp the original fades into what was painted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter

if TYPE_CHECKING:
    from bot.executor.jobs import ImageParams

GRID = 8  # canvas sizes, borders and the painted region's edges are multiples of this
MIN_SIDE = 64  # the smallest canvas side (image.width / height have the same floor)
ZOOM_FACTORS = (1.5, 2.0)  # what the 🔍 buttons offer
MIN_ZOOM, MAX_ZOOM = 1.1, 4.0  # what `python -m bot render --zoom-out` accepts
PAN_DIRECTIONS = ("left", "right", "up", "down")
MIN_BLUR, MAX_BLUR = 8, 64  # the seam's width: 1/16 of the picture's short side, in these


class OutpaintError(ValueError):
    """The picture can't be widened so: the message is for the member who asked."""


@dataclass(frozen=True)
class Outpaint:
    """What to do: zoom out by `zoom` (> 1, picture centred), or pan towards `pan`."""

    zoom: float = 0.0
    pan: str = ""

    def __post_init__(self) -> None:
        if self.pan:
            if self.pan not in PAN_DIRECTIONS or self.zoom:
                raise OutpaintError(f"pan {self.pan!r} is not offered; choose one of: "
                                    f"{', '.join(PAN_DIRECTIONS)}.")
        elif not MIN_ZOOM <= self.zoom <= MAX_ZOOM:
            raise OutpaintError(f"zoom out = {self.zoom:g} is out of range; choose "
                                f"{MIN_ZOOM:g}-{MAX_ZOOM:g}.")

    @classmethod
    def of(cls, params: ImageParams) -> Outpaint:
        """The operation an outpaint job's parameters name."""
        return cls(zoom=params.zoom_out, pan=params.pan)

    @property
    def name(self) -> str:
        """For people: "zoom out 2×", "pan left"."""
        return f"pan {self.pan}" if self.pan else f"zoom out {self.zoom:g}×"

    @property
    def done(self) -> str:
        """For titles: "Zoomed out 2×", "Panned left"."""
        return f"Panned {self.pan}" if self.pan else f"Zoomed out {self.zoom:g}×"

    @property
    def doing(self) -> str:
        """For sentences: "Zooming out 2×", "Panning left"."""
        return f"Panning {self.pan}" if self.pan else f"Zooming out {self.zoom:g}×"


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)


@dataclass(frozen=True)
class Layout:
    """A picture on its canvas: the canvas size, where the picture goes (at which size: it
    is smaller than the picture when the canvas was scaled to fit max_side), the seam's
    width, and the region that is kept as it is (the rest is painted)."""

    canvas: tuple[int, int]
    box: Box
    blur: int
    kept: Box

    @property
    def open_sides(self) -> tuple[str, ...]:
        """The picture's edges that face new border (the others lie on the canvas edge)."""
        width, height = self.canvas
        b = self.box
        sides = (("left", b.left > 0), ("top", b.top > 0), ("right", b.right < width),
                 ("bottom", b.bottom < height))
        return tuple(name for name, is_open in sides if is_open)


def _floor(value: float) -> int:
    return int(value) // GRID * GRID


def _ceil(value: float) -> int:
    return -(-int(value) // GRID) * GRID


def _full_canvas(size: tuple[int, int], op: Outpaint) -> tuple[int, int, int, int]:
    """The canvas at the picture's own resolution and where the picture goes on it:
    (width, height, left, top)."""
    w, h = size
    if op.pan:
        side = w if op.pan in ("left", "right") else h
        step = max(GRID, round(side / 2 / GRID) * GRID)
        return {"left": (w + step, h, step, 0), "right": (w + step, h, 0, 0),
                "up": (w, h + step, 0, step), "down": (w, h + step, 0, 0)}[op.pan]
    border_x = max(GRID, round((op.zoom - 1) * w / 2 / GRID) * GRID)
    border_y = max(GRID, round((op.zoom - 1) * h / 2 / GRID) * GRID)
    return (w + 2 * border_x, h + 2 * border_y, border_x, border_y)


def blur_for(box: Box) -> int:
    """The seam's width for a picture of this size: 1/16 of its short side, 8-64 px."""
    return max(MIN_BLUR, min(MAX_BLUR, _floor(min(box.width, box.height) / 16)))


def layout_on(size: tuple[int, int], op: Outpaint, canvas: tuple[int, int],
              blur: int = 0) -> Layout:
    """Where a picture of `size` goes on `canvas` (as `plan` chose it) for `op`; the seam
    `blur` pixels wide (0: the default for that size). Raises OutpaintError when the picture
    is too small there to keep any of it."""
    full_w, full_h, x, y = _full_canvas(size, op)
    width, height = canvas
    sx, sy = width / full_w, height / full_h
    w, h = size
    box = Box(round(x * sx), round(y * sy), round((x + w) * sx), round((y + h) * sy))
    blur = blur or blur_for(box)
    kept = Box(_ceil(box.left + blur) if box.left > 0 else 0,
               _ceil(box.top + blur) if box.top > 0 else 0,
               _floor(box.right - blur) if box.right < width else width,
               _floor(box.bottom - blur) if box.bottom < height else height)
    if kept.width <= 0 or kept.height <= 0:
        raise OutpaintError(f"The picture would be only {box.width}×{box.height} px on its "
                            f"{width}×{height} canvas, too small to blend in; nothing was "
                            "queued.")
    return Layout(canvas, box, blur, kept)


def plan(size: tuple[int, int], op: Outpaint, max_side: int) -> Layout:
    """The canvas for widening a picture of `size` by `op` within `max_side`, and where the
    picture goes on it. Raises OutpaintError (for the member) when it can't be done."""
    w, h = size
    full_w, full_h, _, _ = _full_canvas(size, op)
    scale = min(1.0, max_side / max(full_w, full_h))
    width, height = _floor(full_w * scale), _floor(full_h * scale)
    if min(width, height) < MIN_SIDE:
        hint = ("Try panning the other way or zooming out instead. " if op.pan else "")
        if scale < 1.0:
            raise OutpaintError(
                f"{op.doing} would make this {w}×{h} picture {full_w}×{full_h}; scaled down "
                f"to fit image.max_side ({max_side} px) that is {width}×{height}, under the "
                f"{MIN_SIDE} px a picture needs on each side. {hint}Nothing was queued.")
        raise OutpaintError(
            f"{op.doing} would make this {w}×{h} picture {width}×{height}, under the "
            f"{MIN_SIDE} px a picture needs on each side. {hint}Nothing was queued.")
    return layout_on(size, op, (width, height))


# ----- pixels -------------------------------------------------------------------------------


def fitted(picture: Image.Image, layout: Layout) -> Image.Image:
    """The picture at the size it has on the canvas (itself when the canvas was not scaled)."""
    picture = picture.convert("RGB")
    if picture.size != layout.box.size:
        picture = picture.resize(layout.box.size, Image.Resampling.LANCZOS)
    return picture


def prepare(picture: Image.Image, layout: Layout) -> tuple[Image.Image, Image.Image]:
    """The inpainting input: the canvas with the picture on it (the border filled with its
    edge colours, blurred: a start that continues the picture), and the mask (white: paint;
    black: keep)."""
    width, height = layout.canvas
    b = layout.box
    picture = fitted(picture, layout)
    pixels = np.asarray(picture)
    padded = np.pad(pixels, ((b.top, height - b.bottom), (b.left, width - b.right), (0, 0)),
                    mode="edge")
    canvas = Image.fromarray(padded).filter(ImageFilter.GaussianBlur(max(4, layout.blur)))
    canvas.paste(picture, (b.left, b.top))
    mask = Image.new("L", layout.canvas, 255)
    mask.paste(0, layout.kept.as_tuple())
    return canvas, mask


def seam_alpha(layout: Layout) -> np.ndarray:
    """How much of the original each pixel of the picture's box keeps (1: all of it), as a
    float array of the box's shape: 1 except within `blur` pixels of an open side, where it
    ramps down linearly towards that edge."""
    b = layout.box
    ramp_x = np.ones(b.width, dtype=np.float64)
    ramp_y = np.ones(b.height, dtype=np.float64)
    sides = layout.open_sides
    blur = float(layout.blur)
    xs, ys = np.arange(b.width) + 0.5, np.arange(b.height) + 0.5
    if "left" in sides:
        ramp_x = np.minimum(ramp_x, xs / blur)
    if "right" in sides:
        ramp_x = np.minimum(ramp_x, (b.width - xs) / blur)
    if "top" in sides:
        ramp_y = np.minimum(ramp_y, ys / blur)
    if "bottom" in sides:
        ramp_y = np.minimum(ramp_y, (b.height - ys) / blur)
    return np.outer(np.clip(ramp_y, 0, 1), np.clip(ramp_x, 0, 1))


def blend(painted: Image.Image, picture: Image.Image, layout: Layout) -> Image.Image:
    """The painted canvas with the original blended back over it (see `seam_alpha`)."""
    if painted.size != layout.canvas:
        painted = painted.resize(layout.canvas, Image.Resampling.LANCZOS)
    out = np.asarray(painted.convert("RGB"), dtype=np.float64).copy()
    b = layout.box
    original = np.asarray(fitted(picture, layout), dtype=np.float64)
    alpha = seam_alpha(layout)[..., None]
    region = out[b.top:b.bottom, b.left:b.right]
    out[b.top:b.bottom, b.left:b.right] = alpha * original + (1 - alpha) * region
    return Image.fromarray(np.rint(out).clip(0, 255).astype(np.uint8))
