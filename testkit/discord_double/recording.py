"""What the double remembers: REST requests, rate-limit rules, interactions."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from .models import JSON, Message
from .world import World

T = TypeVar("T")


@dataclass(frozen=True)
class UploadedFile:
    """A multipart file part exactly as the client sent it."""

    field: str  # "files[0]"
    filename: str
    data: bytes
    content_type: str


@dataclass
class RecordedRequest:
    method: str
    path: str  # relative to /api/v10, e.g. "/channels/1/messages"
    route: str | None  # the matched template, e.g. "/channels/{channel_id}/messages"
    query: dict[str, str]
    json: Any  # decoded JSON body; for multipart the decoded payload_json
    files: list[UploadedFile]
    headers: dict[str, str]
    at: float  # event-loop time of arrival
    multipart: bool = False
    status: int = 0  # filled in once answered
    response: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


@dataclass
class RateLimitRule:
    """Answer the next ``remaining`` matching requests with 429."""

    method: str
    pattern: re.Pattern[str]
    remaining: int
    retry_after: float
    is_global: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.remaining > 0 and self.method in (method, "*") and bool(self.pattern.search(path))
        )


@dataclass(frozen=True)
class Ack:
    """The bot's interaction callback."""

    type: int  # 4 reply, 5 deferred, 6 deferred update, 7 update, 8 autocomplete, 9 modal
    body: JSON  # the callback body (payload_json for multipart)
    at: float
    latency: float  # seconds from INTERACTION_CREATE being sent to the callback arriving

    @property
    def data(self) -> JSON:
        return self.body.get("data") or {}


@dataclass(frozen=True)
class ModalField:
    """One input of a modal the bot opened, as it sent it."""

    custom_id: str
    type: int  # 4 text input, 3/5/6/7/8 selects, 19 file upload, 21-23 radio/checkboxes
    label: str | None  # the Label's text, or a text input's own (legacy) label
    id: int | None = None  # the component id (Discord numbers those sent without)
    description: str | None = None  # a Label's description
    style: int | None = None  # text inputs: 1 short, 2 paragraph
    value: str | None = None  # a text input's prefilled text (discord.py's ``default``)
    placeholder: str | None = None
    required: bool = True
    min_length: int | None = None
    max_length: int | None = None
    min_values: int | None = None  # selects, file uploads, checkbox groups
    max_values: int | None = None
    options: tuple[JSON, ...] = ()  # string selects, radio and checkbox groups
    in_label: bool = False  # wrapped in a Label (type 18) rather than an action row
    component: JSON = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ModalRecord:
    """A modal the bot answered an interaction with (callback type 9)."""

    custom_id: str
    title: str
    components: list[JSON] = field(repr=False)  # as Discord keeps them: with ids filled in
    fields: list[ModalField]
    texts: list[str] = field(default_factory=list)  # the content of Text Display components

    @classmethod
    def from_components(cls, custom_id: str, title: str, components: list[JSON]) -> ModalRecord:
        fields: list[ModalField] = []
        texts: list[str] = []

        def add(component: JSON, label: JSON | None) -> None:
            holder = label or {}
            fields.append(
                ModalField(
                    custom_id=component["custom_id"],
                    type=component["type"],
                    label=holder.get("label") if label is not None else component.get("label"),
                    id=component.get("id"),
                    description=holder.get("description"),
                    style=component.get("style"),
                    value=component.get("value"),
                    placeholder=component.get("placeholder"),
                    required=component.get("required") is not False,
                    min_length=component.get("min_length"),
                    max_length=component.get("max_length"),
                    min_values=component.get("min_values"),
                    max_values=component.get("max_values"),
                    options=tuple(component.get("options") or ()),
                    in_label=label is not None,
                    component=component,
                )
            )

        for top in components:
            if top.get("type") == 1:
                for child in top.get("components") or []:
                    add(child, None)
            elif top.get("type") == 18:
                add(top["component"], top)
            elif top.get("type") == 10:
                texts.append(top.get("content") or "")
        return cls(custom_id, title, components, fields, texts)

    def field(self, custom_id: str) -> ModalField:
        found = next((f for f in self.fields if f.custom_id == custom_id), None)
        if found is None:
            raise KeyError(f"the modal has no input {custom_id!r}; it has {self.custom_ids}")
        return found

    @property
    def custom_ids(self) -> list[str]:
        return [f.custom_id for f in self.fields]

    @property
    def labels(self) -> list[str | None]:
        return [f.label for f in self.fields]

    @property
    def prefilled(self) -> dict[str, str]:
        """The text inputs that open with text in them: {custom_id: value}."""
        return {f.custom_id: f.value for f in self.fields if f.type == 4 and f.value}


class _Host(Protocol):
    world: World
    requests: list[RecordedRequest]

    def wait_until(
        self, predicate: Callable[[], T | None], timeout: float, what: str
    ) -> Awaitable[T]: ...


@dataclass
class InteractionRecord:
    """One interaction the double sent, and everything the bot did with it."""

    host: _Host = field(repr=False)
    id: int
    token: str
    type: int  # 2 command, 3 component, 4 autocomplete, 5 modal submit
    payload: JSON = field(repr=False)
    guild_id: int
    channel_id: int
    user_id: int
    created_at: float  # loop time when INTERACTION_CREATE was queued
    name: str | None = None  # command name, or the component/modal custom_id
    source_message_id: int | None = None  # the message a component sat on
    opened_by: InteractionRecord | None = field(default=None, repr=False)  # for modal submits
    ack: Ack | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    autocomplete_choices: list[JSON] | None = None
    modal: ModalRecord | None = None  # the modal the bot answered with (ack type 9)
    submits: list[InteractionRecord] = field(default_factory=list, repr=False)  # its submits

    async def wait_ack(self, timeout: float = 5.0) -> Ack:  # noqa: ASYNC109
        """The callback; fails if none arrives within ``timeout`` seconds. Discord's own
        deadline is 3 s (later callbacks get 10062), check ``ack.latency`` for it."""
        return await self.host.wait_until(
            lambda: self.ack, timeout, f"an ack of interaction {self.name!r}"
        )

    def original_message(self) -> Message | None:
        if self.original_message_id is None:
            return None
        message = self.host.world.messages.get(self.original_message_id)
        return None if message is None or message.deleted else message

    async def wait_original(
        self,
        predicate: Callable[[Message], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> Message:
        """The original response once it exists, is no longer "thinking…" (unless a
        predicate is given) and satisfies ``predicate``."""

        def ready() -> Message | None:
            message = self.original_message()
            if message is None:
                return None
            ok = predicate(message) if predicate is not None else not message.loading
            return message if ok else None

        return await self.host.wait_until(ready, timeout, f"the original response of {self.name!r}")

    def followups(self) -> list[Message]:
        messages = (self.host.world.messages.get(i) for i in self.followup_ids)
        return [m for m in messages if m is not None and not m.deleted]

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[Message]:  # noqa: ASYNC109
        def ready() -> list[Message] | None:
            found = self.followups()
            return found if len(found) >= count else None

        return await self.host.wait_until(ready, timeout, f"{count} followup(s) of {self.name!r}")

    def requests(self) -> list[RecordedRequest]:
        """Every callback/webhook request made with this interaction's token."""
        return [r for r in self.host.requests if self.token in r.path]
