"""The `mcpServers`-style JSON entry most tools share, read in each tool's dialect.

    CURSOR = Dialect(syntaxes=frozenset({"env-colon"}), editor=True)
    parse_servers({"fs": {"command": "npx", "args": ["-y", "x"]}}, CURSOR)

Guarantees: the transport is decided the way the source tool decides it (an explicit
`type`, else `command` means stdio, else the tool's own URL keys and its reading of a bare
`url`); an unknown transport makes the server `Unusable` instead of guessing; a source
`disabled: true` or `enabled: false` becomes `enabled: false`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from importers.entries import Draft, Found, Parsed, Skip, convert_all, seconds_text
from importers.variables import Syntax

__all__ = ["Dialect", "Kind", "Timeout", "parse_servers"]

Kind = Literal["stdio", "http", "sse"]

# Every spelling of a transport the tools use, in `type` or Cline's older `transportType`.
TYPES: dict[str, Kind] = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamableHttp": "http",
    "streamable_http": "http",
    "sse": "sse",
}


@dataclass(frozen=True)
class Timeout:
    """How the tool's numeric `timeout` reads: its unit and which requests it limits."""

    seconds_per_unit: float
    applies_to: tuple[str, ...] = ("tools",)


@dataclass(frozen=True)
class Dialect:
    """How one tool spells the shared entry."""

    #: Variable syntaxes besides ${VAR} that the tool expands in these strings.
    syntaxes: frozenset[Syntax] = frozenset()
    #: The tool is an editor, so ${workspaceFolder} and friends may appear.
    editor: bool = False
    #: What a `url` with no `type` means to the tool; "auto": it tries streamable HTTP
    #: and falls back to SSE, which we cannot do, so a URL ending in /sse is read as SSE.
    bare_url: Kind | Literal["auto"] = "auto"
    #: Other keys that hold a URL, with the transport each implies.
    url_keys: Mapping[str, Kind] = field(default_factory=dict)
    #: How the tool's `timeout` field reads; None: it is reported, not converted.
    timeout: Timeout | None = None


def parse_servers(
    servers: Mapping[str, Any], dialect: Dialect, *, inputs: Mapping[str, str] | None = None
) -> Parsed:
    """Convert every entry of an `mcpServers`-like object in this dialect."""

    def convert(draft: Draft) -> Found:
        convert_entry(draft, dialect)
        return draft.finish(dialect.syntaxes, inputs=inputs, editor=dialect.editor)

    return convert_all(servers, convert)


def convert_entry(draft: Draft, dialect: Dialect) -> None:
    """Fill `draft.entry` from a shared-shape source entry.

    Raises:
        Skip: the entry has no transport dynamic-mcp can use, or a field of the wrong type.
    """
    declared = draft.text("type") or draft.text("transportType")
    if declared is not None and declared not in TYPES:
        raise Skip(f"transport {declared!r} is not one dynamic-mcp speaks (stdio, http, sse)")
    url, implied = _url(draft, dialect, declared)
    if declared is not None:
        kind = TYPES[declared]
    elif url is not None and draft.raw.get("command") is None:
        kind = implied
    else:
        kind = "stdio"
    if kind == "stdio":
        command = draft.text("command")
        if command is None and draft.raw.get("tcp") is not None:
            raise Skip("a tcp (WebSocket) transport, which dynamic-mcp does not speak")
        if command is None:
            raise Skip("has neither 'command' (stdio) nor a URL (http/sse)")
        draft.put("command", command)
        draft.put("args", draft.texts("args"))
        draft.put("env", draft.table("env"))
        draft.put("cwd", draft.text("cwd"))
    else:
        if url is None:
            raise Skip(f"transport {declared!r} needs a 'url'")
        if kind == "sse":
            draft.put("type", "sse")
        draft.put("url", url)
        draft.put("headers", draft.table("headers"))
        oauth(draft, "oauth")
        oauth(draft, "auth")  # Cursor's spelling
    if draft.flag("disabled") is True or draft.flag("enabled") is False:
        draft.entry["enabled"] = False
    draft.tool_filter("includeTools", "excludeTools")  # Gemini CLI's
    timeout(draft, dialect.timeout)
    draft.description = draft.text("description")


def _url(draft: Draft, dialect: Dialect, declared: str | None) -> tuple[str | None, Kind]:
    """The entry's URL and the transport its key implies, honoring the tool's URL keys.

    The transport is guessed from the URL only when the entry does not declare one.
    """
    for key, kind in dialect.url_keys.items():
        if (value := draft.text(key)) is not None:
            return value, kind
    url = draft.text("url")
    if dialect.bare_url != "auto":
        return url, dialect.bare_url
    if declared is not None:
        return url, "http"  # unused: the declared type decides
    if url is not None and urlsplit(url).path.rstrip("/").endswith("/sse"):
        draft.notes.append(
            'transport guessed as sse from the URL ending in /sse: set "type": "http" '
            "if the server speaks streamable HTTP"
        )
        return url, "sse"
    return url, "http"


def oauth(draft: Draft, key: str) -> None:
    """Carry a client id and scopes over from an OAuth block; note the rest."""
    block = draft.take(key)
    if block is None or block is False:
        return
    if not isinstance(block, dict):
        draft.notes.append(f"not carried over: {key} (expected an object)")
        return
    rest = dict(block)
    rest.pop("enabled", None)
    for name in ("clientId", "client_id", "CLIENT_ID"):
        if isinstance(client := rest.pop(name, None), str):
            draft.put("oauth_client_id", client)
    for name in ("scopes", "scope"):
        scopes = rest.pop(name, None)
        if isinstance(scopes, str):
            scopes = scopes.split()
        if isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
            draft.put("oauth_scopes", scopes)
    if rest:
        draft.notes.append(
            f"not carried over: {', '.join(f'{key}.{name}' for name in rest)} "
            f"(dynamic-mcp keeps only the OAuth client id and scopes)"
        )


def timeout(draft: Draft, reading: Timeout | None, key: str = "timeout") -> None:
    """Convert the tool's per-request timeout, or note it when its meaning is unknown."""
    if reading is None:
        return  # left unused: finish() names it
    value = draft.number(key)
    if value is None:
        return
    limit = seconds_text(value * reading.seconds_per_unit)
    draft.entry["timeout"] = dict.fromkeys(reading.applies_to, limit)
