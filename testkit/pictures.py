"""Sample picture parameters for the image tests (AUTOMATIC1111 infotext and PNG files)."""

from __future__ import annotations

from bot.images.pnginfo import GenerationParameters


def sample_parameters(**changes: object) -> GenerationParameters:
    """An SDXL-sized picture's parameters with an emoji prompt; `changes` replace fields."""
    base: dict[str, object] = {
        "prompt": "Oregon 💚, watercolor painting",
        "negative": "blurry, lowres",
        "steps": 20,
        "sampler": "Euler a",
        "cfg_scale": 7.0,
        "seed": 1234,
        "width": 512,
        "height": 768,
        "model": "sd_xl_base_1.0",
    }
    base.update(changes)
    return GenerationParameters(**base)  # type: ignore[arg-type]
