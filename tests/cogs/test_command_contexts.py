"""Where each slash command is offered (its `integration_types` and `contexts`), and the
synced payload checked against the body Discord's OpenAPI spec defines for the bulk
overwrite (ApplicationCommandUpdateRequest): the commands that work through the
interaction alone are installable to users and offered in DMs and group DMs (/story too:
there it is told in the conversation); those that post with the bot token (/describe,
/telephone) stay in guilds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_app
from bot.client import EXTENSIONS, GreenheartBot
from bot.config import settings_from_mapping
from bot.pipelines.tiny import TinyModelPaths
from testkit.discord_double import SHARED_SPEC_FILE, load_spec

GUILD, USER = 0, 1  # integration types
IN_GUILD, BOT_DM, PRIVATE_CHANNEL = 0, 1, 2  # interaction contexts
ANYWHERE = {"imagine", "queue", "cancel", "settings", "story"}
GUILDS_ONLY = {"describe", "telephone"}


@pytest.fixture
async def payloads(tiny_models: TinyModelPaths, tmp_path: Path
                   ) -> AsyncIterator[dict[str, dict[str, Any]]]:
    settings = settings_from_mapping({
        "discord": {"sync_commands": False},
        "image": {"model": str(tiny_models.image), "steps": 2},
        "story": {"model": str(tiny_models.story), "max_new_tokens": 8},
        "storage": {"database": str(tmp_path / "db.sqlite3"), "images": str(tmp_path / "img")},
    }, env={"DISCORD_TOKEN": "not-used"})
    bot: GreenheartBot
    async with open_app(settings, extensions=()) as bot:
        for name in EXTENSIONS:  # by name, as setup_hook does (no connection needed)
            await bot.load_extension(name)
        yield {c.name: c.to_dict(bot.tree) for c in bot.tree.get_commands()}


def test_commands_are_offered_where_they_work(payloads: dict[str, dict[str, Any]]) -> None:
    for name in ANYWHERE:
        assert payloads[name]["integration_types"] == [GUILD, USER], name
        assert payloads[name]["contexts"] == [IN_GUILD, BOT_DM, PRIVATE_CHANNEL], name
    # A server's numbers: in servers, also one that only a member installed the app to.
    assert payloads["stats"]["integration_types"] == [GUILD, USER]
    assert payloads["stats"]["contexts"] == [IN_GUILD]
    for name in GUILDS_ONLY & set(payloads):
        payload = payloads[name]
        # guild_only on a command sets contexts; on a group, dm_permission.
        assert payload.get("contexts") == [IN_GUILD] or (
            payload.get("contexts") is None and payload.get("dm_permission") is False), name
        assert payload.get("integration_types") in (None, [GUILD]), name


@pytest.mark.skipif(not SHARED_SPEC_FILE.exists(), reason="Discord's OpenAPI spec is absent")
def test_the_synced_payload_fits_discords_openapi_spec(
        payloads: dict[str, dict[str, Any]]) -> None:
    spec = load_spec(str(SHARED_SPEC_FILE))
    body = list(payloads.values())
    assert spec.check_request("PUT", "/applications/1/commands", {}, body, has_body=True,
                              multipart=False) == []
    # The check can fail: a context Discord does not define is refused.
    broken = [{**payloads["imagine"], "contexts": [0, 7]}]
    assert spec.check_request("PUT", "/applications/1/commands", {}, broken, has_body=True,
                              multipart=False) != []
