"""Finding and reading dynamic-mcp.json: one `ConfigError` for every way it can be wrong.

    path = resolve_config_path(None)      # the argument, $DYNAMIC_MCP_CONFIG, ./dynamic-mcp.json
    config = load_config(path)

Guarantees: `load_config` raises only `ConfigError`, never a pydantic or JSON traceback;
the error names the file and every problem in it (`groups.config.problems`), each by the
field's dotted path, or, for a JSON syntax error, by line and column with its likely
cause (`groups.config.json_syntax`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from groups import CONFIG_ENV_VAR
from groups.config.json_syntax import likely_cause
from groups.config.model import Config
from groups.config.problems import config_problems
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
    """Validate config text; `path` only names the source in errors.

    Raises:
        ConfigError: with every problem the text has (a JSON syntax error is one: nothing
            after it can be read).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        cause = likely_cause(text, exc)
        said = exc.msg.removesuffix(" at").removesuffix(" starting")  # its position follows
        problem = f"invalid JSON: {said}" + (f"; likely {cause}" if cause else "")
        raise ConfigError(path, problem, line=exc.lineno, column=exc.colno) from None
    if not isinstance(data, dict):
        raise ConfigError(path, 'expected an object like {"mcpServers": {...}}')
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError.of(path, config_problems(exc)) from None


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
