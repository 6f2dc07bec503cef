"""The limits Discord enforces server-side on message and command bodies.

The OpenAPI spec is looser than the live API in places (it allows 4000-character
content, for instance), so the double checks the documented bot limits itself and
answers the same 400/413 errors Discord would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .errors import ApiError, empty_message, form_error, too_large

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
ATTACHMENTS_MAX = 10
ROWS_MAX = 5
BUTTONS_PER_ROW_MAX = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
V2_COMPONENTS_MAX = 40
COMMAND_NAME_MAX = 32
COMMAND_DESCRIPTION_MAX = 100
COMMAND_OPTIONS_MAX = 25
CHOICES_MAX = 25
SELECT_TYPES = {3, 5, 6, 7, 8}
IS_COMPONENTS_V2 = 1 << 15

_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")


def _too_long(path: str, limit: int) -> ApiError:
    return form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def check_embeds(embeds: Sequence[dict[str, Any]]) -> None:
    if len(embeds) > EMBEDS_MAX:
        raise _too_long("embeds", EMBEDS_MAX)
    total = 0
    for i, embed in enumerate(embeds):
        limits = {"title": 256, "description": 4096}
        for key, limit in limits.items():
            if _text_len(embed.get(key)) > limit:
                raise _too_long(f"embeds.{i}.{key}", limit)
            total += _text_len(embed.get(key))
        fields = embed.get("fields") or []
        if len(fields) > 25:
            raise _too_long(f"embeds.{i}.fields", 25)
        for j, fld in enumerate(fields):
            if _text_len(fld.get("name")) > 256:
                raise _too_long(f"embeds.{i}.fields.{j}.name", 256)
            if _text_len(fld.get("value")) > 1024:
                raise _too_long(f"embeds.{i}.fields.{j}.value", 1024)
            total += _text_len(fld.get("name")) + _text_len(fld.get("value"))
        footer = (embed.get("footer") or {}).get("text")
        author = (embed.get("author") or {}).get("name")
        if _text_len(footer) > 2048:
            raise _too_long(f"embeds.{i}.footer.text", 2048)
        if _text_len(author) > 256:
            raise _too_long(f"embeds.{i}.author.name", 256)
        total += _text_len(footer) + _text_len(author)
    if total > EMBED_TOTAL_MAX:
        raise form_error(
            "embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000"
        )


def _check_custom_id(path: str, component: dict[str, Any], seen: set[str]) -> None:
    custom_id = component.get("custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= CUSTOM_ID_MAX:
        raise form_error(
            f"{path}.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
        )
    if custom_id in seen:
        raise form_error(
            f"{path}.custom_id",
            "COMPONENT_CUSTOM_ID_DUPLICATED",
            "Component custom id cannot be duplicated",
        )
    seen.add(custom_id)


def _check_button(path: str, button: dict[str, Any], seen: set[str]) -> None:
    if _text_len(button.get("label")) > BUTTON_LABEL_MAX:
        raise _too_long(f"{path}.label", BUTTON_LABEL_MAX)
    style = button.get("style")
    if style == 5:  # link buttons carry a url and no custom_id
        if not button.get("url") or "custom_id" in button:
            raise form_error(path, "BUTTON_COMPONENT_INVALID_URL", "A link button needs a url only")
    elif style != 6:  # premium buttons use sku_id
        _check_custom_id(path, button, seen)


def check_components(components: Sequence[dict[str, Any]], flags: int) -> None:
    seen: set[str] = set()
    if flags & IS_COMPONENTS_V2:
        count = 0

        def walk(items: Sequence[dict[str, Any]], path: str) -> None:
            nonlocal count
            for i, item in enumerate(items):
                count += 1
                here = f"{path}.{i}"
                if item.get("type") == 2:
                    _check_button(here, item, seen)
                elif item.get("type") in SELECT_TYPES:
                    _check_custom_id(here, item, seen)
                walk(item.get("components") or [], f"{here}.components")
                accessory = item.get("accessory")
                if isinstance(accessory, dict):
                    walk([accessory], f"{here}.accessory")

        walk(components, "components")
        if count > V2_COMPONENTS_MAX:
            raise _too_long("components", V2_COMPONENTS_MAX)
        return
    if len(components) > ROWS_MAX:
        raise _too_long("components", ROWS_MAX)
    for i, row in enumerate(components):
        path = f"components.{i}"
        if row.get("type") != 1:
            raise form_error(
                f"{path}.type", "UNION_TYPE_CHOICES", "Top-level components must be action rows"
            )
        children = row.get("components") or []
        if not children:
            raise form_error(
                f"{path}.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
            )
        kinds = {c.get("type") for c in children}
        if kinds & SELECT_TYPES and len(children) > 1:
            raise form_error(
                f"{path}.components",
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "A select menu fills its row",
            )
        if len(children) > BUTTONS_PER_ROW_MAX:
            raise _too_long(f"{path}.components", BUTTONS_PER_ROW_MAX)
        for j, child in enumerate(children):
            here = f"{path}.components.{j}"
            if child.get("type") == 2:
                _check_button(here, child, seen)
            elif child.get("type") in SELECT_TYPES:
                _check_custom_id(here, child, seen)
                options = child.get("options")
                if child.get("type") == 3 and (not options or len(options) > 25):
                    raise form_error(
                        f"{here}.options",
                        "BASE_TYPE_BAD_LENGTH",
                        "Must be between 1 and 25 in length.",
                    )
            else:
                raise form_error(f"{here}.type", "UNION_TYPE_CHOICES", "Not allowed in a message")


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "content": (str,),
    "embeds": (list,),
    "components": (list,),
    "attachments": (list,),
    "flags": (int,),
    "allowed_mentions": (dict,),
    "message_reference": (dict,),
    "tts": (bool,),
}


def _check_types(body: dict[str, Any]) -> None:
    for key, types in _FIELD_TYPES.items():
        value = body.get(key)
        if value is not None and not isinstance(value, types):
            raise form_error(key, "BASE_TYPE_INVALID", f"Expected {types[0].__name__} for {key}")
    for key in ("embeds", "components", "attachments"):
        for i, item in enumerate(body.get(key) or []):
            if not isinstance(item, dict):
                raise form_error(
                    f"{key}.{i}", "DICT_TYPE_CONVERT", "Only dictionaries may be used here"
                )


def check_message(
    body: dict[str, Any],
    file_sizes: Sequence[int],
    *,
    size_limit: int,
    creating: bool,
    kept_attachments: int = 0,
) -> None:
    """Raise the ApiError Discord would answer for this message create/edit body."""
    _check_types(body)
    for size in file_sizes:
        if size > size_limit:
            raise too_large()
    content = body.get("content")
    if isinstance(content, str) and len(content) > CONTENT_MAX:
        raise _too_long("content", CONTENT_MAX)
    flags = body.get("flags") or 0
    if flags & IS_COMPONENTS_V2 and (content or body.get("embeds")):
        raise form_error(
            "content",
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used with components v2",
        )
    check_embeds(body.get("embeds") or [])
    check_components(body.get("components") or [], flags)
    if len(file_sizes) + kept_attachments > ATTACHMENTS_MAX:
        raise _too_long("attachments", ATTACHMENTS_MAX)
    has_something = (
        content
        or body.get("embeds")
        or body.get("components")
        or file_sizes
        or body.get("sticker_ids")
        or body.get("poll")
    )
    if creating and not has_something:
        raise empty_message()


def _check_name(path: str, name: Any, command_type: int) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= COMMAND_NAME_MAX:
        raise form_error(path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
    if command_type == 1 and (not _COMMAND_NAME.match(name) or name != name.lower()):
        raise form_error(
            path, "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}"
        )


def _check_description(path: str, description: Any) -> None:
    if not isinstance(description, str) or not 1 <= len(description) <= COMMAND_DESCRIPTION_MAX:
        raise form_error(path, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")


def _check_options(path: str, options: Sequence[dict[str, Any]]) -> None:
    if len(options) > COMMAND_OPTIONS_MAX:
        raise _too_long(path, COMMAND_OPTIONS_MAX)
    names: set[str] = set()
    optional_seen = False
    for i, option in enumerate(options):
        here = f"{path}.{i}"
        _check_name(f"{here}.name", option.get("name"), 1)
        _check_description(f"{here}.description", option.get("description"))
        if option["name"] in names:
            raise form_error(
                f"{here}.name",
                "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                "Duplicate option name",
            )
        names.add(option["name"])
        if option.get("type") in (1, 2):
            _check_options(f"{here}.options", option.get("options") or [])
            continue
        if option.get("required"):
            if optional_seen:
                raise form_error(
                    f"{here}.required",
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            optional_seen = True
        choices = option.get("choices") or []
        if len(choices) > CHOICES_MAX:
            raise _too_long(f"{here}.choices", CHOICES_MAX)
        for j, choice in enumerate(choices):
            if not 1 <= _text_len(choice.get("name")) <= 100:
                raise form_error(
                    f"{here}.choices.{j}.name",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )


def check_command(body: dict[str, Any], path: str = "") -> None:
    """Raise what Discord answers for an invalid application command payload."""
    prefix = f"{path}." if path else ""
    command_type = body.get("type", 1)
    _check_name(f"{prefix}name", body.get("name"), command_type)
    if command_type == 1:
        _check_description(f"{prefix}description", body.get("description"))
        _check_options(f"{prefix}options", body.get("options") or [])


def check_commands(bodies: Sequence[dict[str, Any]]) -> None:
    seen: set[tuple[int, str]] = set()
    for i, body in enumerate(bodies):
        check_command(body, str(i))
        key = (body.get("type", 1), body["name"])
        if key in seen:
            raise form_error(
                f"{i}.name",
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {body['name']}",
            )
        seen.add(key)
    if sum(1 for b in bodies if b.get("type", 1) == 1) > 100:
        raise _too_long("", 100)
