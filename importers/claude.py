"""Claude Code and Claude Desktop: `mcpServers` JSON in a project `.mcp.json`, the user's
`~/.claude.json`, or Claude Desktop's per-OS `claude_desktop_config.json`.

Formats:
- Claude Code (https://code.claude.com/docs/en/mcp, checked Nov 2026): `type` is
  stdio, http or sse; `${VAR}` and `${VAR:-default}` expand in command, args, env, url
  and headers, the same syntax dynamic-mcp uses. `~/.claude.json` keeps user-scope
  servers under `mcpServers` and local-scope ones under `projects[<absolute dir>]`.
- Claude Desktop (https://modelcontextprotocol.io/quickstart/user, checked Nov 2026):
  stdio servers under `mcpServers`; there is no project config.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from importers.entries import Parsed
from importers.formats import decode, section
from importers.importer import Importer
from importers.mcpservers import Dialect, Timeout, parse_servers
from importers.paths import UserDirs

__all__ = ["CLAUDE", "CLAUDE_DESKTOP", "parse", "parse_for_directory"]

# Claude Code's `timeout` is milliseconds per tool call.
CODE = Dialect(timeout=Timeout(seconds_per_unit=0.001))
DESKTOP = Dialect()
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")


def parse(text: str) -> Parsed:
    """The top-level (user or project scope) servers of a Claude Code config."""
    return parse_servers(section(decode("json", text), "mcpServers") or {}, CODE)


def parse_for_directory(text: str, directory: Path) -> Parsed:
    """The local-scope servers `~/.claude.json` keeps for `directory` (none if absent)."""
    projects = section(decode("json", text), "projects") or {}
    wanted = _comparable(str(directory))
    for key, project in projects.items():
        if _comparable(key) == wanted and isinstance(project, dict):
            return parse_servers(section(project, "mcpServers") or {}, CODE)
    return {}


def parse_desktop(text: str) -> Parsed:
    """The servers of a claude_desktop_config.json."""
    return parse_servers(section(decode("json", text), "mcpServers") or {}, DESKTOP)


def _comparable(path: str) -> str:
    """A directory key as Claude Code may have written it, in a form to compare.

    A trailing slash never matters; Windows keys (`C:\\x` or `C:/x`) may use either
    slash and any case, as Windows paths are case-insensitive.
    """
    text = str(PurePosixPath(path.replace("\\", "/")))
    return text.casefold() if _WINDOWS_DRIVE.match(text) else text


def code_paths(dirs: UserDirs) -> list[Path]:
    """~/.claude.json (%USERPROFILE%\\.claude.json on Windows)."""
    return [dirs.home / ".claude.json"]


def desktop_paths(dirs: UserDirs) -> list[Path]:
    """claude_desktop_config.json in the OS's app-data folder, under Claude/."""
    return [dirs.app_data() / "Claude" / "claude_desktop_config.json"]


CLAUDE = Importer(
    name="claude",
    title="Claude Code",
    parse=parse,
    global_paths=code_paths,
    project=(".mcp.json",),
    aliases=("claude-code", "claude-cli", "claudecode"),
    for_directory=parse_for_directory,
)

CLAUDE_DESKTOP = Importer(
    name="claude-desktop",
    title="Claude Desktop",
    parse=parse_desktop,
    global_paths=desktop_paths,
    aliases=("claudedesktop", "claude-app"),
)
