"""opencode: `mcp` in opencode.json[c] (project root or `.opencode/`, and
`~/.config/opencode/` for the user; $XDG_CONFIG_HOME moves it on every OS).

Format (opencode docs, https://opencode.ai/docs/mcp-servers and
https://opencode.ai/v2/docs/mcp-servers, checked Nov 2026): JSONC. V1 puts servers
directly under `mcp`, V2 under `mcp.servers`. `type` is local (`command` is one array
of program and arguments, `environment`, `cwd` in V2) or remote (`url`, `headers`,
`oauth` with clientId/clientSecret/scope; streamable HTTP with an SSE fallback).
V1 switches a server off with `enabled: false`, V2 with `disabled: true`.
`{env:VAR}` reads the environment; `{file:path}` reads a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from importers.entries import Draft, Found, Parsed, Skip, convert_all
from importers.formats import decode, section
from importers.importer import Importer
from importers.mcpservers import oauth
from importers.paths import UserDirs

__all__ = ["OPENCODE", "parse"]


def parse(text: str) -> Parsed:
    """The servers of an opencode config, in either the V1 or the V2 layout."""
    mcp = section(decode("jsonc", text), "mcp") or {}
    return convert_all(_servers(mcp), _convert)


def _servers(mcp: dict[str, Any]) -> dict[str, Any]:
    """V2's `mcp.servers`, else V1's `mcp` itself.

    A V1 server could be named "servers"; it is told apart by having server fields.
    """
    nested = mcp.get("servers")
    if isinstance(nested, dict) and not {"type", "command", "url"} & nested.keys():
        return nested
    return mcp


def _convert(draft: Draft) -> Found:
    kind = draft.text("type")
    if kind == "local" or (kind is None and "command" in draft.raw):
        command = draft.texts("command")
        if not command:
            raise Skip("'command' must list the program and its arguments")
        draft.put("command", command[0])
        draft.put("args", command[1:])
        draft.put("env", draft.table("environment"))
        draft.put("cwd", draft.text("cwd"))
    elif kind == "remote" or (kind is None and "url" in draft.raw):
        draft.put("url", draft.text("url", required=True))
        draft.put("headers", draft.table("headers"))
        oauth(draft, "oauth")
    else:
        raise Skip(f"type {kind!r} is neither 'local' nor 'remote'")
    if draft.flag("enabled") is False or draft.flag("disabled") is True:
        draft.entry["enabled"] = False
    return draft.finish({"opencode"})


def global_paths(dirs: UserDirs) -> list[Path]:
    """opencode.jsonc, then opencode.json, in $XDG_CONFIG_HOME/opencode or ~/.config/opencode."""
    folder = dirs.xdg_config / "opencode"
    return [folder / "opencode.jsonc", folder / "opencode.json"]


OPENCODE = Importer(
    name="opencode",
    title="opencode",
    parse=parse,
    global_paths=global_paths,
    project=(
        ".opencode/opencode.jsonc",
        ".opencode/opencode.json",
        "opencode.jsonc",
        "opencode.json",
    ),
    aliases=("open-code", "sst-opencode"),
)
