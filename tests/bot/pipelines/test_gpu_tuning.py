"""The tuned GPU path (channels-last UNet, fused QKV projections, optional torch.compile).

It runs only on CUDA in the bot; the functions themselves work on any device, so the CPU
checks here prove they change no picture beyond rounding. bench/gpu.py measures the speed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bot.app import image_options
from bot.config import settings_from_mapping
from bot.pipelines.diffusion import (
    ImageEngine,
    ImageModelOptions,
    ImageSpec,
    compile_unet,
    tune_for_gpu,
)

SPEC = ImageSpec(prompt="a lighthouse at dusk", negative="blurry", seed=3, steps=4,
                 guidance=7.0, width=64, height=64)


def _engine(model: Path, **options: Any) -> ImageEngine:
    engine = ImageEngine(ImageModelOptions(model=str(model), device="cpu", **options))
    engine.load()
    return engine


def _diff(a: Any, b: Any) -> float:
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    return float(np.abs(x - y).mean())


def test_tuning_changes_no_picture_beyond_rounding(tiny_image_dir: Path) -> None:
    engine = _engine(tiny_image_dir)
    before = engine.generate([SPEC]).images[0]
    tune_for_gpu(engine.pipe)
    processors = {type(p).__name__ for p in engine.pipe.unet.attn_processors.values()}
    assert processors == {"FusedAttnProcessor2_0"}
    assert engine.pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    after = engine.generate([SPEC]).images[0]
    assert _diff(before, after) < 1


def test_no_fusing_with_attention_slicing(tiny_image_dir: Path) -> None:
    engine = _engine(tiny_image_dir, attention_slicing=True)
    tune_for_gpu(engine.pipe, fuse_qkv=False)
    processors = {type(p).__name__ for p in engine.pipe.unet.attn_processors.values()}
    assert processors == {"SlicedAttnProcessor"}  # slicing kept: it is what saves the memory


def test_compile_wraps_the_unet_in_place(tiny_image_dir: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    engine = _engine(tiny_image_dir)
    unet = engine.pipe.unet
    calls: list[Any] = []
    monkeypatch.setattr(unet, "compile", lambda *a, **k: calls.append((a, k)))
    compile_unet(engine.pipe)
    assert calls and engine.pipe.unet is unet


def test_compile_needs_cuda(tiny_image_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.pipelines.diffusion"):
        engine = _engine(tiny_image_dir, compile=True)
    assert "image.compile needs CUDA" in caplog.text
    assert engine.generate([SPEC]).images[0].size == (64, 64)


def test_compile_setting_reaches_the_engine_options() -> None:
    settings = settings_from_mapping({"image": {"compile": True}}, env={})
    assert image_options(settings).compile is True
    assert image_options(settings_from_mapping({}, env={})).compile is False
