"""Why a connection attempt failed, in one line, and whether trying again can help.

    failure = classify(exc)          # Failure(reason="command not found: 'npx'", permanent=True)

FastMCP wraps most connect failures in `RuntimeError("Client failed to connect: …")`; the
useful part is the innermost cause, which is translated here once.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import anyio
import httpx2
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR

from groups.errors import StoreUnavailableError

__all__ = [
    "AuthorizationRefused",
    "AuthorizationRequired",
    "Failure",
    "answered_with_http_error",
    "caused_by",
    "classify",
    "is_connection_lost",
]

# HTTP answers that no retry will change: fix the URL or the credentials.
PERMANENT_HTTP_STATUSES = frozenset({400, 401, 403, 404, 405, 406, 410, 415})


class AuthorizationRequired(Exception):
    """A remote server wants a person to sign in (OAuth), which a request cannot wait for."""


class AuthorizationRefused(Exception):
    """No token was to be had without a person (an identity provider or an authorization
    server refused, or a setting is missing): the message says which side and setting.
    `permanent`: only a change of the config can help (a policy or a file may change)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Failure:
    """A connection failure as the model and the user should read it."""

    reason: str
    permanent: bool


def classify(
    exc: BaseException,
    http_error: tuple[int, str] | None = None,
    command: str | None = None,
) -> Failure:
    """Translate a connect-time exception (with its causes) into a `Failure`.

    `http_error` is the last HTTP error status and URL seen during the attempt, if any;
    `command` is a stdio upstream's command as the config writes it, the name to show.
    """
    # Why there was no token comes before the 401 it led to: it names what to fix.
    refused = next(
        (cause for cause in _chain(exc) if isinstance(cause, AuthorizationRefused)), None
    )
    if refused is not None:
        return Failure(str(refused), permanent=refused.permanent)
    if http_error is not None:
        status, url = http_error
        reason = f"HTTP {status} from {url}"
        if status == 401:
            reason += (
                ": the server wants credentials and offers no OAuth sign-in; add an "
                "Authorization header to this group's entry"
            )
        return Failure(reason, permanent=status in PERMANENT_HTTP_STATUSES)
    for cause in _chain(exc):
        shown = repr(command or getattr(cause, "filename", None))
        if isinstance(cause, StoreUnavailableError):  # tokens are in the store: no connect
            return Failure(str(cause), permanent=False)
        if isinstance(cause, FileNotFoundError):
            return Failure(f"command not found: {shown}", permanent=True)
        if isinstance(cause, PermissionError):
            return Failure(f"command is not executable: {shown}", permanent=True)
        if isinstance(cause, OSError) and cause.errno == errno.ENOEXEC:
            return Failure(f"command is not a program: {shown}", permanent=True)
        if isinstance(cause, httpx2.HTTPStatusError):
            status = cause.response.status_code
            return Failure(f"HTTP {status}", permanent=status in PERMANENT_HTTP_STATUSES)
        if isinstance(cause, httpx2.ConnectError):
            return Failure(f"cannot connect: {cause}", permanent=False)
        if isinstance(cause, httpx2.TransportError):
            return Failure(f"connection failed: {cause}", permanent=False)
        if isinstance(cause, MCPError):
            text = str(cause)
            if cause.code == CONNECTION_CLOSED:
                return Failure(
                    "the upstream closed the connection while starting "
                    "(a stdio server that exited: its stderr in the log says why)",
                    permanent=False,
                )
            return Failure(text, permanent="protocol version" in text.lower())
        if isinstance(cause, TimeoutError):
            return Failure("no answer to initialize in time", permanent=False)
    text = str(exc).strip().removeprefix("Client failed to connect: ")
    return Failure(text.splitlines()[0] if text else type(exc).__name__, permanent=False)


def is_connection_lost(exc: BaseException) -> bool:
    """Whether a request failed because the upstream session ended under it."""
    for cause in _chain(exc):
        if isinstance(cause, MCPError) and cause.code == CONNECTION_CLOSED:
            return True
        if isinstance(cause, anyio.ClosedResourceError | anyio.BrokenResourceError):
            return True
    return False


def answered_with_http_error(exc: BaseException) -> bool:
    """Whether a request failed with the MCP SDK's stand-in for an HTTP error status
    ("Server returned an error response"): what the status was is in `HttpErrorLog`."""
    return any(
        isinstance(cause, MCPError) and cause.code == INTERNAL_ERROR for cause in _chain(exc)
    )


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `exc`, or anything that caused it, is a `kind`."""
    return any(isinstance(cause, kind) for cause in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, innermost last; exception groups by first member."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 20:
        chain.append(current)
        if isinstance(current, BaseExceptionGroup) and current.exceptions:
            current = current.exceptions[0]
        else:
            current = current.__cause__ or current.__context__
    return chain
