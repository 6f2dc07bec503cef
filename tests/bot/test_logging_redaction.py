"""Secrets kept out of log lines: discord.py's debug output, as it formats it, redacted."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import bot.__main__ as entry
from bot.config import Settings
from bot.logging_redaction import REDACTED, SecretRedactingFilter, install_redaction

ROOT = Path(__file__).resolve().parents[2]

BOT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GaBcDe.q1w2e3r4t5y6u7i8o9p0AsDfGhJkLzXcVbNm12"
INTERACTION_TOKEN = ("aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OkFiQ2RFZkdoSWpLbE1uT3BRclN0"
                     "VXZXeFl6MDEyMzQ1Njc4OQ")
# A webhook's own token (not an interaction's): 68 url-safe characters.
WEBHOOK_TOKEN = "Xy9_Zq-3kLmNoPqRsTuVwXyZaBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgHiJkLmNoPq12"
APP_ID = 987654321098765432
INTERACTION_ID = 123456789012345678

INTERACTION_CREATE = {
    "t": "INTERACTION_CREATE", "s": 4, "op": 0,
    "d": {"version": 1, "type": 2, "token": INTERACTION_TOKEN, "locale": "en-US",
          "id": str(INTERACTION_ID), "application_id": str(APP_ID),
          "data": {"type": 1, "name": "imagine", "id": "1100000000000000001",
                   "options": [{"type": 3, "name": "prompt", "value": "a token: of love"}]},
          "member": {"user": {"username": "rowan", "id": "1200000000000000002"}}},
}
IDENTIFY = {"op": 2, "d": {"token": BOT_TOKEN, "intents": 513, "compress": True,
                           "properties": {"os": "linux", "browser": "discord.py"}}}


def logged(fmt: str, *args: object) -> logging.LogRecord:
    """A record as discord.py's `_log.debug(fmt, *args)` makes it."""
    return logging.LogRecord("discord.gateway", logging.DEBUG, __file__, 1, fmt, args, None)


def redacted(record: logging.LogRecord, *secrets: str) -> str:
    assert SecretRedactingFilter(secrets).filter(record) is True  # never drops a record
    return record.getMessage()


# --------------------------------------------------------------------- discord.py's lines


def test_gateway_interaction_event_loses_its_token() -> None:
    # gateway.py: _log.debug('For Shard ID %s: WebSocket Event: %s', self.shard_id, msg)
    message = redacted(logged("For Shard ID %s: WebSocket Event: %s", None, INTERACTION_CREATE))
    assert INTERACTION_TOKEN not in message
    assert f"'token': '{REDACTED}'" in message
    # The rest of the event is there to debug with, the prompt's "token:" included.
    assert "'name': 'imagine'" in message and "'value': 'a token: of love'" in message
    assert f"'id': '{INTERACTION_ID}'" in message and "'username': 'rowan'" in message


def test_identify_payload_loses_the_bot_token_by_value_and_by_shape() -> None:
    fmt = "For Shard ID %s: sending %s"
    by_value = redacted(logged(fmt, 0, IDENTIFY), BOT_TOKEN)
    by_shape = redacted(logged(fmt, 0, IDENTIFY))  # not registered: its shape gives it away
    for message in (by_value, by_shape):
        assert BOT_TOKEN not in message and "'intents': 513" in message
    # Anywhere, not only under a "token" key: in a traceback's text, an f-string, a header.
    for text in (f"Authorization: Bot {BOT_TOKEN}", f"login with {BOT_TOKEN}!"):
        assert BOT_TOKEN not in redacted(logged("%s", text), BOT_TOKEN)
        assert BOT_TOKEN not in redacted(logged("%s", text))


def test_http_request_logs_lose_interaction_and_webhook_tokens() -> None:
    api = "https://discord.com/api/v10"
    callback = f"{api}/interactions/{INTERACTION_ID}/{INTERACTION_TOKEN}/callback"
    original = f"{api}/webhooks/{APP_ID}/{INTERACTION_TOKEN}/messages/@original"
    followup = f"{api}/webhooks/{APP_ID}/{WEBHOOK_TOKEN}?wait=1"
    lines = [
        # http.py: _log.debug('%s %s with %s has returned %s', method, url, data, status)
        logged("%s %s with %s has returned %s", "POST", callback,
               '{"type":5,"data":{"flags":64}}', 204),
        # http.py: _log.debug('%s %s has received %s', method, url, data)
        logged("%s %s has received %s", "PATCH", original,
               {"id": "1300000000000000003", "webhook_id": str(APP_ID), "content": "done"}),
        # webhook/async_.py: 'Webhook ID %s with %s %s has returned status code %s'
        logged("Webhook ID %s with %s %s has returned status code %s", APP_ID, "POST",
               followup, 200),
    ]
    messages = [redacted(record) for record in lines]
    for message in messages:
        assert INTERACTION_TOKEN not in message and WEBHOOK_TOKEN not in message
    assert messages[0] == (f"POST {api}/interactions/{INTERACTION_ID}/{REDACTED}/callback "
                           'with {"type":5,"data":{"flags":64}} has returned 204')
    assert f"/webhooks/{APP_ID}/{REDACTED}/messages/@original has received" in messages[1]
    assert "'webhook_id': '987654321098765432'" in messages[1]
    assert messages[2].endswith(f"/webhooks/{APP_ID}/{REDACTED}?wait=1 has returned "
                                "status code 200")


def test_json_bodies_and_bare_interaction_tokens_are_redacted() -> None:
    body = f'{{"type": 2, "token": "{INTERACTION_TOKEN}", "access_token": "abc123xyz"}}'
    message = redacted(logged("received %s", body))
    assert INTERACTION_TOKEN not in message and "abc123xyz" not in message
    assert f'"token": "{REDACTED}"' in message and '"type": 2' in message
    # An interaction token outside a key or URL (an exception's text) has a telling prefix.
    assert INTERACTION_TOKEN not in redacted(logged("bad token %s", INTERACTION_TOKEN))


def test_exception_text_is_redacted_too() -> None:
    try:
        raise RuntimeError(f"PATCH /webhooks/{APP_ID}/{INTERACTION_TOKEN}/messages/1 failed")
    except RuntimeError:
        import sys

        record = logging.LogRecord("discord.http", logging.ERROR, __file__, 1, "failed",
                                   None, sys.exc_info())
    SecretRedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert INTERACTION_TOKEN not in text and "RuntimeError" in text and REDACTED in text


@pytest.mark.parametrize("fmt, args", [
    ("Shard ID %s has connected to Gateway (Session ID: %s).", (None, "0f3c2a9d8e7b")),
    ("Shard ID %s has sent the IDENTIFY payload.", (None,)),
    ("story model %s loaded (%s on %s)", ("models/story", "torch.float32", "cpu")),
    ("%s %s has received %s", ("GET", "https://discord.com/api/v10/users/@me",
                               {"id": "1200000000000000002", "username": "greenheart"})),
    ("max_new_tokens=%d, %d%% done, tokens: %s", (60, 50, "12/77")),
    ("prompt %r", ("a token: of love, 'token' in quotes, token=abc",)),
    ("job %s took %.2f s", ("5f0c7e0e9b2d4c1fa1b6e1f3d2c4b5a6", 1.5)),
    ("plain message with no args and a %s left as is", ()),
])
def test_ordinary_messages_are_left_alone(fmt: str, args: tuple[object, ...]) -> None:
    record = logged(fmt, *args)
    before = record.getMessage()
    assert redacted(record, BOT_TOKEN) == before
    assert record.args == args and record.msg == fmt  # untouched, args and all


def test_short_or_missing_secrets_are_ignored() -> None:
    redactor = SecretRedactingFilter([None, "", "ab"])
    redactor.add_secret(None)
    record = logged("ab cab %s", "abc")
    assert redactor.filter(record) and record.getMessage() == "ab cab abc"


# --------------------------------------------------------------------- where it is installed


@contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger with no handlers, as a user's process starts, so that basicConfig
    installs a real stream handler; pytest's own handlers and the levels are put back after.
    (Inside the test, not a fixture: pytest adds its handlers per phase, around fixtures.)
    The `discord` logger's level is unset meanwhile: other code (the benches) raises it."""
    root, discord_log = logging.getLogger(), logging.getLogger("discord")
    saved, level, discord_level = root.handlers[:], root.level, discord_log.level
    root.handlers.clear()
    discord_log.setLevel(logging.NOTSET)
    try:
        yield root
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        discord_log.setLevel(discord_level)


def test_install_puts_one_filter_on_every_root_handler() -> None:
    stream = io.StringIO()
    first, second = logging.StreamHandler(stream), logging.StreamHandler(io.StringIO())
    with bare_root() as root:
        root.addHandler(first)
        root.addHandler(second)
        redactor = install_redaction(secrets=[BOT_TOKEN])
        assert install_redaction() is redactor  # again: the same filter, not a second one
        assert first.filters == [redactor] and second.filters == [redactor]
        root.setLevel(logging.DEBUG)
        logging.getLogger("discord.gateway").debug("For Shard ID %s: WebSocket Event: %s",
                                                   None, IDENTIFY)
    assert BOT_TOKEN not in stream.getvalue() and REDACTED in stream.getvalue()


def test_verbose_main_redacts_what_discord_logs(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bot -v`: debug lines reach stderr with the tokens redacted, the bot token
    from the environment included (by value: this one has no token's shape)."""
    odd_token = "an-odd-token-without-the-usual-shape-0123456789"
    monkeypatch.setenv("DISCORD_TOKEN", odd_token)
    served: list[Settings] = []

    def fake_run_bot(settings: Settings) -> int:  # in place of connecting to Discord
        served.append(settings)
        log = logging.getLogger("discord.gateway")
        log.debug("For Shard ID %s: WebSocket Event: %s", None, INTERACTION_CREATE)
        log.debug("logging in with %s", odd_token)
        log.debug("Shard ID %s has sent the IDENTIFY payload.", None)
        return 0

    monkeypatch.setattr(entry, "run_bot", fake_run_bot)
    with bare_root() as root:
        assert entry.main(["-v", "--config", str(ROOT / "config.toml")]) == 0
        installed = [f for h in root.handlers for f in h.filters
                     if isinstance(f, SecretRedactingFilter)]
    assert len(installed) == 1
    assert served and served[0].token == odd_token
    err = capsys.readouterr().err
    assert "WebSocket Event" in err and "DEBUG discord.gateway" in err
    assert INTERACTION_TOKEN not in err and odd_token not in err
    assert err.count(REDACTED) == 2 and "has sent the IDENTIFY payload." in err
