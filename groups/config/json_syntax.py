"""The likely cause of a JSON syntax error, in the words of someone editing the file.

    cause = likely_cause(text, error)   # "a trailing comma at the end of line 4: …" or None

Python's `json` says where it gave up ("Expecting property name enclosed in double
quotes: line 5 column 3"), which is often a line after the mistake. The mistakes people
make in a hand-edited config are few: a trailing comma, a missing comma, single quotes, a
comment, a Windows path's backslashes, a file cut short. Each is recognised from the text
around the position; anything else has no guess (None), rather than a wrong one.
"""

from __future__ import annotations

import json

__all__ = ["likely_cause"]


def likely_cause(text: str, error: json.JSONDecodeError) -> str | None:
    """What most likely broke `text` where `error` says it did, or None."""
    message, position = error.msg, error.pos
    before = text[:position].rstrip()
    here = text[position : position + 2]
    if not text.strip():
        return "the file is empty (saved half-way?)"
    if message.startswith("Illegal trailing comma") or (
        before.endswith(",") and _expects_item(message) and here[:1] in ("}", "]")
    ):
        return _trailing_comma(before, error.lineno)
    if _expects_item(message):
        if here[:1] == "'":
            return "a text in single quotes: JSON takes double quotes"
        if here in ("//", "/*") or here[:1] == "#":
            return "a comment: JSON has none"
        if position >= len(text.rstrip()):
            return "the file ends too soon: a closing brace or bracket is missing"
        if message.startswith("Expecting property name") and here[:1].isalpha():
            return "a key without double quotes around it"
    if message.startswith("Expecting ',' delimiter"):
        return _missing_comma(before, error.lineno)
    if message.startswith("Invalid \\escape"):
        return r"a backslash in a text: write it twice (C:\\Users) or use / instead"
    if message.startswith(("Unterminated string", "Invalid control character")):
        return "a text whose closing double quote is missing, or a line break inside one"
    if message.startswith("Extra data"):
        return "something after the config's closing brace: a brace too many, or a second object"
    return None


def _expects_item(message: str) -> bool:
    """The parser wanted a key or a value here."""
    return message.startswith(("Expecting property name", "Expecting value"))


def _trailing_comma(before: str, line: int) -> str:
    comma_line = before.count("\n") + 1
    where = f"at the end of line {comma_line}" if comma_line < line else "just before"
    return f"a trailing comma {where}: JSON allows none after the last item"


def _missing_comma(before: str, line: int) -> str:
    value_line = before.count("\n") + 1
    if value_line < line:
        return f"a comma missing at the end of line {value_line}"
    return "a comma missing between two items"
