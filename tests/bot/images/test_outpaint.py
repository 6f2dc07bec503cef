"""Zoom out and pan without a model: the canvas, where the picture goes, the mask, the seam."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bot.executor.jobs import ImageMode, ImageParams
from bot.images.outpaint import (
    GRID,
    MIN_SIDE,
    Box,
    Outpaint,
    OutpaintError,
    blend,
    layout_on,
    plan,
    prepare,
    seam_alpha,
)
from bot.images.requests import outpainted

ZOOM_2 = Outpaint(zoom=2.0)


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def flat(size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", size, colour)


def arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize(("op", "size", "canvas", "box"), [
    (Outpaint(zoom=2.0), (64, 64), (128, 128), Box(32, 32, 96, 96)),
    (Outpaint(zoom=1.5), (512, 512), (768, 768), Box(128, 128, 640, 640)),
    (Outpaint(zoom=2.0), (512, 768), (1024, 1536), Box(256, 384, 768, 1152)),
    (Outpaint(pan="left"), (512, 512), (768, 512), Box(256, 0, 768, 512)),
    (Outpaint(pan="right"), (512, 512), (768, 512), Box(0, 0, 512, 512)),
    (Outpaint(pan="up"), (512, 512), (512, 768), Box(0, 256, 512, 768)),
    (Outpaint(pan="down"), (512, 512), (512, 768), Box(0, 0, 512, 512)),
    (Outpaint(pan="right"), (64, 64), (96, 64), Box(0, 0, 64, 64)),
])
def test_the_canvas_keeps_the_picture_at_its_own_size(
    op: Outpaint, size: tuple[int, int], canvas: tuple[int, int], box: Box,
) -> None:
    layout = plan(size, op, max_side=2048)
    assert layout.canvas == canvas and layout.box == box
    assert all(side % GRID == 0 for side in layout.canvas)


def test_a_zoom_centres_and_a_pan_opens_only_its_side() -> None:
    assert plan((64, 64), ZOOM_2, 1024).open_sides == ("left", "top", "right", "bottom")
    sides = {d: plan((64, 64), Outpaint(pan=d), 1024).open_sides
             for d in ("left", "right", "up", "down")}
    assert sides == {"left": ("left",), "right": ("right",), "up": ("top",),
                     "down": ("bottom",)}


def test_over_max_side_canvas_and_picture_shrink_together() -> None:
    layout = plan((1024, 1024), ZOOM_2, max_side=1024)
    assert layout.canvas == (1024, 1024) and layout.box == Box(256, 256, 768, 768)
    wide = plan((1024, 1024), Outpaint(pan="right"), max_side=1024)
    assert max(wide.canvas) <= 1024 and all(s % GRID == 0 for s in wide.canvas)
    assert wide.canvas[0] == 1024 and wide.box.left == 0 and wide.box.height == wide.canvas[1]
    assert abs(wide.box.width / wide.box.height - 1) < 0.02  # the picture keeps its shape


def test_a_canvas_too_thin_to_fit_max_side_is_refused_saying_why() -> None:
    with pytest.raises(OutpaintError) as refused:
        plan((64, 64), Outpaint(pan="left"), max_side=64)
    text = str(refused.value)
    assert "96×64" in text and "image.max_side (64 px)" in text and "64×40" in text
    assert f"{MIN_SIDE} px" in text and "Nothing was queued" in text
    # Zooming out still fits: the whole view shrinks into 64×64.
    assert plan((64, 64), ZOOM_2, max_side=64).box == Box(16, 16, 48, 48)


def test_unknown_operations_are_refused() -> None:
    with pytest.raises(OutpaintError, match=r"choose 1\.1-4"):
        Outpaint(zoom=9)
    with pytest.raises(OutpaintError, match="left, right, up, down"):
        Outpaint(pan="sideways")


def test_the_mask_paints_the_border_and_the_seam_and_keeps_the_rest() -> None:
    layout = plan((64, 64), Outpaint(pan="right"), 1024)
    picture = noise((64, 64))
    canvas, mask = prepare(picture, layout)
    assert canvas.size == mask.size == (96, 64)
    assert np.array_equal(arr(canvas)[:, :64], arr(picture))  # the picture is on the canvas
    m = np.asarray(mask)
    kept = layout.kept
    assert kept == Box(0, 0, 56, 64) and kept.right % GRID == 0
    assert (m[:, :kept.right] == 0).all() and (m[:, kept.right:] == 255).all()
    assert kept.right <= layout.box.right - layout.blur  # the seam is painted too


def test_blend_keeps_the_original_beyond_the_seam_and_fades_on_it() -> None:
    layout = plan((64, 64), ZOOM_2, 1024)
    picture = flat((64, 64), (200, 0, 0))
    painted = flat(layout.canvas, (0, 0, 200))
    out = arr(blend(painted, picture, layout))
    b, blur = layout.box, layout.blur
    inner = out[b.top + blur:b.bottom - blur, b.left + blur:b.right - blur]
    assert (inner == (200, 0, 0)).all()  # exactly the original
    assert (out[:b.top] == (0, 0, 200)).all() and (out[:, b.right:] == (0, 0, 200)).all()
    row = out[(b.top + b.bottom) // 2, b.left:b.left + blur, 0]
    assert list(row) == sorted(row) and 0 < row[0] < row[-1] < 200  # a ramp, no step
    alpha = seam_alpha(layout)
    assert alpha.shape == (64, 64) and alpha.max() == 1.0 and 0 < alpha.min() < 0.1


def test_a_pan_blends_only_its_open_side() -> None:
    layout = plan((64, 64), Outpaint(pan="up"), 1024)
    picture = noise((64, 64), seed=3)
    out = arr(blend(flat(layout.canvas, (0, 0, 0)), picture, layout))
    kept = out[layout.box.top + layout.blur:]
    assert np.array_equal(kept, arr(picture)[layout.blur:])  # left, right, bottom untouched


def test_a_shrunk_picture_is_resized_into_its_box() -> None:
    layout = plan((128, 128), ZOOM_2, max_side=128)
    picture = flat((128, 128), (10, 200, 10))
    canvas, _ = prepare(picture, layout)
    b = layout.box
    assert b.size == (64, 64)
    assert (arr(canvas)[b.top:b.bottom, b.left:b.right] == (10, 200, 10)).all()


def test_the_runner_finds_the_same_layout_on_the_stored_canvas() -> None:
    for op in (ZOOM_2, Outpaint(zoom=1.5), Outpaint(pan="left"), Outpaint(pan="down")):
        for size, max_side in [((512, 512), 2048), ((1024, 1024), 1024), ((500, 333), 640)]:
            chosen = plan(size, op, max_side)
            assert layout_on(size, op, chosen.canvas, chosen.blur) == chosen


def test_outpaint_params_keep_prompt_and_seed_and_name_the_canvas() -> None:
    source = ImageParams(prompt="a fox, watercolor", negative="blurry", subject="a fox",
                         style="watercolor", seeds=(7, 8), steps=4, guidance=7.0,
                         width=64, height=64)
    params = outpainted(source, 1, "abc123", "/x/abc123-1.png", (64, 64),
                        Outpaint(pan="left"), 1024)
    assert params.mode is ImageMode.OUTPAINT and params.seeds == (8,)
    assert (params.width, params.height, params.pan, params.zoom_out) == (96, 64, "left", 0.0)
    assert params.strength == 1.0 and params.mask_blur == 8
    assert params.source_job == "abc123" and params.source_path == "/x/abc123-1.png"
    assert ImageParams.from_json(params.to_json()) == params
    # Rows written before outpainting existed read back with the defaults.
    old = {k: v for k, v in source.to_json().items()
           if k not in ("zoom_out", "pan", "mask_blur")}
    assert ImageParams.from_json(old) == source
