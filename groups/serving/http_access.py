"""Who may talk to dynamic-mcp served over HTTP: a bearer token off loopback, no foreign page.

    auth = http_auth(host, token_file=None, users=None, jwt=JwtSettings())  # None on loopback
    server = build_server(path, auth=auth)
    await server.run_http_async(host=host, port=port, **browser_guard(host))

Guarantees:
- on a host other than loopback (`0.0.0.0`, a LAN address) serving needs auth: one shared
  token, from `DYNAMIC_MCP_HTTP_TOKEN` or a file only its owner can read, or named users
  (a users file or the organisation's JWTs, `groups.serving.users`); without any it
  refuses to start, in one line that says how to give one; given two of these at once it
  refuses too, saying which;
- with auth (on any host) a request without a token, or with one not accepted, gets 401;
- a browser page from another origin gets 403 and a request naming a host we do not
  serve gets 421, whatever the address (DNS-rebinding protection): both are FastMCP's own
  Host/Origin guard; pages on loopback and the server's own origin pass, and the names of
  `settings.http.allowed_hosts`/`allowed_origins`, each refusal logged saying so
  (`groups.serving.host_refusals`);
- the token is compared in constant time and never logged.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from groups.errors import UnsafeServingError
from groups.storage.private_files import NotPrivateError, read_private

if TYPE_CHECKING:
    from fastmcp.server.auth import AuthProvider

    from groups.serving.users import JwtSettings

__all__ = [
    "TOKEN_ENV_VAR",
    "browser_guard",
    "http_auth",
    "http_token",
    "is_loopback",
]

TOKEN_ENV_VAR = "DYNAMIC_MCP_HTTP_TOKEN"
# Pages served from this machine (an inspector on localhost) may call a local server.
LOOPBACK_ORIGINS = [
    f"{scheme}://{host}:*"
    for scheme in ("http", "https")
    for host in ("localhost", "127.0.0.1", "[::1]")
]


def http_auth(
    host: str, *, token_file: Path | None, users: Path | None, jwt: JwtSettings
) -> AuthProvider | None:
    """Who may connect: named users (a users file or JWTs), else one shared token, else
    nobody checked (loopback only).

    Raises:
        UnsafeServingError: two kinds of auth are given, one is unusable (see
            `UsersFile.read`, `JwtSettings.verifier`, `http_token`), or none is given for a
            host other than loopback.
    """
    if users is None and not jwt.given:
        token = http_token(host, token_file)
        if not token:
            return None
        from groups.serving.bearer_token import BearerToken  # FastMCP's auth: once it serves

        return BearerToken(token)
    # Imported only for a gateway: JWT verification brings in a crypto stack.
    from groups.serving.users import UsersFile

    shared = (
        "--token-file" if token_file else TOKEN_ENV_VAR if os.environ.get(TOKEN_ENV_VAR) else ""
    )
    if users is not None and jwt.given:
        clash = "a users file (--users) and JWTs (--jwks-url/--jwt-public-key…)"
    elif shared:
        named = "a users file (--users)" if users is not None else "JWTs"
        clash = f"{named} and one shared token ({shared})"
    else:
        return UsersFile.read(users) if users is not None else jwt.verifier()
    raise UnsafeServingError(f"give one way to check who is asking, not both: {clash}")


def http_token(host: str, token_file: Path | None) -> str | None:
    """The token HTTP clients must present, or None where none is needed.

    Raises:
        UnsafeServingError: `host` is not loopback and no token is configured, or the token
            file is missing, empty, or readable by others.
    """
    token = _read_token_file(token_file) if token_file else os.environ.get(TOKEN_ENV_VAR, "")
    if token:
        return token
    if is_loopback(host):
        return None
    raise UnsafeServingError(
        f"refusing to serve on {host} without a token: anyone who can reach it could use "
        f"every configured server. Set {TOKEN_ENV_VAR}, or pass --token-file PATH "
        f"(a file only you can read), or --users PATH or --jwks-url URL for a team "
        f"(docs/gateway.md), or serve on 127.0.0.1"
    )


def browser_guard(host: str) -> dict[str, Any]:
    """Options for `run_http_async` that turn FastMCP's Host/Origin guard on, for `host`."""
    from groups.config.public_url import public_url

    # The gateway's own sign-in page posts from its public origin, which a proxy before
    # it may not pass on as the request's Host.
    public = urlsplit(public_url() or "")
    own = [f"{public.scheme}://{public.netloc}"] if public.netloc else []
    return {
        "host_origin_protection": True,
        # Off loopback the client's Host is the LAN name or address, unknown here: the
        # token guards that door; Origin is still checked against the request's own host.
        "allowed_hosts": None if is_loopback(host) else ["*"],
        "allowed_origins": [*LOOPBACK_ORIGINS, *own],
    }


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read_token_file(path: Path) -> str:
    try:
        token = read_private(path).strip()
    except NotPrivateError as exc:
        raise UnsafeServingError(
            f"the token file {path} is readable by others (mode {exc.mode:04o}): "
            f"run chmod 600 {path}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise UnsafeServingError(f"cannot read the token file {path}: {reason}") from None
    if not token:
        raise UnsafeServingError(f"the token file {path} is empty")
    return token
