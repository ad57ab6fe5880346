"""What a tool returns, in a few words: its output schema as field names and types.

    shape({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    # '{n: integer}'
    shape(time_tools["convert_time"].output_schema)
    # '{source: {timezone: string, datetime: string, day_of_week: string, is_dst: boolean},
    #   target: {…the same…}, time_difference: string}'

A model chaining results in code must know their shape; the raw schema says it at several
times the tokens (titles, descriptions, `$defs`, `additionalProperties`). The notation:
`{a: string, b?: integer}` (`?`: not required), `string[]`, `{[string]: number}` for a
map, `"a"|"b"` for an enum, `A|B` for a union, `any` where the schema says nothing.

Guarantees: every property an object declares is named, with its type, down to
`MAX_DEPTH` levels of nesting (deeper, `object` or `array`); a `$ref` is followed to its
`$defs` entry, once per path (a recursive type is named, not unrolled); the text stays
under `MAX_LENGTH` characters, shallower when it would not; never an error, whatever the
schema holds (an upstream writes it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "shape"]

MAX_DEPTH = 4  # objects within objects: deep enough for a result, short enough to read
MAX_LENGTH = 800  # characters: a shape is a hint next to the tool, not a second schema


def shape(schema: Mapping[str, Any] | None) -> str | None:
    """The shape of what a tool with this output schema returns; None without one."""
    if not isinstance(schema, Mapping) or not schema:
        return None
    text = ""
    for depth in range(MAX_DEPTH, 0, -1):
        text = _Shapes(schema).of(schema, depth, ())
        if len(text) <= MAX_LENGTH:
            return text
    return text[: MAX_LENGTH - 1] + "…"


class _Shapes:
    """Shapes within one schema, whose `$defs` its `$ref`s point into."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        definitions = root.get("$defs", root.get("definitions", {}))
        self._definitions = definitions if isinstance(definitions, Mapping) else {}

    def of(self, schema: Any, depth: int, seen: tuple[str, ...]) -> str:
        """`schema`'s shape, objects and arrays spelled out `depth` levels down; `seen`:
        the `$ref`s followed on the way here."""
        if not isinstance(schema, Mapping):
            return "any"
        reference = schema.get("$ref")
        if isinstance(reference, str):
            name = reference.rsplit("/", 1)[-1]
            target = self._definitions.get(name)
            if target is None or name in seen:
                return name
            return self.of(target, depth, (*seen, name))
        if "const" in schema:
            return _literal(schema["const"])
        if isinstance(schema.get("enum"), list):
            return "|".join(_literal(value) for value in schema["enum"]) or "any"
        for combined in ("anyOf", "oneOf"):
            if isinstance(schema.get(combined), list):
                options = [self.of(option, depth, seen) for option in schema[combined]]
                return "|".join(dict.fromkeys(options)) or "any"
        if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            return self.of(schema["allOf"][0], depth, seen)
        kind = schema.get("type")
        if isinstance(kind, list):
            others = {key: value for key, value in schema.items() if key != "type"}
            return "|".join(self.of({**others, "type": one}, depth, seen) for one in kind)
        if kind == "array" or (kind is None and "items" in schema):
            return self._array(schema, depth, seen)
        if kind == "object" or (kind is None and "properties" in schema):
            return self._object(schema, depth, seen)
        return kind if isinstance(kind, str) else "any"

    def _array(self, schema: Mapping[str, Any], depth: int, seen: tuple[str, ...]) -> str:
        items = schema.get("items")
        if depth <= 0 or not isinstance(items, Mapping):
            return "array"
        item = self.of(items, depth - 1, seen)
        return f"({item})[]" if "|" in item else f"{item}[]"

    def _object(self, schema: Mapping[str, Any], depth: int, seen: tuple[str, ...]) -> str:
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if depth <= 0:
            return "object"
        if isinstance(properties, Mapping) and properties:
            required = schema.get("required")
            needed = set(required) if isinstance(required, list) else set()
            fields = [
                f"{name}{'' if name in needed else '?'}: {self.of(value, depth - 1, seen)}"
                for name, value in properties.items()
            ]
            return "{" + ", ".join(fields) + "}"
        if isinstance(extra, Mapping) and extra:
            return "{[string]: " + self.of(extra, depth - 1, seen) + "}"
        return "object"


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
