"""Build the FastMCP client transport for one group's config entry.

    transport = build_transport("github", server, variables, redactor)

Guarantees: `${VAR}` is resolved here, at each connection attempt, so an unset variable
fails only its own group, and every value put in, like every secret written literally (a
URL's query values and password, secret flags' values in `args`), is handed to the
`Redactor` before it can appear anywhere; a stdio upstream sees the user's whole
environment plus its `env` (FastMCP alone would pass a small allowlist, and `npx`/`uvx`
servers need PATH, HOME, proxies…);
remote upstreams get their headers and, unless one of them is `Authorization`, the OAuth
the caller provides (`groups.auth.oauth`), which stays silent for servers that ask for none.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Unpack

import httpx2
from fastmcp.client.transports import (
    ClientTransport,
    SSETransport,
    StdioTransport,
    StreamableHttpTransport,
)
from fastmcp.client.transports.base import SessionKwargs, TransportOptions
from mcp import ClientSession
from mcp.client.auth.utils import extract_field_from_www_auth, extract_scope_from_www_auth

from groups.config import (
    HttpServer,
    ServerConfig,
    SseServer,
    StdioServer,
    UnresolvedError,
    interpolate,
)
from groups.errors import GroupUnavailableError
from groups.secrets import Redactor, shown_url
from groups.upstream.stderr import UpstreamStderr

__all__ = [
    "HttpErrorLog",
    "HttpRefusal",
    "LoggedStdioTransport",
    "OAuthFactory",
    "build_transport",
    "endpoint",
    "resolved_url",
    "uses_authorization_header",
]


OAuthFactory = Callable[[str], httpx2.Auth]  # the resolved URL -> the auth for a session


@dataclass(frozen=True)
class HttpRefusal:
    """An HTTP error the endpoint answered a request with, as its challenge names it."""

    status: int
    error: str | None  # `WWW-Authenticate`'s error, e.g. insufficient_scope
    scope: str | None  # the scope the challenge asks for


class HttpErrorLog:
    """The last HTTP error status an upstream answered with, and its URL as written.

    The MCP SDK reports a 401, a 403 or a 503 alike as "Server returned an error
    response"; the status decides whether retrying can help, and what the model is told,
    so it is recorded on the way past, at connect time and mid-session (`refusal`, with
    `count` to tell one request's from an earlier one's). The URL is the config's
    (`${VAR}` unresolved, literal query values hidden), never the one sent.
    """

    def __init__(self, url_as_written: str) -> None:
        self.url = shown_url(url_as_written)
        self.last: tuple[int, str] | None = None
        self.refusal: HttpRefusal | None = None  # the last error, with its challenge
        self.count = 0  # errors recorded so far
        self.resolved: str | None = None  # set by build_transport; only compared, never shown

    def client_factory(
        self,
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
        **options: Any,
    ) -> httpx2.AsyncClient:
        """An httpx2 client as FastMCP would make it, plus a hook that records errors."""
        return httpx2.AsyncClient(
            headers=headers,
            auth=auth,
            timeout=timeout or httpx2.Timeout(30.0, read=300.0),  # the MCP SDK's defaults
            event_hooks={"response": [self._record]},
            **options,
        )

    async def _record(self, response: httpx2.Response) -> None:
        # Only the endpoint's own answers: an OAuth discovery's 404s say nothing of it.
        answered = endpoint(response.request.url)
        if response.is_error and (self.resolved is None or answered == self.resolved):
            self.last = (response.status_code, self.url)
            error = extract_field_from_www_auth(response, "error")
            scope = extract_scope_from_www_auth(response)
            self.refusal = HttpRefusal(response.status_code, error, scope)
            self.count += 1


def endpoint(url: httpx2.URL | str) -> str:
    """`url` without its query, as httpx sends it (host lowercased, default port dropped)."""
    return str(httpx2.URL(url).copy_with(query=None, fragment=None)).rstrip("/")


def build_transport(
    group: str,
    server: ServerConfig,
    variables: Mapping[str, str],
    redactor: Redactor,
    http_errors: HttpErrorLog | None = None,
    oauth: OAuthFactory | None = None,
) -> ClientTransport:
    """The transport for `server`, with every `${VAR}` resolved from `variables`.

    Raises:
        GroupUnavailableError: a `${VAR}` is unset or a `${file:PATH}` unusable
            (`on_next_request`: fixing it and asking again is enough).
    """
    try:
        if isinstance(server, StdioServer):
            return _stdio(group, server, variables, redactor)
        log = http_errors or HttpErrorLog(server.url)
        return _remote(server, variables, redactor, log, oauth)
    except UnresolvedError as exc:
        raise GroupUnavailableError(group, str(exc), permanent=True, on_next_request=True) from None


class LoggedStdioTransport(StdioTransport):
    """FastMCP's stdio transport, the upstream's stderr read into our log (`UpstreamStderr`).

    FastMCP hands `log_file` to the SDK's `stdio_client` as the child's stderr, which must
    be a real file descriptor: each session gets a pipe of its own for it.
    """

    def __init__(self, group: str, **options: Any) -> None:
        super().__init__(**options)
        self.group = group
        self.pid: int | None = None  # the upstream's process, once spawned (where it can be told)
        self.stderr: UpstreamStderr | None = None  # the last session's, once one started

    @asynccontextmanager
    async def connect_session(
        self,
        *,
        transport_options: TransportOptions | None = None,
        **session_kwargs: Unpack[SessionKwargs],
    ) -> AsyncIterator[ClientSession]:
        stderr = self.stderr = UpstreamStderr(self.group)
        async with stderr as self.log_file:
            connecting = super().connect_session(
                transport_options=transport_options, **session_kwargs
            )
            async with connecting as session:
                # The child has the write end now (spawned before the yield).
                self.pid = stderr.release()
                yield session


def _stdio(
    group: str, server: StdioServer, variables: Mapping[str, str], redactor: Redactor
) -> StdioTransport:
    for name, value in server.env.items():
        redactor.add_literal_env(name, value)
    redactor.add_literal_args(server.args)
    env = {key: interpolate(value, variables, redactor) for key, value in server.env.items()}
    return LoggedStdioTransport(
        group,
        command=interpolate(server.command, variables, redactor),
        args=[interpolate(arg, variables, redactor) for arg in server.args],
        env={**os.environ, **env},
        cwd=interpolate(server.cwd, variables, redactor) if server.cwd else None,
        # The session is held for the server's lifetime; closing it must end the process.
        keep_alive=False,
    )


def _remote(
    server: HttpServer | SseServer,
    variables: Mapping[str, str],
    redactor: Redactor,
    log: HttpErrorLog,
    oauth: OAuthFactory | None,
) -> ClientTransport:
    url = resolved_url(server, variables, redactor)
    log.resolved = endpoint(url)
    for value in server.headers.values():
        redactor.add_literal_header(value)
    headers = {
        key: interpolate(value, variables, redactor) for key, value in server.headers.items()
    }
    signs_in = oauth is not None and not uses_authorization_header(server)
    auth = oauth(url) if signs_in and oauth is not None else None
    kind = SSETransport if isinstance(server, SseServer) else StreamableHttpTransport
    return kind(url, headers=headers, auth=auth, httpx_client_factory=log.client_factory)


def resolved_url(
    server: HttpServer | SseServer, variables: Mapping[str, str], redactor: Redactor
) -> str:
    """The group's URL with its `${VAR}`s put in, as its sessions connect to it.

    The URL as written goes to the `Redactor` first: its query values and password are
    hidden wherever the resolved URL shows.

    Raises:
        UnresolvedError: a `${VAR}` is unset or a `${file:PATH}` unusable.
    """
    redactor.add_literal_url(server.url)
    return interpolate(server.url, variables, redactor)


def uses_authorization_header(server: HttpServer | SseServer) -> bool:
    """Whether the entry brings its own credentials (then no OAuth is tried)."""
    return any(name.lower() == "authorization" for name in server.headers)
