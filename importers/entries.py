"""What an importer hands back for each server, and the builder every importer uses.

    def convert(draft: Draft) -> Found:
        draft.put("command", draft.text("command", required=True))
        return draft.finish()
    servers = convert_all({"fs": {"command": "npx", "alwaysAllow": ["x"]}}, convert)
    servers["fs"]    # Found(entry={'command': 'npx'}, notes=('not carried over: alwaysAllow ...',))

Guarantees: every server of the source comes back, either as `Found` or as `Unusable`
with the reason. Every source field is either used, or named in a note: `Draft.finish`
reports each field no converter took, so nothing is dropped silently. Variable syntax is
rewritten to `${VAR}` in every string of the entry, and any placeholder dynamic-mcp cannot
resolve is named in a note with the field it sits in.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from importers.formats import kind_of
from importers.variables import Syntax, normalize, unresolvable

__all__ = ["Draft", "Found", "Parsed", "Skip", "Unusable", "convert_all", "seconds_text"]

# Source fields with no dynamic-mcp equivalent that users set often, and why they go.
IGNORED: dict[str, str] = {
    "alwaysAllow": "dynamic-mcp does not ask before tool calls",
    "autoApprove": "dynamic-mcp does not ask before tool calls",
    "trust": "dynamic-mcp does not ask before tool calls",
    "envFile": "copy its variables into env, or into a .env beside dynamic-mcp.json",
}


@dataclass(frozen=True)
class Found:
    """A server that can be imported, and what a human should check about it."""

    #: dynamic-mcp fields of the entry, except `description` and `features`.
    entry: dict[str, Any]
    #: One sentence each: something kept that may not work, or a setting left behind.
    notes: tuple[str, ...] = ()
    #: The source's own description of the server, if it has one.
    description: str | None = None


@dataclass(frozen=True)
class Unusable:
    """A server that cannot be expressed in dynamic-mcp.json, and why."""

    reason: str


Parsed = dict[str, Found | Unusable]


class Skip(Exception):
    """Raised by a converter: this server cannot be imported, for `reason`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass
class Draft:
    """One source entry being turned into a dynamic-mcp entry, field by field."""

    raw: Mapping[str, Any]
    entry: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    description: str | None = None
    _used: set[str] = field(default_factory=set)

    def take(self, key: str) -> Any:
        """The raw value of `key` (None when absent), marked as used."""
        self._used.add(key)
        return self.raw.get(key)

    def text(self, key: str, *, required: bool = False) -> str | None:
        """A string field; `required` makes its absence a reason to skip the server."""
        value = self.take(key)
        if value is None:
            if required:
                raise Skip(f"needs {key!r}")
            return None
        if not isinstance(value, str):
            raise Skip(f"{key!r} must be a string, got {kind_of(value)}")
        return value

    def texts(self, key: str) -> list[str] | None:
        """A list-of-strings field."""
        value = self.take(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Skip(f"{key!r} must be a list of strings, got {kind_of(value)}")
        return list(value)

    def table(self, key: str) -> dict[str, str] | None:
        """A string-to-string object (env, headers); numbers and booleans become text."""
        value = self.take(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise Skip(f"{key!r} must be an object, got {kind_of(value)}")
        out: dict[str, str] = {}
        for name, item in value.items():
            if isinstance(item, str):
                out[name] = item
            elif isinstance(item, bool):
                out[name] = "true" if item else "false"
            elif isinstance(item, int | float):
                out[name] = str(item)
            elif item is None:
                # VS Code uses null to unset an inherited variable; we cannot express that.
                self.notes.append(f"not carried over: {key}.{name} = null (unsetting)")
            else:
                raise Skip(f"{key}.{name} must be a string, got {kind_of(item)}")
        return out

    def flag(self, key: str) -> bool | None:
        """A true/false field."""
        value = self.take(key)
        if value is None or isinstance(value, bool):
            return value
        raise Skip(f"{key!r} must be true or false, got {kind_of(value)}")

    def number(self, key: str) -> float | None:
        """A non-negative number field."""
        value = self.take(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise Skip(f"{key!r} must be a non-negative number, got {kind_of(value)}")
        return float(value)

    def tool_filter(self, include: str, exclude: str) -> None:
        """The source's own tool filter, carried over as dynamic-mcp's `tools`."""
        included, excluded = self.texts(include), self.texts(exclude)
        tools: dict[str, list[str]] = {}
        if included is not None:
            tools["include"] = included
        if excluded:
            tools["exclude"] = excluded
        self.put("tools", tools)

    def put(self, key: str, value: Any) -> None:
        """Set a dynamic-mcp field unless the value is empty."""
        if value not in (None, [], {}, ""):
            self.entry[key] = value

    def drop(self, key: str, why: str) -> None:
        """Leave a source field behind, with a note unless it is empty or false."""
        value = self.take(key)
        if value not in (None, False, [], {}, ""):
            self.notes.append(f"not carried over: {key} ({why})")

    def finish(
        self,
        syntaxes: Collection[Syntax] = (),
        *,
        inputs: Mapping[str, str] | None = None,
        editor: bool = False,
    ) -> Found:
        """The finished entry: variables rewritten, leftovers and placeholders noted."""
        for key in list(self.raw):
            if key not in self._used and key in IGNORED:
                self.drop(key, IGNORED[key])
        left = [key for key in self.raw if key not in self._used]
        if left:
            self.notes.append(f"not carried over: {', '.join(left)} (no dynamic-mcp equivalent)")
        entry = {key: _rewrite(value, syntaxes) for key, value in self.entry.items()}
        for where, text in _strings(entry):
            for problem in unresolvable(
                text, inputs or {}, editor=editor, opencode="opencode" in syntaxes
            ):
                self.notes.append(f"{where} {problem}")
        return Found(entry, tuple(self.notes), self.description)


def convert_all(
    servers: Mapping[str, Any], convert: Callable[[Draft], Found]
) -> dict[str, Found | Unusable]:
    """Convert each server in source order; a `Skip` makes that one server `Unusable`."""
    out: dict[str, Found | Unusable] = {}
    for name, raw in servers.items():
        if not isinstance(raw, dict):
            out[name] = Unusable(f"expected an object, got {kind_of(raw)}")
            continue
        try:
            out[name] = convert(Draft(raw))
        except Skip as skip:
            out[name] = Unusable(skip.reason)
    return out


def seconds_text(seconds: float) -> str:
    """A duration as dynamic-mcp writes it: `30s`, `1.5s`, `500ms`."""
    if seconds >= 1 or seconds == 0:
        return f"{seconds:g}s"
    return f"{seconds * 1000:g}ms"


def _rewrite(value: Any, syntaxes: Collection[Syntax]) -> Any:
    """Normalize variable syntax in every string value; keys (env names) stay as they are."""
    if isinstance(value, str):
        return normalize(value, syntaxes)
    if isinstance(value, list):
        return [_rewrite(item, syntaxes) for item in value]
    if isinstance(value, dict):
        return {key: _rewrite(item, syntaxes) for key, item in value.items()}
    return value


def _strings(value: Any, where: str = "") -> list[tuple[str, str]]:
    """Every string in the entry with its path: `args[2]`, `env.TOKEN`, `url`."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, list):
        return [s for i, item in enumerate(value) for s in _strings(item, f"{where}[{i}]")]
    if isinstance(value, dict):
        prefix = f"{where}." if where else ""
        return [s for key, item in value.items() for s in _strings(item, f"{prefix}{key}")]
    return []
