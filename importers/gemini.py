"""Gemini CLI and Antigravity: `mcpServers` JSON in `~/.gemini/`.

Formats:
- Gemini CLI (https://github.com/google-gemini/gemini-cli/blob/main/docs/tools/mcp-server.md,
  checked Nov 2026): `command` is stdio; `httpUrl` is streamable HTTP (deprecated for
  `url` with `type: "http"`); `url` with `type` "http" or "sse", or alone (Gemini tries
  streamable HTTP and falls back to SSE). `$VAR` and `${VAR}` expand in every string;
  `timeout` is milliseconds per request; `trust`, `includeTools`, `excludeTools` filter.
- Antigravity (Google's editor; its MCP panel's "View raw config", checked Nov 2026):
  `~/.gemini/antigravity/mcp_config.json`, remote servers under `serverUrl`, `disabled`.
  The Antigravity CLI keeps the same file at `~/.gemini/config/mcp_config.json`.
"""

from __future__ import annotations

from pathlib import Path

from importers.entries import Parsed
from importers.formats import decode, section
from importers.importer import Importer
from importers.mcpservers import Dialect, Timeout, parse_servers
from importers.paths import UserDirs

__all__ = ["ANTIGRAVITY", "GEMINI", "parse"]

GEMINI_DIALECT = Dialect(
    syntaxes=frozenset({"dollar"}),
    url_keys={"httpUrl": "http"},
    timeout=Timeout(seconds_per_unit=0.001, applies_to=("tools", "resources", "prompts")),
)
ANTIGRAVITY_DIALECT = Dialect(url_keys={"serverUrl": "http"})


def parse(text: str) -> Parsed:
    """The servers of a Gemini CLI settings.json (comments allowed, as Gemini allows)."""
    return parse_servers(section(decode("jsonc", text), "mcpServers") or {}, GEMINI_DIALECT)


def parse_antigravity(text: str) -> Parsed:
    """The servers of an Antigravity mcp_config.json."""
    return parse_servers(section(decode("jsonc", text), "mcpServers") or {}, ANTIGRAVITY_DIALECT)


def gemini_paths(dirs: UserDirs) -> list[Path]:
    """~/.gemini/settings.json (%USERPROFILE%\\.gemini\\settings.json on Windows)."""
    return [dirs.home / ".gemini" / "settings.json"]


def antigravity_paths(dirs: UserDirs) -> list[Path]:
    """The editor's mcp_config.json, then the Antigravity CLI's."""
    return [
        dirs.home / ".gemini" / "antigravity" / "mcp_config.json",
        dirs.home / ".gemini" / "config" / "mcp_config.json",
    ]


GEMINI = Importer(
    name="gemini",
    title="Gemini CLI",
    parse=parse,
    global_paths=gemini_paths,
    project=(".gemini/settings.json",),
    aliases=("gemini-cli", "geminicli"),
)

ANTIGRAVITY = Importer(
    name="antigravity",
    title="Antigravity",
    parse=parse_antigravity,
    global_paths=antigravity_paths,
    aliases=("google-antigravity", "agy"),
)
