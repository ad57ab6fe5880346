"""Build the dynamic-mcp.json text and put it on disk atomically.

    text = compose(existing=None, servers={"fs": {"description": "Files", "command": "npx"}})
    mode = write_output(Path("dynamic-mcp.json"), text)

Guarantees: `compose` returns only text that `groups.config.parse_config` accepts, and
with --merge keeps every existing entry and top-level key exactly as the user wrote them.
`write_output` replaces the output in one rename (`groups.storage.write_atomically`, the
one atomic writer), so a reader sees the old file or the new one, never half of one; the
file is mode 0600 whenever any server in it has env values or headers (they may hold
secrets), else it keeps the old file's mode, else the umask's: it is the user's config, in
the user's folder, so neither is made private beyond what its content asks.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from groups.config import load_config, parse_config
from groups.errors import ConfigError
from groups.storage import write_atomically
from importers.errors import OutputWriteError

__all__ = ["check_entry", "compose", "holds_secrets", "load_existing", "write_output"]

SECRET_MODE = 0o600
# Only checks whether an entry validates; never written anywhere.
_CHECK_DESCRIPTION = "(checked before asking)"


def check_entry(name: str, entry: dict[str, Any]) -> str | None:
    """Why one converted entry would not validate, or None when it would."""
    probe = {"mcpServers": {name: {"description": _CHECK_DESCRIPTION, **entry}}}
    try:
        parse_config(json.dumps(probe), "<import>")
    except ConfigError as exc:
        field = (exc.field or "").removeprefix(f"mcpServers.{name}.")
        return f"{field}: {exc.problem}" if field else exc.problem
    return None


def load_existing(path: Path) -> dict[str, Any]:
    """The output's current content, validated first so a merge never builds on a bad file.

    Raises:
        ConfigError: the file is not a valid dynamic-mcp.json.
    """
    load_config(path)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def compose(existing: dict[str, Any] | None, servers: dict[str, dict[str, Any]], path: Path) -> str:
    """The new file's text: the existing config (if merging) plus `servers`, validated.

    Raises:
        ConfigError: the result does not validate (a bug: each entry was checked before).
    """
    data = dict(existing or {})
    data["mcpServers"] = {**data.get("mcpServers", {}), **servers}
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    parse_config(text, path)
    return text


def holds_secrets(text: str) -> bool:
    """Whether any server in the config text has env values or headers."""
    servers = json.loads(text)["mcpServers"]
    return any(entry.get("env") or entry.get("headers") for entry in servers.values())


def write_output(path: Path, text: str) -> int:
    """Replace `path` with `text` in one rename; returns the file mode it was given.

    Raises:
        OutputWriteError: the folder or the file cannot be written.
    """
    mode = SECRET_MODE if holds_secrets(text) else _plain_mode(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, text, mode)
    except OSError as exc:
        raise OutputWriteError(path, exc.strerror or str(exc)) from None
    return mode


def _plain_mode(path: Path) -> int:
    """The existing file's mode, or what a new file gets from the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
