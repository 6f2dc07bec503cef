"""Fixtures for the pipeline tests (the tiny models come from tests/conftest.py)."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub (it reads this at import): never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.pipelines.tiny import TinyModelPaths


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run these tests on one intra-op thread, restored afterwards.

    The tiny models gain little from a second thread, and OpenMP's spinning threads collapse
    when other processes share the 2 cores: this folder took 243 s with 2 threads on a busy
    machine and 16 s with 1.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.fixture(scope="session")
def tiny_chat_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny instruct model (a chat template, ChatML markers) of bot.pipelines.tiny."""
    from bot.pipelines.tiny import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat") / "chat")
