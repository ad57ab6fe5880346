"""The dynamic-mcp.json model: strict, so a typo is an error that names its path.

    config = Config.model_validate(data)          # `groups.config.load_config` reads a file
    config.servers["time"].description            # "Current time and time zones"

Guarantees: every field a dmcp config may have is modelled; unknown fields are rejected
with their dotted path (`mcpServers.github.comand`); `${VAR}` references are kept as
written (resolved per group when it connects, `groups.config.variables`); a stdio, HTTP or
SSE entry is told apart by its fields, `type` optional; `access` is a list of non-empty
names (who may use the group on a gateway with named users, `groups.access`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "GROUP_NAME_RULE",
    "CodeSettings",
    "Config",
    "Duration",
    "Features",
    "HttpServer",
    "HttpSettings",
    "IdentityProvider",
    "ServerConfig",
    "Settings",
    "SigningAlgorithm",
    "SseServer",
    "StdioServer",
    "Timeouts",
    "ToolFilter",
    "parse_duration",
    "plain_group_name",
    "rate_items",
]

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


def _named(names: list[str]) -> list[str]:
    for name in names:
        if not name.strip() or name == "group:":
            raise PydanticCustomError(
                "empty_access",
                "names a user, or a group as 'group:NAME'; {name} names nobody",
                {"name": repr(name)},
            )
    return names


def rate_items(rate: str) -> list[Any]:
    """The `limits` library's items of a rate such as "5/minute" or "5/minute;100/hour".

    Imported here, not at the top: `limits` costs ~80 ms to import, and a config without
    a rate limit (or a start refused for its config) never needs it.
    """
    import limits

    return limits.parse_many(rate)


def _rate(value: str) -> str:
    try:
        rate_items(value)
    except ValueError:
        raise PydanticCustomError(
            "rate",
            "expected a rate such as '5/minute', '100 per hour' or '5/minute;100/hour', "
            "got {value}",
            {"value": repr(value)},
        ) from None
    return value


# Calls a user may make in a window, counted per user (`groups.upstream.call_limits`).
RateLimit = Annotated[str, AfterValidator(_rate)]


class ToolFilter(_Strict):
    """Which of an upstream's tools the model is offered: names or glob patterns (`get_*`)."""

    include: list[str] | None = None  # only these (all, when absent)
    exclude: list[str] = []  # never these, even if included
    # On a gateway with named users: the tools a pattern matches are only for the users
    # and groups ("group:NAME") it names, as `access` is for a whole group.
    access: dict[str, Annotated[list[str], AfterValidator(_named)]] = {}
    # Each user's rate of calls to the tools a pattern matches, on top of the group's.
    rate_limit: dict[str, RateLimit] = {}

    def hides(self, tool: str, lets_in: Callable[[list[str]], bool] = lambda _: True) -> str | None:
        """Why `tool` is hidden, or None. `lets_in(names)`: whether an `access` list lets
        the caller in (`groups.access.may_use`; by default it does, as for the implicit
        user)."""
        for pattern in self.exclude:
            if fnmatchcase(tool, pattern):
                return f"tools.exclude has {pattern!r}"
        if self.include is not None and not any(fnmatchcase(tool, p) for p in self.include):
            return "tools.include does not name it"
        for pattern, who in self.access.items():
            if fnmatchcase(tool, pattern) and not lets_in(who):
                return "tools.access does not give it to you"
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
    # On a gateway with named users: only these users, or members of these groups of the
    # identity provider ("group:NAME"), see and use the group (everyone, when absent).
    access: Annotated[list[str], AfterValidator(_named)] | None = None
    features: Features = Features()
    timeout: Timeouts = Timeouts()
    tools: ToolFilter = ToolFilter()
    # Each user's calls to this group's tools: at most this rate, and this many at once
    # (None: as the settings say, else unlimited). `groups.upstream.call_limits`.
    rate_limit: RateLimit | None = None
    max_concurrent_calls: Annotated[int, Field(gt=0)] | None = None
    # Start the upstream in the background when an expansion is answered from the catalog,
    # since a call is coming. None: as `settings.start_on_expand` says.
    start_on_expand: bool | None = None


class StdioServer(_Server):
    """An upstream started as a child process, spoken to over its stdin and stdout."""

    type: Literal["stdio"] = "stdio"
    command: str
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    idle_timeout: Duration | None = None  # stop the process after this long unused
    # On a gateway with named users: one process for each user (the default: what the
    # process says, logs or asks is that user's alone), or one for every user ("shared":
    # fewer processes, no callbacks once it served two users). `groups.upstream.callers`.
    sessions: Literal["shared", "per-user"] = "per-user"


# What a private key may sign a `private_key_jwt` client assertion with (RFC 7518 names).
SigningAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]


class IdentityProvider(_Strict):
    """The organisation's identity provider, for `"oauth_grant": "id_jag"` (SEP-990): where
    an ID token is exchanged for an identity assertion grant (ID-JAG, RFC 8693)."""

    # Its token endpoint, or its issuer, whose metadata names the token endpoint.
    issuer: str | None = None
    token_endpoint: str | None = None
    # dynamic-mcp as the identity provider knows it: the client the ID tokens are issued
    # to (their `aud`), and its secret (`${VAR}` or `${file:PATH}`, never logged).
    client_id: str
    client_secret: str | None = None
    # The implicit user's ID token (`${VAR}` or `${file:PATH}`, read at each exchange); a
    # gateway's named users' are the JWTs they sign in to the gateway with.
    id_token: str | None = None

    @model_validator(mode="after")
    def _one_endpoint(self) -> Self:
        if (self.issuer is None) == (self.token_endpoint is None):
            raise PydanticCustomError(
                "oauth_idp", "give the identity provider's issuer or its token_endpoint (one)"
            )
        return self


class _RemoteServer(_Server):
    url: str
    headers: dict[str, str] = {}
    oauth_client_id: str | None = None
    # A confidential client's secret (`${VAR}` or `${file:PATH}`, never logged); sent to the
    # token endpoint as its metadata asks, Basic or in the form.
    oauth_client_secret: str | None = None
    oauth_scopes: list[str] | None = None
    # For an OAuth app registered with one fixed redirect URI, 127.0.0.1:<port>/callback.
    oauth_callback_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    # `client_credentials`: a service account, no person; a token is fetched when needed.
    # `id_jag`: the organisation's identity provider vouches for the user (SEP-990): their
    # ID token is exchanged at `oauth_idp` for a grant, which the server's authorization
    # server takes (RFC 7523 jwt-bearer) from this client (`oauth_client_id` and secret).
    oauth_grant: Literal["authorization_code", "client_credentials", "id_jag"] = (
        "authorization_code"
    )
    oauth_idp: IdentityProvider | None = None
    # `client_credentials` by `private_key_jwt`: a PEM key (`${file:PATH}`), and its algorithm.
    oauth_private_key: str | None = None
    oauth_signing_algorithm: SigningAlgorithm | None = None
    # The authorization server a service account's credentials belong to: they are sent
    # nowhere else (without it, the MCP server's metadata decides where they go).
    oauth_issuer: str | None = None
    # A client ID metadata document (an https URL) used as the client id where the
    # authorization server supports them, instead of registering.
    oauth_client_metadata_url: str | None = None

    @model_validator(mode="after")
    def _oauth_settings_fit_together(self) -> Self:
        problem = _oauth_problem(self)
        if problem is not None:
            raise PydanticCustomError("oauth", problem)
        return self


def _oauth_problem(server: _RemoteServer) -> str | None:
    """What is wrong with how the entry's OAuth settings combine, if anything."""
    machine = server.oauth_grant == "client_credentials"
    if server.oauth_private_key is not None and not machine:
        return "oauth_private_key signs client_credentials requests: set oauth_grant to it"
    if server.oauth_signing_algorithm is not None and server.oauth_private_key is None:
        return "oauth_signing_algorithm needs oauth_private_key"
    if server.oauth_client_secret is not None and server.oauth_client_id is None:
        return "oauth_client_secret needs the oauth_client_id it was issued with"
    enterprise = server.oauth_grant == "id_jag"
    if enterprise and server.oauth_idp is None:
        return "oauth_grant id_jag needs oauth_idp: the identity provider to exchange ID tokens at"
    if server.oauth_idp is not None and not enterprise:
        return "oauth_idp is for oauth_grant id_jag: set oauth_grant to it"
    if enterprise and (server.oauth_client_id is None or server.oauth_client_secret is None):
        return (
            "oauth_grant id_jag needs oauth_client_id and oauth_client_secret: the client "
            "the authorization server knows, which presents the identity provider's grants"
        )
    if machine and server.oauth_client_id is None:
        return "oauth_grant client_credentials needs oauth_client_id"
    if machine and (server.oauth_client_secret is None) == (server.oauth_private_key is None):
        return "oauth_grant client_credentials needs oauth_client_secret or oauth_private_key"
    document = server.oauth_client_metadata_url
    # The URL is the client id itself: the SDK takes only an https URL with a path.
    if document is not None and (not document.startswith("https://") or not _has_path(document)):
        return f"oauth_client_metadata_url must be an https URL with a path, got {document!r}"
    return None


def _has_path(url: str) -> bool:
    return urlsplit(url).path not in ("", "/")


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


_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


def _host_name(value: str) -> str:
    """A Host name as `settings.http.allowed_hosts` takes it: `mcp.example.com`,
    `*.example.com`, an IP address, or `*` for any."""
    name = value.strip().lower()
    parts = urlsplit(name if "//" in name else f"//{name}")
    if "//" in name or parts.path or parts.query or parts.fragment:
        raise PydanticCustomError(
            "host", "a host name, not a URL: write '{name}'", {"name": parts.hostname or name}
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None or (name.count(":") == 1 and not name.startswith("[")):
        raise PydanticCustomError(
            "host",
            "a host name without its port: write '{name}' (every port is accepted)",
            {"name": parts.hostname or name.rsplit(":", 1)[0]},
        )
    if name == "*" or _HOST_NAME.match(name) or _is_ip_address(name.strip("[]")):
        return name
    raise PydanticCustomError(
        "host",
        "expected a host name such as mcp.example.com or *.example.com, got '{value}'",
        {"value": value},
    )


def _origin(value: str) -> str:
    """A browser origin as `settings.http.allowed_origins` takes it: `https://app.example.com`
    (`:port` where it is not the scheme's own; `*` in the name for several)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PydanticCustomError(
            "origin",
            "expected an origin such as https://app.example.com, got '{value}'",
            {"value": value},
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        origin = f"{parts.scheme}://{parts.netloc}"
        raise PydanticCustomError(
            "origin", "an origin has no path: write '{origin}'", {"origin": origin}
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def _is_ip_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class HttpSettings(_Strict):
    """What one HTTP client may ask of a gateway: `"settings": {"http": {...}}`. Read when
    the server starts."""

    # A POST to the endpoint past this is answered 413 unread ("4MiB", "512KiB", bytes).
    max_request_body: Annotated[ByteSize, Field(gt=0)] = ByteSize(4 * 1024 * 1024)
    # Legacy sessions (2025-11-25 and earlier): each named user's own limits, refused
    # with 429 past them, counted across replicas with a shared store...
    sessions_per_user: Annotated[int, Field(gt=0)] = 100
    session_opens_per_minute: Annotated[int, Field(gt=0)] = 30
    # ...and the SDK's, for everybody: sessions one replica holds (503 past it), and how
    # long one lives unused.
    max_sessions: Annotated[int, Field(gt=0)] = 10_000
    session_idle_timeout: Duration = timedelta(minutes=30)
    # Count calls, sessions, limits… and serve them at /metrics (`groups.serving.metrics`).
    metrics: bool = True
    # The names clients reach this server by, besides localhost and the address it
    # listens on: a load balancer on the same machine passes on its own ("mcp.example.com",
    # "*.example.com"). Any other Host is 421 (`groups.serving.host_refusals`); off
    # loopback, with none given, any Host is accepted.
    allowed_hosts: list[Annotated[str, AfterValidator(_host_name)]] = []
    # Browser pages of other origins that may call it ("https://app.example.com"), besides
    # this machine's and the gateway's own; any other is 403.
    allowed_origins: list[Annotated[str, AfterValidator(_origin)]] = []

    @property
    def renew_every(self) -> float:
        """Seconds between writes that keep a session's record and place in a shared store
        (a third of its idle timeout, at most 10 minutes)."""
        return min(600.0, self.session_idle_timeout.total_seconds() / 3)

    @property
    def session_lifetime(self) -> float:
        """Seconds a store keeps what stands for a session after its last write: past the
        moment the session itself can end."""
        return self.session_idle_timeout.total_seconds() + self.renew_every

    @field_validator("session_idle_timeout")
    @classmethod
    def _some_time(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise PydanticCustomError("duration", "a session must live a while: 30s, 30min…")
        return value


def _some(value: timedelta) -> timedelta:
    if value.total_seconds() <= 0:
        raise PydanticCustomError("duration", "must be more than 0s: 1s, 500ms…")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_some)]


class CodeSettings(_Strict):
    """run_dynamic_code's limits on one program: `"settings": {"code": {...}}` (`true`:
    these defaults). Each ends the run with an isError naming it (`groups.code`)."""

    # The whole run, waiting on upstreams included (each call has its group's own too).
    timeout: PositiveDuration = timedelta(seconds=60)
    # The sandbox's own execution time, waits on upstreams and sleeps excluded.
    cpu_time: PositiveDuration = timedelta(seconds=10)
    memory: Annotated[ByteSize, Field(gt=0)] = ByteSize(64 * 1024 * 1024)  # its heap
    recursion: Annotated[int, Field(gt=0, le=1000)] = 200  # nested calls of its functions
    sleep: Duration = timedelta(seconds=10)  # time.sleep and asyncio.sleep, all together
    max_calls: Annotated[int, Field(gt=0, le=1000)] = 50  # call_tool() calls per run
    # The program's value as JSON, and what it printed (the rest is cut, and said so).
    max_result: Annotated[ByteSize, Field(gt=0)] = ByteSize(64 * 1024)
    max_printed: Annotated[ByteSize, Field(ge=0)] = ByteSize(8 * 1024)
    # Programs one user runs at once (the implicit user is one user), in this process.
    max_concurrent_runs: Annotated[int, Field(gt=0)] = 4


def _code_kind(value: Any) -> str | None:
    """`settings.code` is a switch or its limits; anything else is neither."""
    if isinstance(value, bool):
        return "switch"
    return "limits" if isinstance(value, dict | CodeSettings) else None


CodeSetting = Annotated[
    Annotated[bool, Tag("switch")] | Annotated[CodeSettings, Tag("limits")],
    Discriminator(
        _code_kind,
        custom_error_type="code_setting",
        custom_error_message="expected true, false or an object of limits (docs/code-mode.md)",
    ),
]


class Settings(_Strict):
    """dynamic-mcp's own settings, beside the servers: `"settings": {...}`."""

    catalog: bool = True  # answer expansions from ~/.dynamic-mcp/catalog when it knows the group
    idle_timeout: Duration | None = None  # for stdio groups that set none of their own
    search: bool = False  # offer search_dynamic_tools, a third tool
    # Offer run_dynamic_code, a program in a sandbox that calls tools (`groups.code`), and
    # say in expansions what each tool returns: true, or its limits (`CodeSettings`).
    code: CodeSetting = False
    # A team gateway's shared store (redis://host:port/db) and the key that encrypts its
    # tokens; `${VAR}`/`${file:PATH}` work, and $DYNAMIC_MCP_STORE(_KEY) win over both.
    store: str | None = None
    store_key: str | None = None
    start_on_expand: bool = True  # for groups that set none of their own
    # A failed group is tried again in the background: after a transient failure at these
    # delays (default 2, 4, 8 s), then, and after a permanent one, every `retry_interval`
    # (default 30 s) until it recovers.
    retry_delays: list[Duration] | None = None
    retry_interval: Duration | None = None
    http: HttpSettings = HttpSettings()
    # One JSON line per call, read, sign-in or session event (`groups.serving.audit`): a
    # file (relative to the config's folder), or "-" for stderr. Read when the server starts.
    audit_log: str | None = None
    # Each user's calls to the tools of a group that sets none of its own.
    rate_limit: RateLimit | None = None
    max_concurrent_calls: Annotated[int, Field(gt=0)] | None = None

    def idle_seconds(self, server: ServerConfig) -> float | None:
        """Seconds a stdio upstream may sit unused: its own setting, else the default."""
        if not isinstance(server, StdioServer):
            return None  # remote groups hold no process
        timeout = server.idle_timeout or self.idle_timeout
        return timeout.total_seconds() if timeout is not None else None

    def retry_schedule(self) -> tuple[tuple[float, ...] | None, float | None]:
        """The background retries' quick delays, then their interval, in seconds; None for
        the default (`groups.upstream.health`)."""
        delays = self.retry_delays
        interval = self.retry_interval
        return (
            tuple(delay.total_seconds() for delay in delays) if delays is not None else None,
            interval.total_seconds() if interval is not None else None,
        )

    @property
    def code_limits(self) -> CodeSettings | None:
        """run_dynamic_code's limits when code mode is on, else None."""
        if self.code is True:
            return CodeSettings()
        return self.code if isinstance(self.code, CodeSettings) else None

    def starts_on_expand(self, server: ServerConfig) -> bool:
        """Whether an expansion answered from the catalog starts the upstream meanwhile."""
        own = server.start_on_expand
        return own if own is not None else self.start_on_expand


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
