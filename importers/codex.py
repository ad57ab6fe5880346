"""Codex: `[mcp_servers.NAME]` TOML tables in `~/.codex/config.toml` (or `$CODEX_HOME`),
and in `.codex/config.toml` of a project Codex trusts.

Format (Codex config docs, https://developers.openai.com/codex/mcp, checked Nov 2026):
stdio servers have `command`, `args`, `env`, `env_vars` (names to forward), `cwd`;
remote servers (streamable HTTP only) have `url`, `bearer_token_env_var`,
`http_headers` and `env_http_headers` (header -> variable name); both have `enabled`,
`startup_timeout_sec`, `tool_timeout_sec`, `enabled_tools`, `disabled_tools` (which become
`tools.include` and `tools.exclude`).
Older configs used `[mcp.NAME]`; both tables are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from importers.entries import Draft, Found, Parsed, Skip, convert_all, seconds_text
from importers.formats import decode, section
from importers.importer import Importer
from importers.paths import UserDirs

__all__ = ["CODEX", "parse"]


def parse(text: str) -> Parsed:
    """The servers of a Codex config.toml, `[mcp_servers]` first, then the older `[mcp]`."""
    data = decode("toml", text)
    servers: dict[str, Any] = dict(section(data, "mcp_servers") or {})
    for name, raw in (section(data, "mcp") or {}).items():
        servers.setdefault(name, raw)
    return convert_all(servers, _convert)


def _convert(draft: Draft) -> Found:
    url = draft.text("url")
    if url is None:
        command = draft.text("command")
        if command is None:
            raise Skip("has neither 'command' (stdio) nor 'url' (streamable HTTP)")
        draft.put("command", command)
        draft.put("args", draft.texts("args"))
        draft.put("env", draft.table("env"))
        draft.put("cwd", draft.text("cwd"))
        # dynamic-mcp hands stdio servers the whole environment, so `env_vars` (the
        # names Codex forwards on top of its allowlist) are already passed.
        draft.take("env_vars")
    else:
        draft.put("url", url)
        headers = draft.table("http_headers") or {}
        for header, variable in (draft.table("env_http_headers") or {}).items():
            headers[header] = f"${{{variable}}}"
        if (token := draft.text("bearer_token_env_var")) is not None:
            headers["Authorization"] = f"Bearer ${{{token}}}"
        if (inline := draft.text("bearer_token")) is not None:
            headers["Authorization"] = f"Bearer {inline}"
        draft.put("headers", headers)
        draft.put("oauth_scopes", draft.texts("scopes"))
    draft.tool_filter("enabled_tools", "disabled_tools")
    if draft.flag("enabled") is False:
        draft.entry["enabled"] = False
    if (limit := draft.number("tool_timeout_sec")) is not None:
        draft.entry["timeout"] = {"tools": seconds_text(limit)}
    return draft.finish()


def global_paths(dirs: UserDirs) -> list[Path]:
    """$CODEX_HOME/config.toml when set, else ~/.codex/config.toml."""
    codex_home = dirs.env.get("CODEX_HOME")
    folder = Path(codex_home) if codex_home else dirs.home / ".codex"
    return [folder / "config.toml"]


CODEX = Importer(
    name="codex",
    title="Codex",
    parse=parse,
    global_paths=global_paths,
    project=(".codex/config.toml",),
    aliases=("codex-cli", "openai-codex"),
)
