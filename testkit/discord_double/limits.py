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


# ----- modals (interaction callback type 9) ------------------------------------------------

MODAL_TITLE_MAX = 45
MODAL_COMPONENTS_MAX = 5
MODAL_LABEL_MAX = 45
MODAL_LABEL_DESCRIPTION_MAX = 100
TEXT_INPUT_VALUE_MAX = 4000
TEXT_INPUT_PLACEHOLDER_MAX = 100
TEXT_DISPLAY_MAX = 4000
SELECT_PLACEHOLDER_MAX = 150
FILE_UPLOAD_VALUES_MAX = 10
# What a Label may hold in a modal: selects, a text input, a file upload, radio and
# checkbox groups, a checkbox.
LABEL_CHILD_TYPES = {3, 4, 5, 6, 7, 8, 19, 21, 22, 23}
MODAL_TOP_TYPES = (1, 10, 18)


def _required(path: str) -> ApiError:
    return form_error(path, "BASE_TYPE_REQUIRED", "This field is required")


def _bad_length(path: str, low: int, high: int) -> ApiError:
    return form_error(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _check_text(path: str, value: Any, high: int, *, low: int = 0, required: bool = False) -> None:
    if value is None:
        if required:
            raise _required(path)
        return
    if not isinstance(value, str):
        raise form_error(path, "STRING_TYPE_CONVERT", "Could not interpret value as string.")
    if len(value) > high:
        raise _too_long(path, high)
    if len(value) < low:
        raise _bad_length(path, low, high)


def _check_int(path: str, value: Any, low: int, high: int) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise form_error(path, "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.')
    if value < low:
        raise form_error(
            path, "NUMBER_TYPE_MIN", f"Int value should be greater than or equal to {low}."
        )
    if value > high:
        raise form_error(
            path, "NUMBER_TYPE_MAX", f"Int value should be less than or equal to {high}."
        )


def _check_text_input(path: str, component: dict[str, Any], seen: set[str], *,
                      labelled: bool) -> None:
    _check_custom_id(path, component, seen)
    if component.get("style") not in (1, 2):
        raise form_error(f"{path}.style", "BASE_TYPE_CHOICES", "Value must be one of {1, 2}.")
    # A text input in an action row carries its own (now deprecated) label; inside a
    # Label component the Label holds it.
    _check_text(f"{path}.label", component.get("label"), MODAL_LABEL_MAX, low=1,
                required=not labelled)
    _check_text(f"{path}.value", component.get("value"), TEXT_INPUT_VALUE_MAX)
    _check_text(f"{path}.placeholder", component.get("placeholder"), TEXT_INPUT_PLACEHOLDER_MAX)
    low, high = component.get("min_length"), component.get("max_length")
    _check_int(f"{path}.min_length", low, 0, TEXT_INPUT_VALUE_MAX)
    _check_int(f"{path}.max_length", high, 1, TEXT_INPUT_VALUE_MAX)
    if low is not None and high is not None and low > high:
        raise form_error(
            f"{path}.min_length",
            "TEXT_INPUT_MIN_LENGTH_GREATER_THAN_MAX",
            "min_length must be less than or equal to max_length",
        )


def _check_modal_select(path: str, component: dict[str, Any], seen: set[str]) -> None:
    _check_custom_id(path, component, seen)
    _check_text(f"{path}.placeholder", component.get("placeholder"), SELECT_PLACEHOLDER_MAX)
    _check_int(f"{path}.min_values", component.get("min_values"), 0, 25)
    _check_int(f"{path}.max_values", component.get("max_values"), 1, 25)
    if component.get("type") == 3:
        options = component.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= 25:
            raise _bad_length(f"{path}.options", 1, 25)


def _check_label_child(path: str, component: Any, seen: set[str]) -> None:
    if not isinstance(component, dict):
        raise _required(path)
    kind = component.get("type")
    if kind not in LABEL_CHILD_TYPES:
        allowed = ", ".join(map(str, sorted(LABEL_CHILD_TYPES)))
        message = f'Value of field "type" must be one of ({allowed}).'
        raise form_error(f"{path}.type", "UNION_TYPE_CHOICES", message)
    if kind == 4:
        _check_text_input(path, component, seen, labelled=True)
    elif kind in SELECT_TYPES:
        _check_modal_select(path, component, seen)
    elif kind == 19:
        _check_custom_id(path, component, seen)
        _check_int(f"{path}.min_values", component.get("min_values"), 0, FILE_UPLOAD_VALUES_MAX)
        _check_int(f"{path}.max_values", component.get("max_values"), 1, FILE_UPLOAD_VALUES_MAX)
    else:  # radio group, checkbox group, checkbox
        _check_custom_id(path, component, seen)


def check_modal(data: Any, path: str = "data") -> None:
    """Raise the 400 Discord answers for an invalid modal (the ``data`` of a type 9
    interaction callback): a 1-45 character title, a 1-100 character custom_id and 1-5
    top-level components, each an action row holding one text input, a Label holding
    one input, or a Text Display; text inputs within Discord's length limits."""
    if not isinstance(data, dict):
        raise _required(path)
    _check_text(f"{path}.title", data.get("title"), MODAL_TITLE_MAX, low=1, required=True)
    custom_id = data.get("custom_id")
    if custom_id is None:
        raise _required(f"{path}.custom_id")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= CUSTOM_ID_MAX:
        raise _bad_length(f"{path}.custom_id", 1, CUSTOM_ID_MAX)
    components = data.get("components")
    if components is None:
        raise _required(f"{path}.components")
    if not isinstance(components, list) or not 1 <= len(components) <= MODAL_COMPONENTS_MAX:
        raise _bad_length(f"{path}.components", 1, MODAL_COMPONENTS_MAX)
    seen: set[str] = set()
    for i, component in enumerate(components):
        here = f"{path}.components.{i}"
        kind = component.get("type") if isinstance(component, dict) else None
        if kind not in MODAL_TOP_TYPES:
            raise form_error(
                f"{here}.type",
                "UNION_TYPE_CHOICES",
                'Value of field "type" must be one of (1, 10, 18).',
            )
        if kind == 1:
            children = component.get("components") or []
            if len(children) != 1:
                raise _bad_length(f"{here}.components", 1, 1)
            child = children[0]
            if not isinstance(child, dict) or child.get("type") != 4:
                raise form_error(
                    f"{here}.components.0.type",
                    "UNION_TYPE_CHOICES",
                    'Value of field "type" must be one of (4).',
                )
            _check_text_input(f"{here}.components.0", child, seen, labelled=False)
        elif kind == 18:
            _check_text(f"{here}.label", component.get("label"), MODAL_LABEL_MAX, low=1,
                        required=True)
            _check_text(f"{here}.description", component.get("description"),
                        MODAL_LABEL_DESCRIPTION_MAX, low=1)
            _check_label_child(f"{here}.component", component.get("component"), seen)
        else:
            _check_text(f"{here}.content", component.get("content"), TEXT_DISPLAY_MAX, low=1,
                        required=True)
