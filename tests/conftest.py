"""Shared pytest fixtures: the Discord double, tiny models, the running bot."""

import os

# Never reach for the hub in tests: loaders fail fast instead of retrying for ~20 s.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.discord_double.fixtures import (
    discord_double,
    discord_world,
    make_discord_double,
)
from tests.harness import bot_harness, tiny_models

__all__ = ["bot_harness", "discord_double", "discord_world", "make_discord_double",
           "tiny_models"]
