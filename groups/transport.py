"""Build the FastMCP client transport for one group's config entry.

    transport = build_transport("github", server, variables)

Guarantees: `${VAR}` is resolved here, at connect time, so an unset variable fails only
its own group; a stdio upstream sees the user's whole environment plus its `env` (FastMCP
alone would pass a small allowlist, and `npx`/`uvx` servers need PATH, HOME, proxies…);
remote upstreams get their headers and, with `oauth_client_id`, FastMCP's OAuth flow with
tokens kept on disk.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2
from fastmcp.client.auth import OAuth
from fastmcp.client.transports import (
    ClientTransport,
    SSETransport,
    StdioTransport,
    StreamableHttpTransport,
)

from groups.config import (
    HttpServer,
    ServerConfig,
    SseServer,
    StdioServer,
    UnsetVariableError,
    interpolate,
)
from groups.errors import GroupUnavailableError

__all__ = ["OAUTH_TOKEN_DIR", "HttpErrorLog", "build_transport"]

# Where OAuth tokens live between runs, as in the Rust dynamic-mcp.
OAUTH_TOKEN_DIR = Path.home() / ".dynamic-mcp" / "oauth-servers"


class HttpErrorLog:
    """The last HTTP error status an upstream answered with.

    The MCP SDK reports a 401 or a 503 alike as "Server returned an error response"; the
    status decides whether retrying can help, so it is recorded on the way past.
    """

    def __init__(self) -> None:
        self.last: tuple[int, str] | None = None

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
        if response.is_error:
            self.last = (response.status_code, str(response.request.url))


def build_transport(
    group: str,
    server: ServerConfig,
    variables: Mapping[str, str],
    http_errors: HttpErrorLog | None = None,
) -> ClientTransport:
    """The transport for `server`, with every `${VAR}` resolved from `variables`.

    Raises:
        GroupUnavailableError: a `${VAR}` is unset (permanent until the user sets it).
    """
    try:
        if isinstance(server, StdioServer):
            return _stdio(server, variables)
        return _remote(group, server, variables, http_errors or HttpErrorLog())
    except UnsetVariableError as exc:
        raise GroupUnavailableError(group, str(exc), permanent=True) from None


def _stdio(server: StdioServer, variables: Mapping[str, str]) -> StdioTransport:
    env = {key: interpolate(value, variables) for key, value in server.env.items()}
    return StdioTransport(
        command=interpolate(server.command, variables),
        args=[interpolate(arg, variables) for arg in server.args],
        env={**os.environ, **env},
        cwd=interpolate(server.cwd, variables) if server.cwd else None,
        # The session is held for the server's lifetime; closing it must end the process.
        keep_alive=False,
    )


def _remote(
    group: str, server: HttpServer | SseServer, variables: Mapping[str, str], log: HttpErrorLog
) -> ClientTransport:
    url = interpolate(server.url, variables)
    headers = {key: interpolate(value, variables) for key, value in server.headers.items()}
    auth = _oauth(group, server, url) if server.oauth_client_id else None
    kind = SSETransport if isinstance(server, SseServer) else StreamableHttpTransport
    return kind(url, headers=headers, auth=auth, httpx_client_factory=log.client_factory)


def _oauth(group: str, server: HttpServer | SseServer, url: str) -> OAuth:
    """FastMCP's browser OAuth flow, with tokens kept in a 0700 directory per group."""
    from key_value.aio.stores.filetree import FileTreeStore

    directory = OAUTH_TOKEN_DIR / group
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return OAuth(
        mcp_url=url,
        scopes=server.oauth_scopes,
        client_name="dynamic-mcp",
        client_id=server.oauth_client_id,
        token_storage=FileTreeStore(data_directory=directory),
    )
