"""``llmrelay chat --schema``/``--schema-file``/``--tool``: JSON Schemas and tools from text.

A schema is JSON (an object schema) or the concise syntax of simonw's ``llm --schema``
(https://llm.datasette.io/en/stable/schemas.html#concise-llm-schema-syntax): fields
separated by commas, or by newlines when there is one; each ``name [type][: description]``
with type ``str`` (the default), ``int``, ``float`` or ``bool``. Every field is required.
``"name, age int, bio: a short biography"`` is
``{"type": "object", "properties": {"name": {"type": "string"}, "age": {"type":
"integer"}, "bio": {"type": "string", "description": "a short biography"}}, "required":
["name", "age", "bio"]}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

__all__ = ["parse_schema", "parse_tool", "response_format"]

_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_FIELD = re.compile(r"^\s*([A-Za-z_][\w-]*)(?:\s+(\w+))?\s*(?::\s*(.*?))?\s*$", re.DOTALL)


def parse_schema(text: str, where: str = "--schema") -> dict[str, Any]:
    """A JSON Schema from JSON text or the concise syntax (see the module docstring).

    Raises:
        click.BadParameter: invalid JSON, a JSON value that is not an object, or a
            concise field that does not parse.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            schema = json.loads(stripped)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint=where) from None
        if not isinstance(schema, dict):
            raise click.BadParameter("a schema is a JSON object", param_hint=where)
        return schema
    separator = "\n" if "\n" in stripped else ","
    properties: dict[str, Any] = {}
    for piece in stripped.split(separator):
        if not piece.strip():
            continue
        match = _FIELD.match(piece)
        kind = match.group(2) if match else None
        if match is None or (kind is not None and kind not in _TYPES):
            raise click.BadParameter(
                f"{piece.strip()!r:.80} is not 'name [str|int|float|bool][: description]'",
                param_hint=where,
            )
        spec: dict[str, Any] = {"type": _TYPES[kind or "str"]}
        if match.group(3):
            spec["description"] = match.group(3)
        properties[match.group(1)] = spec
    if not properties:
        raise click.BadParameter("the schema has no fields", param_hint=where)
    return {"type": "object", "properties": properties, "required": list(properties)}


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``response_format`` asking for JSON that follows ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


def parse_tool(text: str) -> dict[str, Any]:
    """A ``--tool`` value: OpenAI's tool object, or its ``function`` part alone.

    Raises:
        click.BadParameter: not JSON, or not an object with a ``name`` (or ``function``).
    """
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--tool") from None
    if isinstance(value, dict) and "function" in value:
        return value
    if isinstance(value, dict) and "name" in value:
        return {"type": "function", "function": value}
    raise click.BadParameter(
        'a tool is {"name", "description"?, "parameters"?} or OpenAI\'s tool object',
        param_hint="--tool",
    )
