"""Pydantic's validation errors as a config's problems: every one, each named by its path.

    problems = config_problems(validation_error)
    # [ConfigProblem("unknown field; did you mean 'command'?", "time", "mcpServers.time.comand")]

Guarantees:
- every error pydantic found is a problem, in the file's order, except a required field
  reported missing only because a near miss of it was written instead (`comand` is one
  problem, not also "command is missing");
- a path reads as the config writes it, `mcpServers.<group>.<field>`: the tags pydantic
  adds for a union (`stdio`, `http`, `sse`) and for a validator are dropped, and only
  those, so a group named `http` keeps its name;
- an unknown field close to a field the same object may have is given a suggestion
  (`comand` → `command`); a value written is quoted only when it cannot be a secret (a
  number, true or false, a `type`), never a text, an object or a list.
"""

from __future__ import annotations

import difflib
import json
import types
from collections.abc import Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from groups.config.model import Config, HttpServer, SseServer, StdioServer
from groups.errors import ConfigProblem

__all__ = ["config_problems"]

SUGGESTION_CUTOFF = 0.6  # difflib's ratio: `cmd` → `command` is 0.6, `comand` 0.92
_SERVERS = (StdioServer, HttpServer, SseServer)
_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "int_type": "a whole number",
}
# Values worth quoting: how the entry chose its kind. Any other input may be a secret.
_QUOTABLE_FIELDS = frozenset({"type", "enabled", "sessions", "oauth_grant"})


def config_problems(exc: ValidationError) -> list[ConfigProblem]:
    """Every problem of `exc`, each naming its server and field."""
    found = [_Found.of(error) for error in exc.errors()]
    # A stdio entry without `command` that has a near miss of a remote field (`uri`) may
    # be a remote entry: suggest from every kind of server there.
    commandless = {f.parent for f in found if f.kind == "missing" and f.path[-1:] == ["command"]}
    for item in found:
        if item.kind == "extra_forbidden" and item.parent in commandless and not item.suggestion:
            item.suggest(_field_names(*_SERVERS))
    suggested = {(f.parent, f.suggestion) for f in found if f.suggestion}
    # "needs 'command' or 'url'" is answered by a near miss of either.
    suggested |= {(parent, "command") for parent, name in suggested if name == "url"}
    kept = [
        item
        for item in found
        # the near miss said it: `comand`, did you mean `command`?
        if not (item.kind == "missing" and (item.parent, item.path[-1]) in suggested)
    ]
    # In the file's order, object by object; in each, what was written before what is missing.
    parents = list(dict.fromkeys(item.parent for item in kept))
    kept.sort(key=lambda item: (parents.index(item.parent), item.kind == "missing"))
    return [item.problem() for item in kept]


class _Found:
    """One pydantic error, read against the model: its path as written, and what it says."""

    def __init__(self, error: ErrorDetails, path: list[str], owner: type[BaseModel] | None):
        self.error = error
        self.kind = error["type"]
        self.path = path
        self.parent = tuple(path[:-1])
        self.owner = owner  # the model whose field the last part names (or fails to)
        self.suggestion: str | None = None
        if self.kind == "extra_forbidden" and owner is not None and path:
            self.suggest(_field_names(owner))

    @classmethod
    def of(cls, error: ErrorDetails) -> _Found:
        if error["type"] == "group_name":  # the name itself is the problem
            name = error["ctx"]["name"][1:-1]  # the repr's quotes
            return cls(error, ["mcpServers", name], None)
        path, owner = _walk(error["loc"])
        return cls(error, path, owner)

    def suggest(self, names: set[str]) -> None:
        written = self.path[-1]
        close = difflib.get_close_matches(
            written, sorted(names - {written}), n=1, cutoff=SUGGESTION_CUTOFF
        )
        self.suggestion = close[0] if close else None

    def problem(self) -> ConfigProblem:
        path = self.path
        server = path[1] if len(path) > 1 and path[0] == "mcpServers" else None
        return ConfigProblem(self._text(), server=server, field=".".join(path) or None)

    def _text(self) -> str:
        kind, error = self.kind, self.error
        if kind == "extra_forbidden":
            hint = f"; did you mean {self.suggestion!r}?" if self.suggestion else ""
            return "unknown field" + hint
        if kind == "missing":
            if self.path[-1:] == ["command"] and self.owner is StdioServer:
                return "needs 'command' (stdio) or 'url' (http/sse)"
            return "required field is missing"
        if kind in _EXPECTED:
            got = f", got {_shown(error.get('input'))}" if self._quotable() else ""
            return f"expected {_EXPECTED[kind]}{got}"
        if kind == "literal_error":
            got = f", got {_shown(error.get('input'))}" if self._quotable() else ""
            return f"{error['msg'].lower()}{got}"
        return error["msg"]

    def _quotable(self) -> bool:
        """Whether the value written may be shown: a number or true/false, or the text of
        a field that picks a kind (`type`); never an object, a list, or what `env` or
        `headers` hold, any of which may be a secret."""
        value = self.error.get("input")
        if {"env", "headers"} & set(self.path[2:]):
            return False
        if isinstance(value, str):
            return self.path[-1] in _QUOTABLE_FIELDS
        return value is None or isinstance(value, bool | int | float)


def _walk(loc: Sequence[int | str]) -> tuple[list[str], type[BaseModel] | None]:
    """`loc` as the config writes it, and the model its last part is a field of.

    Pydantic's location holds the config's keys, and between them a union member's tag
    (`stdio`) or a validator's name: those follow from the model, not from the file.
    """
    shown: list[str] = []
    owner: type[BaseModel] | None = None
    current: Any = Config
    parts = [str(part) for part in loc]
    index = 0
    while index < len(parts):
        part, current = parts[index], _unwrapped(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            owner = current
            shown.append(part)
            field = _field(current, part)
            current = field.annotation if field is not None else None
        elif get_origin(current) in (dict, list):
            shown.append(part)
            current = get_args(current)[-1]
        elif _members(current):
            members = _members(current)
            tagged = next((m for m, tag in members if tag == part), None)
            if tagged is not None:
                current = tagged  # the tag is pydantic's, not the file's
            else:
                plain = [m for m, _ in members if m is not type(None)]
                if len(plain) != 1:
                    break
                current = plain[0]
                continue  # the same part, against the one member it can be
        else:
            if current is None and index == len(parts) - 1 and owner is None:
                shown.append(part)
            break  # a value: what follows names pydantic's validators
        index += 1
    return shown, owner


def _unwrapped(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _members(annotation: Any) -> list[tuple[Any, str | None]]:
    """A union's members, each with its `Tag` if it has one; empty for anything else."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return []
    members = []
    for member in get_args(annotation):
        tag = None
        if get_origin(member) is Annotated:
            tag = next((m.tag for m in get_args(member)[1:] if isinstance(m, Tag)), None)
        members.append((_unwrapped(member), tag))
    return members


def _field(model: type[BaseModel], name: str) -> Any:
    """The field the config calls `name` (its alias, if it has one)."""
    return next(
        (info for key, info in model.model_fields.items() if (info.alias or key) == name), None
    )


def _field_names(*models: type[BaseModel]) -> set[str]:
    return {info.alias or key for model in models for key, info in model.model_fields.items()}


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
