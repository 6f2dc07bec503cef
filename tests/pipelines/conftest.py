"""Tiny offline models for the pipeline tests, built once per session."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub (it reads this at import): never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.pipelines.tiny import TinyModelPaths, build_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModelPaths:
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def image_engine(tiny_models: TinyModelPaths) -> Iterator[object]:
    """One loaded engine for the session (loading is the slow part); tests reset the sampler."""
    from bot.pipelines.diffusion import ImageEngine, ImageModelOptions

    engine = ImageEngine(ImageModelOptions(model=str(tiny_models.image), device="cpu"))
    engine.load()
    yield engine


@pytest.fixture(scope="session")
def story_writer(tiny_models: TinyModelPaths) -> object:
    from bot.pipelines.text import StoryWriter, TextModelOptions

    writer = StoryWriter(TextModelOptions(model=str(tiny_models.story), device="cpu"))
    writer.load()
    return writer


@pytest.fixture
def tiny_image_dir(tiny_models: TinyModelPaths) -> Path:
    return tiny_models.image
