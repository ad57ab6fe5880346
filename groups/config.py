"""The dynamic-mcp.json model: strict, so a typo is an error that names its path.

    config = load_config(Path("dynamic-mcp.json"))
    config.servers["time"].description   # "Current time and time zones"

Guarantees: every field a dmcp config may have loads; unknown fields are rejected with
their dotted path (`mcpServers.github.comand`); `load_config` raises only `ConfigError`,
never a pydantic or JSON traceback. `${VAR}` references are kept as written and resolved
per group when it connects (`interpolate`), so one unset variable fails only its group.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Mapping
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from groups import CONFIG_ENV_VAR
from groups.errors import ConfigError
from groups.private_files import NotPrivateError, read_private

if TYPE_CHECKING:
    from groups.secrets import Redactor

__all__ = [
    "GROUP_NAME_RULE",
    "Config",
    "Duration",
    "Features",
    "HttpServer",
    "SecretFileError",
    "ServerConfig",
    "Settings",
    "SseServer",
    "StdioServer",
    "Timeouts",
    "ToolFilter",
    "UnresolvedError",
    "interpolate",
    "load_config",
    "parse_config",
    "parse_duration",
    "plain_group_name",
    "referenced_values",
    "resolve_config_path",
    "variables_for",
]

DEFAULT_CONFIG = Path("dynamic-mcp.json")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|mins|h)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "h": 3600,
}


def parse_duration(value: Any) -> timedelta:
    """Read `30s`, `1min`, `2m`, `500ms`, `1h` or a plain number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "duration",
            "expected a duration like 30s, 1min, 500ms or a number of seconds, got {value}",
            {"value": repr(value)},
        )
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNIT_SECONDS[(unit or "s").lower()])


def _format_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    return f"{seconds:g}s" if seconds >= 1 or seconds == 0 else f"{seconds * 1000:g}ms"


Duration = Annotated[
    timedelta, BeforeValidator(parse_duration), PlainSerializer(_format_duration, return_type=str)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Features(_Strict):
    """Which MCP features of the upstream are offered; all on unless turned off."""

    tools: bool = True
    resources: bool = True
    prompts: bool = True


class Timeouts(_Strict):
    """How long one upstream operation may take before the model is told it timed out."""

    tools: Duration = timedelta(seconds=30)
    resources: Duration = timedelta(seconds=10)
    prompts: Duration = timedelta(seconds=10)


class ToolFilter(_Strict):
    """Which of an upstream's tools the model is offered: names or glob patterns (`get_*`)."""

    include: list[str] | None = None  # only these (all, when absent)
    exclude: list[str] = []  # never these, even if included

    def hides(self, tool: str) -> str | None:
        """Why `tool` is hidden (the setting and pattern that hide it), or None."""
        for pattern in self.exclude:
            if fnmatchcase(tool, pattern):
                return f"tools.exclude has {pattern!r}"
        if self.include is not None and not any(fnmatchcase(tool, p) for p in self.include):
            return "tools.include does not name it"
        return None


def _non_empty(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError(
            "empty_description", "must say what the server is for; the model reads it"
        )
    return value


class _Server(_Strict):
    description: Annotated[str, AfterValidator(_non_empty)]
    enabled: bool = True
    features: Features = Features()
    timeout: Timeouts = Timeouts()
    tools: ToolFilter = ToolFilter()


class StdioServer(_Server):
    """An upstream started as a child process, spoken to over its stdin and stdout."""

    type: Literal["stdio"] = "stdio"
    command: str
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    idle_timeout: Duration | None = None  # stop the process after this long unused


class _RemoteServer(_Server):
    url: str
    headers: dict[str, str] = {}
    oauth_client_id: str | None = None
    oauth_scopes: list[str] | None = None
    # For an OAuth app registered with one fixed redirect URI, 127.0.0.1:<port>/callback.
    oauth_callback_port: Annotated[int, Field(ge=1, le=65535)] | None = None


class HttpServer(_RemoteServer):
    """An upstream reached over streamable HTTP (the default for a `url`)."""

    type: Literal["http"] = "http"


class SseServer(_RemoteServer):
    """An upstream reached over the older HTTP+SSE transport."""

    type: Literal["sse"] = "sse"


def _transport_kind(value: Any) -> str | None:
    """Pick the model from the data: `type` if given, else `url` means http, else stdio."""
    if not isinstance(value, dict):
        return getattr(value, "type", None)
    kind = value.get("type")
    if kind is None:
        return "http" if "url" in value else "stdio"
    return kind if kind in ("stdio", "http", "sse") else None


def _one_transport(value: Any) -> Any:
    """Say plainly when an entry has both `command` and `url` (neither is a missing field)."""
    if isinstance(value, dict) and "command" in value and "url" in value:
        raise PydanticCustomError(
            "transport", "give either 'command' (stdio) or 'url' (http/sse), not both"
        )
    return value


ServerConfig = Annotated[
    Annotated[StdioServer, Tag("stdio")]
    | Annotated[HttpServer, Tag("http")]
    | Annotated[SseServer, Tag("sse")],
    Discriminator(
        _transport_kind,
        custom_error_type="transport_type",
        custom_error_message="'type' must be one of 'stdio', 'http', 'sse'",
    ),
    BeforeValidator(_one_transport),
]


# Group names become file names (OAuth tokens), URI hosts and prefixes: keep them plain.
GROUP_NAME_RULE = "letters, digits, '-', '_' and '.' (not only dots)"
_GROUP_NAME = re.compile(r"^(?!\.+$)[A-Za-z0-9_.-]{1,100}$")


def plain_group_name(name: str, taken: Collection[str] = ()) -> str:
    """`name` as a valid group name not in `taken`: other characters become '-'."""
    plain = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:90]
    plain = plain if _GROUP_NAME.match(plain) else "server"
    candidate, number = plain, 1
    while candidate in taken:
        number += 1
        candidate = f"{plain}-{number}"
    return candidate


class Settings(_Strict):
    """dynamic-mcp's own settings, beside the servers: `"settings": {...}`."""

    catalog: bool = True  # answer expansions from ~/.dynamic-mcp/catalog when it knows the group
    idle_timeout: Duration | None = None  # for stdio groups that set none of their own
    search: bool = False  # offer search_dynamic_tools, a third tool


class Config(_Strict):
    """The whole file: `{"mcpServers": {name: server}, "settings": {...}}`."""

    servers: dict[str, ServerConfig] = Field(alias="mcpServers")
    settings: Settings = Settings()
    schema_: str | None = Field(default=None, alias="$schema")

    @field_validator("servers")
    @classmethod
    def _plain_group_names(cls, servers: dict[str, ServerConfig]) -> dict[str, ServerConfig]:
        for name in servers:
            if not _GROUP_NAME.fullmatch(name):
                raise PydanticCustomError(
                    "group_name",
                    "group name {name} may use only " + GROUP_NAME_RULE,
                    {"name": repr(name)},
                )
        return servers

    def enabled(self) -> dict[str, ServerConfig]:
        """The servers that are not switched off with `enabled: false`."""
        return {name: server for name, server in self.servers.items() if server.enabled}

    def to_json(self) -> str:
        """The config as a dynamic-mcp.json text, defaults left out."""
        data = self.model_dump(by_alias=True, exclude_defaults=True, mode="json")
        return json.dumps(data, indent=2) + "\n"


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


# ---- ${VAR} and ${file:PATH} interpolation ----------------------------------------------

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_REFERENCE = re.compile(r"\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}")


class UnresolvedError(Exception):
    """A `${...}` in a group's config cannot be resolved now; the group fails alone."""


class UnsetVariableError(UnresolvedError):
    """A `${VAR}` in a group's config names a variable that is not set."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"environment variable {name} is not set (used as ${{{name}}})")


class SecretFileError(UnresolvedError):
    """A `${file:PATH}` names a file that is missing, unreadable, or readable by others."""

    def __init__(self, written: str, problem: str) -> None:
        self.written = written
        self.problem = problem
        super().__init__(f"the secret file {written} (used as ${{file:{written}}}) {problem}")


def variables_for(config_path: Path | None) -> dict[str, str]:
    """The environment `${VAR}` sees: a `.env` beside the config, overridden by the process."""
    from_file: dict[str, str] = {}
    if config_path is not None:
        env_file = config_path.parent / ".env"
        if env_file.is_file():
            from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**from_file, **os.environ}


def interpolate(text: str, variables: Mapping[str, str], redactor: Redactor | None = None) -> str:
    """Replace `${VAR}`, `${VAR:-default}` and `${file:PATH}`; `redactor` learns each secret.

    Raises:
        UnsetVariableError: a variable without a default is not set.
        SecretFileError: a secret file is missing, unreadable or readable by others.
    """

    def substitute(match: re.Match[str]) -> str:
        path, name, default = match.groups()
        if path is not None:
            value, shown = read_secret_file(path), f"${{file:{path}}}"
        elif name in variables:
            value, shown = variables[name], f"${{{name}}}"
        elif default is not None:
            return default  # written in the config for all to see: no secret
        else:
            raise UnsetVariableError(name)
        if redactor is not None:
            redactor.add(value, shown)
        return value

    return _REFERENCE.sub(substitute, text)


def read_secret_file(written: str) -> str:
    """The content of a `${file:PATH}` (`~` expanded), its trailing newline removed.

    Raises:
        SecretFileError: the file is missing, unreadable, or readable by group or others.
    """
    path = Path(written).expanduser()
    try:
        text = read_private(path)
    except FileNotFoundError:
        raise SecretFileError(written, "does not exist") from None
    except NotPrivateError as exc:
        problem = f"is readable by others (mode {exc.mode:04o}): run chmod 600 {path}"
        raise SecretFileError(written, problem) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(written, f"cannot be read ({exc})") from None
    return text.removesuffix("\n").removesuffix("\r")


def referenced_values(written: str, variables: Mapping[str, str]) -> dict[str, str | None]:
    """The value of each `${VAR}` and `${file:PATH}` in `written` (an unset one as None, an
    unreadable file as its problem): what a digest of the entry must cover besides its text."""
    values: dict[str, str | None] = {}
    for match in _REFERENCE.finditer(written):
        path, name, _ = match.groups()
        if path is not None:
            try:
                values[f"file:{path}"] = read_secret_file(path)
            except SecretFileError as exc:
                values[f"file:{path}"] = f"unresolved: {exc.problem}"
        else:
            values[name] = variables.get(name)
    return values
