"""Keep Discord secrets out of log output.

At DEBUG (`python -m bot -v`) discord.py logs raw gateway events and REST calls: an
INTERACTION_CREATE event carries the interaction's token (`'token': '…'`), REST URLs carry it
(`/interactions/<id>/<token>/callback`, `/webhooks/<app id>/<token>/…`), and anything that
prints the IDENTIFY payload or a header shows the bot token. Whoever holds an interaction
token can answer as the bot for 15 minutes; whoever holds the bot token is the bot.

`SecretRedactingFilter` rewrites each record's final message (`record.getMessage()`, its
args formatted in) and its traceback text, replacing those secrets with `[redacted]`; a record
with nothing to hide is left exactly as it was. `install_redaction` puts it on the root
logger's handlers: a filter on a *handler* sees every record that reaches it, those
propagated from `discord.*` loggers included (a filter on the root *logger* would not).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["REDACTED", "SecretRedactingFilter", "install_redaction"]

REDACTED = "[redacted]"

_PATTERNS: tuple[re.Pattern[str], ...] = (
    # A "token" key (also "access_token" …) in a JSON body or in the dict repr of an event:
    # "token": "…" / 'token': '…'. Only the quoted value goes.
    re.compile(r"""(?P<keep>(["'])(?:\w*_)?token\2\s*:\s*(["']))(?P<secret>[^"'\s]+)(?=\3)"""),
    # REST paths whose second id is a token: interaction callbacks and webhooks (an
    # interaction's follow-ups and @original are webhooks of the application).
    re.compile(r"(?P<keep>/(?:interactions|webhooks)/\d+/)(?P<secret>[^/\s?#'\"]+)"),
    # An interaction token anywhere: base64 of "interaction:…".
    re.compile(r"(?P<keep>)(?P<secret>aW50ZXJhY3Rpb246[A-Za-z0-9_\-]+=*)"),
    # A bot token anywhere, by its shape: base64(user id).timestamp.hmac.
    re.compile(r"(?P<keep>)(?<![\w\-])(?P<secret>[A-Za-z0-9_\-]{23,}\.[A-Za-z0-9_\-]{6,7}"
               r"\.[A-Za-z0-9_\-]{27,})(?![\w\-])"),
)
_MIN_SECRET = 8  # shorter "secrets" would mangle ordinary words


def _replace(match: re.Match[str]) -> str:
    return match.group("keep") + REDACTED


class SecretRedactingFilter(logging.Filter):
    """Redacts interaction, webhook and bot tokens (and any secret given by value) from
    every record it sees; never drops a record."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | None) -> None:
        """Also redact this exact text (the bot token, once the settings are read)."""
        if secret and len(secret) >= _MIN_SECRET and secret not in self._secrets:
            self._secrets.append(secret)
            self._secrets.sort(key=len, reverse=True)  # a secret inside another: longest first

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(_replace, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as it would
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # What Formatter.format would cache here, so the traceback is redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def install_redaction(
    logger: logging.Logger | None = None, secrets: Iterable[str | None] = ()
) -> SecretRedactingFilter:
    """Put one SecretRedactingFilter on every handler of `logger` (default: the root logger,
    after `logging.basicConfig`) and return it; called again, it reuses the one installed."""
    logger = logger if logger is not None else logging.getLogger()
    redactor = next((f for h in logger.handlers for f in h.filters
                     if isinstance(f, SecretRedactingFilter)), None) or SecretRedactingFilter()
    for secret in secrets:
        redactor.add_secret(secret)
    for handler in logger.handlers:
        if redactor not in handler.filters:
            handler.addFilter(redactor)
    return redactor
