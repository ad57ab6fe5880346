"""Cursor: `.cursor/mcp.json` in the project, `~/.cursor/mcp.json` for the user.

Format (Cursor MCP docs, https://cursor.com/docs/context/mcp, checked Nov 2026):
`{"mcpServers": {name: {command, args, env, envFile} | {url, headers, auth}}}`;
a `url` is streamable HTTP or SSE, chosen by Cursor; `${env:NAME}` reads the
environment and `${workspaceFolder}`, `${userHome}` are editor variables.
"""

from __future__ import annotations

from pathlib import Path

from importers.entries import Parsed
from importers.formats import decode, section
from importers.importer import Importer
from importers.mcpservers import Dialect, parse_servers
from importers.paths import UserDirs

__all__ = ["CURSOR", "parse"]

DIALECT = Dialect(syntaxes=frozenset({"env-colon"}), editor=True)


def parse(text: str) -> Parsed:
    """The servers of a Cursor mcp.json (JSON; comments tolerated as the editor does)."""
    return parse_servers(section(decode("jsonc", text), "mcpServers") or {}, DIALECT)


def global_paths(dirs: UserDirs) -> list[Path]:
    """~/.cursor/mcp.json on every OS (%USERPROFILE%\\.cursor\\mcp.json on Windows)."""
    return [dirs.home / ".cursor" / "mcp.json"]


CURSOR = Importer(
    name="cursor",
    title="Cursor",
    parse=parse,
    global_paths=global_paths,
    project=(".cursor/mcp.json",),
)
