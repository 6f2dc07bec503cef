"""Saved image files: PNG with AUTOMATIC1111 parameters, never over Discord's upload limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bot.executor.jobs import GeneratedImage, ImageParams, ImageResult, Job
from bot.images.files import save_images
from bot.images.pnginfo import read_png_parameters
from bot.images.upload import DISCORD_UPLOAD_LIMIT


def test_saved_files_carry_parameters_and_fit_the_upload_limit(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    big = Image.fromarray(noise)  # an upscale that doesn't compress: ~12 MB as PNG
    small = Image.new("RGB", (64, 64), (10, 200, 30))
    job = Job(user_id=1, params=ImageParams(
        prompt="Oregon 💚, watercolor", negative="blurry", subject="Oregon 💚",
        style="watercolor", seeds=(5, 6), steps=20, guidance=7.5, width=64, height=64))
    result = ImageResult((GeneratedImage(big, 5), GeneratedImage(small, 6)), {}, "tiny",
                         "Euler a")
    paths = save_images(job, result, tmp_path)
    assert [p.name for p in paths] == [f"{job.id}-0.png", f"{job.id}-1.png"]
    for path, seed in zip(paths, (5, 6), strict=True):
        data = path.read_bytes()
        assert len(data) <= DISCORD_UPLOAD_LIMIT
        params = read_png_parameters(data)
        assert params is not None and params.seed == seed and params.prompt == job.params.prompt
        assert params.extra["Style"] == "watercolor" and params.cfg_scale == 7.5
    assert Image.open(paths[1]).size == (64, 64)
    assert not list(tmp_path.glob("*.part"))
