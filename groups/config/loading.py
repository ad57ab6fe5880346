"""Finding and reading dynamic-mcp.json: one `ConfigError` for every way it can be wrong.

    path = resolve_config_path(None)      # the argument, $DYNAMIC_MCP_CONFIG, ./dynamic-mcp.json
    config = load_config(path)

Guarantees: `load_config` raises only `ConfigError`, never a pydantic or JSON traceback;
the error names the file, and the line and column or the field's dotted path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from groups import CONFIG_ENV_VAR
from groups.config.model import Config
from groups.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "load_config", "parse_config", "resolve_config_path"]

DEFAULT_CONFIG = Path("dynamic-mcp.json")


def load_config(path: Path) -> Config:
    """Read and validate a dynamic-mcp.json.

    Raises:
        ConfigError: the file is missing, unreadable, not JSON, or not a valid config.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"cannot read it: {exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path | str = "<config>") -> Config:
    """Validate config text; `path` only names the source in errors."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            path, f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(path, 'expected an object like {"mcpServers": {...}}')
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _config_error(path, exc) from None


def _config_error(path: Path | str, exc: ValidationError) -> ConfigError:
    """Turn pydantic's most telling error into a ConfigError naming server and field."""
    # A typo ("comand") also makes the real field missing: name the typo first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    error = errors[0]
    if error["type"] == "group_name":
        name = error["ctx"]["name"][1:-1]  # the repr's quotes
        return ConfigError(path, error["msg"], server=name, field=f"mcpServers.{name}")
    # Drop the union tag pydantic puts in the location: ('mcpServers','x','stdio','comand').
    loc = [str(part) for part in error["loc"] if part not in ("stdio", "http", "sse")]
    if loc[:3] == ["settings", "code", "limits"]:  # and settings.code's ('code','limits',…)
        del loc[2]
    if len(loc) > 3 and loc[0] == "mcpServers" and loc[2] in ("timeout", "features"):
        loc = loc[:4]  # a duration or bool validator may add an inner tag
    server = loc[1] if len(loc) > 1 and loc[0] == "mcpServers" else None
    field = ".".join(loc)
    problem = _problem(error)
    more = len(exc.errors()) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return ConfigError(path, problem, server=server, field=field)


def _problem(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        if error["loc"][-1] == "command":
            return "needs 'command' (stdio) or 'url' (http/sse)"
        return "required field is missing"
    if kind in ("string_type", "bool_type", "list_type", "dict_type", "model_type"):
        expected = {
            "string_type": "a string",
            "bool_type": "true or false",
            "list_type": "a list",
            "dict_type": "an object",
            "model_type": "an object",
        }[kind]
        return f"expected {expected}, got {json.dumps(error.get('input'))}"
    if kind == "literal_error":
        return f"{error['msg'].lower()}, got {json.dumps(error.get('input'))}"
    return error["msg"]


def resolve_config_path(path: Path | None) -> Path:
    """The config to serve: the CLI argument, else $DYNAMIC_MCP_CONFIG, else ./dynamic-mcp.json.

    Raises:
        ConfigError: none of them names a file.
    """
    if path is not None:
        return path
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    raise ConfigError(
        DEFAULT_CONFIG,
        f"no config: pass its path as an argument, set {CONFIG_ENV_VAR}, or create "
        f"{DEFAULT_CONFIG} (`dynamic-mcp import <tool>` writes one)",
    )
