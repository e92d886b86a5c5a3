"""A small walker over the OpenAPI body schema `v1Event`, as Moloco's JSON decoder reads it.

Checks types, enums, `maxLength`, `required` and `$ref`s; extra properties are accepted. Like
protobuf's JSON mapping, a `null` counts as an absent field and an int32/int64 may be a JSON
number or a decimal string (so `timestamp` may be either). Keywords the walker does not know
(`allOf`, `oneOf`, ...) make compiling fail, so a changed spec cannot be under-checked silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from typing import Any

BODY_SCHEMA = "v1Event"
# The server, not the schema: an item needs `id` or `item_group_id` (checked in rules.py).
SERVER_IGNORES_REQUIRED = {"EventItem": frozenset({"id"})}

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_INT_TEXT = re.compile(r"-?[0-9]+")
_UNSUPPORTED = ("allOf", "oneOf", "anyOf", "not", "patternProperties")


@dataclass(slots=True, eq=False)
class Node:
    """One compiled schema; `$ref`s point at shared nodes."""

    type: str | None = None
    int_range: tuple[int, int] | None = None
    enum: frozenset[str] | None = None
    max_length: int | None = None
    properties: dict[str, Node] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    items: Node | None = None


def load_spec() -> dict[str, Any]:
    """Read the OpenAPI document shipped in `core`."""
    text = (files("eventfwd.core") / "moloco" / "mcm-event-api.openapi.json").read_text("utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec


def compile_schema(spec: dict[str, Any], name: str = BODY_SCHEMA) -> Node:
    """Compile the named component schema of `spec` into a tree of `Node`s."""
    memo: dict[str, Node] = {}

    def resolve(ref: str) -> Node:
        if not ref.startswith("#/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        if ref in memo:
            return memo[ref]
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part]
        node = memo[ref] = Node()
        fill(node, target, ref.rsplit("/", 1)[1])
        return node

    def build(schema: dict[str, Any]) -> Node:
        if "$ref" in schema:
            return resolve(schema["$ref"])
        node = Node()
        fill(node, schema, None)
        return node

    def fill(node: Node, schema: dict[str, Any], schema_name: str | None) -> None:
        for keyword in _UNSUPPORTED:
            if keyword in schema:
                raise ValueError(f"unsupported schema keyword {keyword!r} in {schema_name}")
        node.type = schema.get("type")
        fmt = schema.get("format")
        if fmt in _INT_RANGES and node.type in ("integer", "string"):
            node.int_range = _INT_RANGES[fmt]
        if "enum" in schema:
            node.enum = frozenset(schema["enum"])
        node.max_length = schema.get("maxLength")
        ignored = SERVER_IGNORES_REQUIRED.get(schema_name or "", frozenset())
        node.required = tuple(r for r in schema.get("required", ()) if r not in ignored)
        node.properties = {k: build(v) for k, v in schema.get("properties", {}).items()}
        if "items" in schema:
            node.items = build(schema["items"])

    return resolve(f"#/components/schemas/{name}")


@cache
def body_schema() -> Node:
    """The compiled `v1Event` schema, loaded once."""
    return compile_schema(load_spec())


def check(node: Node, value: Any, path: str = "") -> str | None:
    """Return the first way `value` breaks `node`, as a message, or None."""
    kind = node.type
    where = path[:-1]  # children get "name." prefixes; drop the trailing dot
    if kind == "object":
        if type(value) is not dict:
            return _invalid("object", where, value)
        for name in node.required:
            if value.get(name) is None:
                return f"missing required field {path}{name}"
        properties = node.properties
        for name, child_value in value.items():
            child = properties.get(name)
            if child is not None and child_value is not None:
                error = check(child, child_value, f"{path}{name}.")
                if error:
                    return error
        return None
    if node.int_range is not None:
        number = as_int(value)
        low, high = node.int_range
        if number is None or not low <= number <= high:
            return _invalid("int64" if high > 2**31 else "int32", where, value)
        return None
    if kind == "string":
        if type(value) is not str:
            return _invalid("enum" if node.enum else "string", where, value)
        if node.enum is not None and value not in node.enum:
            return _invalid("enum", where, value)
        if node.max_length is not None and len(value) > node.max_length:
            return f"{where} is longer than {node.max_length} characters"
        return None
    if kind == "array":
        if type(value) is not list:
            return _invalid("array", where, value)
        if node.items is not None:
            for index, item in enumerate(value):
                if item is not None:
                    error = check(node.items, item, f"{where}[{index}].")
                    if error:
                        return error
        return None
    if kind == "number":
        if type(value) not in (int, float):
            return _invalid("number", where, value)
        return None
    if kind == "integer":
        if as_int(value) is None:
            return _invalid("integer", where, value)
        return None
    if kind == "boolean" and type(value) is not bool:
        return _invalid("boolean", where, value)
    return None


def as_int(value: Any) -> int | None:
    """Read an integer the way protobuf JSON does: a whole number or a decimal string."""
    kind = type(value)
    if kind is int:
        return int(value)
    if kind is str and _INT_TEXT.fullmatch(value):
        return int(value)
    if kind is float and value.is_integer():
        return int(value)
    return None


def _invalid(kind: str, path: str, value: Any) -> str:
    shown = json.dumps(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"invalid value for {kind} field {path}: {shown}"
