"""Code mode's two pure parts: `settings.code` as the config writes it, and the shape of
what a tool returns as an expansion tells it (`groups.code.shapes`)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from groups.code.shapes import MAX_LENGTH, shape
from groups.config import CodeSettings, parse_config
from groups.errors import ConfigError


def settings_text(code: object) -> str:
    return json.dumps({"mcpServers": {}, "settings": {"code": code}})


def test_code_mode_is_off_by_default_true_gives_the_defaults_and_an_object_its_limits():
    assert parse_config(json.dumps({"mcpServers": {}})).settings.code_limits is None
    assert parse_config(settings_text(False)).settings.code_limits is None
    assert parse_config(settings_text(True)).settings.code_limits == CodeSettings()
    limits = parse_config(settings_text({"timeout": "5s", "memory": "1MiB"})).settings
    assert limits.code_limits is not None
    assert limits.code_limits.timeout == timedelta(seconds=5)
    assert limits.code_limits.memory == 1024 * 1024
    assert limits.code_limits.max_calls == CodeSettings().max_calls


@pytest.mark.parametrize(
    ("code", "field"),
    [
        ({"max_call": 3}, "settings.code.max_call"),  # a typo is named, without a union tag
        ({"timeout": 0}, "settings.code.timeout"),  # a run needs some time
        ({"max_calls": 0}, "settings.code.max_calls"),
        ({"memory": "lots"}, "settings.code.memory"),
        ("yes", "settings.code"),  # neither a switch nor limits
    ],
)
def test_a_bad_code_setting_names_its_field(code, field):
    with pytest.raises(ConfigError) as caught:
        parse_config(settings_text(code), "cfg.json")
    assert caught.value.field == field


TIME_RESULT = {
    "properties": {
        "timezone": {"title": "Timezone", "type": "string"},
        "is_dst": {"title": "Is Dst", "type": "boolean"},
    },
    "required": ["timezone", "is_dst"],
    "title": "TimeResult",
    "type": "object",
}


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        # fields and types; a field not required is marked
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                "required": ["a"],
            },
            "{a: string, b?: integer}",
        ),
        # a $ref is followed into $defs
        (
            {
                "$defs": {"TimeResult": TIME_RESULT},
                "type": "object",
                "properties": {"source": {"$ref": "#/$defs/TimeResult"}},
                "required": ["source"],
            },
            "{source: {timezone: string, is_dst: boolean}}",
        ),
        # a recursive type is named where it recurs, not unrolled
        (
            {
                "$defs": {
                    "Node": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                        },
                        "required": ["name", "children"],
                    }
                },
                "$ref": "#/$defs/Node",
            },
            "{name: string, children: Node[]}",
        ),
        # arrays, unions, null, enums, maps
        (
            {
                "type": "object",
                "properties": {
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "level": {"enum": ["low", "high"]},
                    "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "mixed": {"type": "array", "items": {"type": ["string", "number"]}},
                },
                "required": ["tags", "note", "level", "counts", "mixed"],
            },
            '{tags: string[], note: string|null, level: "low"|"high", '
            "counts: {[string]: integer}, mixed: (string|number)[]}",
        ),
        # FastMCP's wrapped result, as the structured content carries it
        (
            {
                "type": "object",
                "properties": {"result": {"type": "integer"}},
                "required": ["result"],
                "x-fastmcp-wrap-result": True,
            },
            "{result: integer}",
        ),
        # what says nothing
        ({"type": "object"}, "object"),
        ({"properties": {"x": {}}, "required": ["x"]}, "{x: any}"),
        ({}, None),
        (None, None),
    ],
)
def test_a_shape_names_every_field_with_its_type(schema, expected):
    assert shape(schema) == expected


def test_a_shape_deeper_than_allowed_or_too_long_says_less_and_never_fails():
    deep: dict = {"type": "string"}
    for level in range(10):
        deep = {"type": "object", "properties": {f"l{level}": deep}, "required": [f"l{level}"]}
    wide = {
        "type": "object",
        "properties": {
            f"field_{n}": {"type": "object", "properties": {"x": {"type": "string"}}}
            for n in range(200)
        },
    }

    assert shape(deep) == "{l9: {l8: {l7: {l6: object}}}}"
    assert len(shape(wide) or "") <= MAX_LENGTH
    assert shape({"type": 3, "properties": "x", "items": [1]}) == "any"  # an upstream's typo
