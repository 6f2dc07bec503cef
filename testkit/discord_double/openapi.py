"""Validation of REST traffic against Discord's official OpenAPI spec (v10).

Set ``DISCORD_OPENAPI_SPEC`` to the spec's path (``openapi.json`` from
discord/discord-api-spec) to enable it; without it nothing is checked, so the tests
still run on machines that lack the file.

The spec's paths are relative to its server URL ``https://discord.com/api/v10``, i.e.
they match the double's paths with ``/api/v10`` stripped. Schemas are JSON Schema
2020-12 with ``#/components/schemas/...`` references; they are resolved through a
``referencing`` registry holding the whole document, and every validator is built once
per process and cached, because the spec is large (1+ MB).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_ENV = "DISCORD_OPENAPI_SPEC"
# Where a developer's and CI's checkout finds Discord's spec: ../shared beside the repo.
SHARED_SPEC_FILE = (Path(__file__).resolve().parents[3] / "shared" / "discord-api-spec"
                    / "openapi.json")
_SPEC_URI = "urn:discord-openapi"
_METHODS = ("get", "put", "post", "patch", "delete")

_draft_type_check = Draft202012Validator.VALIDATORS["type"]


def _type_accepting_int_snowflakes(
    validator: Validator, types: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """Discord accepts integers wherever it documents a snowflake string, and discord.py
    relies on that (attachment ids, message_reference ids, ...): coerce, don't flag."""
    if (
        schema.get("format") == "snowflake"
        and isinstance(instance, int)
        and not isinstance(instance, bool)
        and instance >= 0
    ):
        return
    yield from _draft_type_check(validator, types, instance, schema)


SnowflakeTolerantValidator = extend(
    Draft202012Validator, validators={"type": _type_accepting_int_snowflakes}
)


@dataclass(frozen=True)
class SpecViolation:
    """One request or response that does not conform to the spec."""

    method: str
    path: str
    template: str | None
    location: str  # "path", "query", "body" or "response"
    message: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.template}] {self.location}: {self.message}"


def _pointer(*segments: str) -> str:
    escaped = (s.replace("~", "~0").replace("/", "~1") for s in segments)
    return f"{_SPEC_URI}#/" + "/".join(quote(s, safe="~") for s in escaped)


def _deepest(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf failures, the sub-error that got furthest into the instance (the
    alternative that was probably meant) says more than "not valid under any"."""
    if not error.context:
        return error
    candidates = [_deepest(e) for e in error.context]
    return max(candidates, key=lambda e: len(e.absolute_path))


def _describe(error: ValidationError) -> str:
    error = _deepest(error)
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:300]}"


class OpenApiSpec:
    """The loaded spec: path matching plus cached request/response validators."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource: Resource[Any] = Resource.from_contents(
            document, default_specification=DRAFT202012
        )
        self._registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
        self._validators: dict[str, Validator] = {}
        # Most literal segments first, so ".../messages/@original" beats ".../{message_id}".
        templates = sorted(
            document["paths"],
            key=lambda t: (-sum(1 for s in t.split("/") if s and "{" not in s), t),
        )
        self._matchers: list[tuple[re.Pattern[str], str]] = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(t)) + "$"), t)
            for t in templates
        ]

    def match(self, path: str) -> str | None:
        return next((t for rx, t in self._matchers if rx.match(path)), None)

    def _validator(self, *pointer: str) -> Validator:
        uri = _pointer(*pointer)
        if uri not in self._validators:
            self._validators[uri] = SnowflakeTolerantValidator(
                {"$ref": uri}, registry=self._registry
            )
        return self._validators[uri]

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            node: Any = self.document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
            schema = node
        return schema

    def _operation(self, template: str, method: str) -> Mapping[str, Any] | None:
        return self.document["paths"][template].get(method.lower())

    def check_request(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Any,
        *,
        has_body: bool,
        multipart: bool,
    ) -> list[SpecViolation]:
        def violation(location: str, message: str) -> SpecViolation:
            return SpecViolation(method, path, template, location, message)

        template = self.match(path)
        if template is None:
            return [violation("path", "no such path in the spec")]
        operation = self._operation(template, method)
        if operation is None:
            return [violation("path", f"the spec has no {method} for this path")]
        found = [violation("query", m) for m in self._check_query(operation, query)]
        request_body = operation.get("requestBody")
        if request_body is None:
            if has_body and body not in (None, {}, []):
                found.append(violation("body", "the spec defines no request body"))
            return found
        if not has_body:
            if request_body.get("required"):
                found.append(violation("body", "a request body is required"))
            return found
        kind = "multipart/form-data" if multipart else "application/json"
        if kind not in request_body["content"]:
            found.append(violation("body", f"{kind} is not accepted here"))
            return found
        validator = self._validator(
            "paths", template, method.lower(), "requestBody", "content", kind, "schema"
        )
        error = best_match(validator.iter_errors(body))
        if error is not None:
            found.append(violation("body", _describe(error)))
        return found

    def _check_query(self, operation: Mapping[str, Any], query: Mapping[str, str]) -> Iterator[str]:
        params = {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}
        for name, raw in query.items():
            param = params.get(name)
            if param is None:
                continue  # unknown query parameters are ignored by Discord
            schema = self._resolve(param["schema"])
            value = _coerce_query_value(raw, schema)
            if value is _INVALID:
                yield f"{name}={raw!r} is not a valid {schema.get('type')}"
                continue
            errors = list(SnowflakeTolerantValidator(schema).iter_errors(value))
            if errors:
                yield f"{name}: {errors[0].message}"

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[SpecViolation]:
        template = self.match(path)
        if template is None or status >= 300:
            return []
        operation = self._operation(template, method)
        if operation is None:
            return []
        responses = operation.get("responses", {})
        key = str(status) if str(status) in responses else "2XX" if "2XX" in responses else None
        if key is None:
            return [
                SpecViolation(
                    method, path, template, "response", f"status {status} is not documented"
                )
            ]
        content = responses[key].get("content", {})
        if "application/json" not in content or body is None:
            return []
        validator = self._validator(
            "paths",
            template,
            method.lower(),
            "responses",
            key,
            "content",
            "application/json",
            "schema",
        )
        error = best_match(validator.iter_errors(body))
        if error is None:
            return []
        return [SpecViolation(method, path, template, "response", _describe(error))]


_INVALID = object()


def _coerce_query_value(raw: str, schema: Mapping[str, Any]) -> Any:
    """Query strings arrive as text; discord.py writes booleans as ``1``/``0``."""
    kind = schema.get("type")
    if kind == "boolean":
        lowered = raw.lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        return _INVALID
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            return _INVALID
    return raw


@functools.cache
def load_spec(path: str) -> OpenApiSpec:
    """The parsed spec; cached for the process, since parsing it takes a while."""
    with Path(path).open(encoding="utf-8") as fh:
        return OpenApiSpec(json.load(fh))


def spec_from_env(getenv: Callable[[str], str | None] = os.environ.get) -> OpenApiSpec | None:
    """The spec named by ``DISCORD_OPENAPI_SPEC``, or None when it is unset."""
    path = getenv(SPEC_ENV)
    if not path:
        return None
    return load_spec(str(Path(path).resolve()))
