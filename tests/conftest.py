"""Shared pytest fixtures: the Discord double, tiny models, the running bot. The helpers
behind them live in `testkit/`, which the benches use too."""

from __future__ import annotations

import asyncio
import logging
import os

# Never reach for the hub in tests: loaders fail fast instead of retrying for ~20 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.logging_redaction import SecretRedactingFilter
from bot.pipelines.tiny import TinyModelPaths, build_tiny_models
from testkit.discord_double import SHARED_SPEC_FILE, SPEC_ENV, DiscordDouble
from testkit.discord_double.seeding import (
    MakeDouble,
    SeededWorld,
    seeded_world,
    start_seeded_double,
)
from testkit.harness import BotHarness, harness_settings


@pytest.fixture(autouse=True)
def _validate_against_spec_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request body the bot sends is checked against Discord's OpenAPI spec when it
    is on this machine (scripts/test sets the same variable; this covers a bare pytest)."""
    if not os.environ.get(SPEC_ENV) and SHARED_SPEC_FILE.exists():
        monkeypatch.setenv(SPEC_ENV, str(SHARED_SPEC_FILE))


@pytest.fixture(autouse=True)
def _no_redaction_left_on_the_root_handlers() -> Iterator[None]:
    """A test that calls `main()` in-process has it install the redaction filter on every
    root handler, pytest's capture handlers included (the same handler objects serve every
    test): take it off again, so later tests' caplog sees their records unchanged."""
    yield
    for handler in logging.getLogger().handlers:
        for found in [f for f in handler.filters if isinstance(f, SecretRedactingFilter)]:
            handler.removeFilter(found)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModelPaths:
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
async def make_discord_double() -> AsyncIterator[MakeDouble]:
    """An async factory: each call starts a (seeded) double, stopped after the test."""
    started: list[DiscordDouble] = []

    async def make(*, seeded: bool = True, **kwargs: Any) -> DiscordDouble:
        double = await start_seeded_double(seeded=seeded, **kwargs)
        started.append(double)
        return double

    yield make
    for double in started:
        await double.stop()


@pytest.fixture
async def discord_double(make_discord_double: MakeDouble) -> DiscordDouble:
    return await make_discord_double(heartbeat_interval_ms=500)


@pytest.fixture
def discord_world(discord_double: DiscordDouble) -> SeededWorld:
    return seeded_world(discord_double)


@pytest.fixture
async def bot_harness(
    tiny_models: TinyModelPaths, tmp_path: Path, discord_double: DiscordDouble,
    discord_world: SeededWorld,
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(discord_double, discord_world,
                         harness_settings(tiny_models, tmp_path, discord_double))
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
        await asyncio.sleep(0)


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BLIP captioning model (describe.model), loadable with from_pretrained."""
    from bot.pipelines.tiny_caption import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


@pytest.fixture(scope="session")
def tiny_lora(tiny_models: TinyModelPaths, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LoRA (UNet and text encoder) for the tiny image model, as a .safetensors file."""
    from bot.pipelines.tiny_lora import build_tiny_lora

    return build_tiny_lora(tiny_models.image, tmp_path_factory.mktemp("lora") / "tiny.safetensors")
