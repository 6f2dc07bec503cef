"""Fixtures of the story cog tests: one model runner for the session (loading models is
the slow part; its options don't depend on a test's database) and a StoryBot per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import build_runner
from bot.config import settings_from_mapping
from bot.pipelines.runner import ModelRunner
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import DiscordDouble
from testkit.discord_double.seeding import SeededWorld
from testkit.story import StoryBot, fast_sections


@pytest.fixture(scope="session")
def story_runner(tiny_models: TinyModelPaths) -> ModelRunner:
    raw = fast_sections(image={"model": str(tiny_models.image)},
                        story={"model": str(tiny_models.story)})
    return build_runner(settings_from_mapping(raw))


@pytest.fixture
def story_bot(discord_double: DiscordDouble, discord_world: SeededWorld,
              tiny_models: TinyModelPaths, story_runner: ModelRunner, tmp_path: Path
              ) -> Iterator[StoryBot]:
    blocked_term = story_runner.blocked_term  # tests may swap it; the runner is shared
    yield StoryBot(discord_double, discord_world, tiny_models, story_runner, tmp_path,
                   discord={})
    story_runner.blocked_term = blocked_term
