"""Decode a tool's config text (JSON, JSON with comments, TOML) into plain Python data.

    data = decode("jsonc", text)    # {"mcp": {...}}

Guarantees: `decode` returns a dict or raises `SourceSyntaxError` carrying the parser's
problem and, when the parser located it, the 1-based line and column. No parser exception
escapes, so the command can name the file, line and column in one place.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any, Literal

import json5

__all__ = ["Format", "SourceSyntaxError", "decode", "kind_of", "section"]

Format = Literal["json", "jsonc", "toml"]

# json5 reports "<string>:3 Unexpected "}" at column 5"; tomllib "... (at line 3, column 5)".
_JSON5_WHERE = re.compile(r"^<string>:(\d+) (.*) at column (\d+)$", re.DOTALL)
_TOML_WHERE = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.DOTALL)
_TOML_AT_END = re.compile(r"^(.*) \(at end of document\)$", re.DOTALL)


class SourceSyntaxError(ValueError):
    """The text is not valid in its format, or its top level is not an object/table."""

    def __init__(self, problem: str, line: int | None = None, column: int | None = None) -> None:
        self.problem = problem
        self.line = line
        self.column = column
        super().__init__(problem)


def decode(fmt: Format, text: str) -> dict[str, Any]:
    """Parse `text` as `fmt`; JSONC also accepts plain JSON (it is tried first, being faster).

    Raises:
        SourceSyntaxError: the text does not parse, or is not an object at the top.
    """
    if fmt == "toml":
        data: Any = _toml(text)
    else:
        data = _json(text, allow_comments=fmt == "jsonc")
    if not isinstance(data, dict):
        raise SourceSyntaxError(f"expected an object at the top, got {kind_of(data)}", 1, 1)
    return data


def section(data: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The object under `key`, None when absent.

    Raises:
        SourceSyntaxError: it is there but not an object.
    """
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SourceSyntaxError(f"{key!r} must be an object of servers, got {kind_of(value)}")
    return value


def _json(text: str, *, allow_comments: bool) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if not allow_comments:
            raise SourceSyntaxError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    try:
        return json5.loads(text)
    except ValueError as exc:
        match = _JSON5_WHERE.match(str(exc))
        if match is None:  # json5 says "Empty strings are not legal JSON5" without a place
            raise SourceSyntaxError(f"invalid JSON: {exc}", 1, 1) from None
        line, problem, column = match.groups()
        raise SourceSyntaxError(f"invalid JSON: {problem}", int(line), int(column)) from None


def _toml(text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if match := _TOML_WHERE.match(message):
            problem, line, column = match.groups()
            raise SourceSyntaxError(f"invalid TOML: {problem}", int(line), int(column)) from None
        if match := _TOML_AT_END.match(message):
            lines = text.split("\n")
            raise SourceSyntaxError(
                f"invalid TOML: {match.group(1)}", len(lines), len(lines[-1]) + 1
            ) from None
        raise SourceSyntaxError(f"invalid TOML: {message}") from None


def kind_of(value: Any) -> str:
    """A JSON-ish name for the type of a decoded value, for error messages."""
    names = {str: "a string", bool: "true/false", list: "a list", dict: "an object"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
