"""`dynamic-mcp auth`: sign a remote group in ahead of time, sign it out, list who holds tokens.

    dynamic-mcp auth github            # prints the link, opens a browser, waits, reports
    dynamic-mcp auth github --logout   # deletes ~/.dynamic-mcp/oauth-servers/github.json
                                       # (a running server's next refresh finds it gone)
    dynamic-mcp auth --list            # each remote group: signed in or not, and until when
    dynamic-mcp auth github --user alice            # a gateway's user alice: her own tokens
    dynamic-mcp auth github --user alice --logout   # forgets alice's alone

The same sign-in a group starts on its own when its server first asks (`groups.auth.sign_in`),
run in the foreground from a terminal: useful before a client starts, or on a machine
without a browser (open the printed link on any machine that can reach the callback). A
sign-in asks for the larger scope a refused call wanted (`groups.auth.step_up`); a service
account (`oauth_grant: client_credentials`) needs no link: its token is fetched, and said so.
With `--user NAME` it is that gateway user's sign-in, kept in the configured store (local
files or the gateway's Redis) where the gateway looks for NAME's tokens; a service
account is the gateway's own, never a user's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from groups.commands.arguments import ConfigOption, LogLevelOption, config_and_names
from groups.errors import AuthCommandError

if TYPE_CHECKING:
    from groups.auth.tokens import StoredSignIn
    from groups.config import HttpServer, SseServer
    from groups.secrets import Redactor

__all__ = ["auth"]


def auth(
    *arguments: Annotated[str, Parameter(name="[CONFIG] [GROUP]")],
    config: ConfigOption = None,
    logout: bool = False,
    list_: Annotated[bool, Parameter(name="--list")] = False,
    user: str | None = None,
    log_level: LogLevelOption = "error",
) -> None:
    """Sign GROUP in to its OAuth server now, sign it out, or list remote groups' sign-ins.

    Parameters
    ----------
    arguments
        The remote group (an http or sse entry) to sign in or out, none with --list;
        before it, the config's path if not --config.
    logout
        Delete GROUP's stored tokens; its next use asks for a sign-in again.
    list_
        Show every remote group, whether it holds a token, and until when.
    user
        A team gateway's user (a name in its users file, or the JWT's user claim): sign
        in, out or list for that user's own tokens instead of the gateway's.
    """
    import anyio

    from groups.auth.tokens import oauth_tokens
    from groups.config import (
        HttpServer,
        SseServer,
        load_config,
        resolve_config_path,
        use_configured_store,
    )
    from groups.secrets import Redactor
    from groups.serving.logs import configure_logging

    names = [] if list_ else ["GROUP"]
    config, given = config_and_names("auth", arguments, names, config, optional=len(names))
    group = given[0] if given else None
    redactor = Redactor()
    configure_logging(log_level, redactor)
    path = resolve_config_path(config)
    loaded = load_config(path)
    use_configured_store(loaded, path, redactor)
    servers = loaded.servers
    remote = {n: s for n, s in servers.items() if isinstance(s, HttpServer | SseServer)}
    if user is not None and not user:
        raise AuthCommandError("--user needs a user's name")
    if list_:
        anyio.run(_list, remote, path, redactor, user)
        return
    group, server = _remote_group(group, servers, remote, user)
    whose = f" for user {user}" if user is not None else ""
    if logout:
        tokens = oauth_tokens(group, redactor, user=user)
        removed = anyio.run(tokens.remove)
        _audit_logout(loaded.settings.audit_log, path, group, user, removed)
        gone = f"removed {tokens.where}" if removed else "it held no token"
        print(f"Signed out of {group}{whose}: {gone}.")
        return
    anyio.run(_sign_in, group, server, path, redactor, user)


def _audit_logout(
    where: str | None, config_path: Path, group: str, user: str | None, removed: bool
) -> None:
    """A `logout` line in the gateway's audit log, when its settings keep one: an
    operator's sign-out is a change of state like any other."""
    from groups.access import User
    from groups.serving.audit import audit, audit_target

    target = audit_target(where, config_path)
    if target is None:
        return
    audit.open(target, replica="terminal")
    try:
        named = User(user) if user is not None else None
        audit.record("logout", user=named, outcome="ok" if removed else "unknown", group=group)
    finally:
        audit.close()


def _remote_group(
    group: str | None,
    servers: Mapping[str, object],
    remote: Mapping[str, HttpServer | SseServer],
    user: str | None,
) -> tuple[str, HttpServer | SseServer]:
    """GROUP and its entry, if `auth` can sign it in (for `user`, if named)."""
    if group is None:
        raise AuthCommandError("name a group to sign in or out, or pass --list")
    server = remote.get(group)
    if server is None:
        kind = "is not in the config" if group not in servers else "is not a remote group"
        names = ", ".join(remote) or "none"
        raise AuthCommandError(f"group {group!r} {kind} (remote groups: {names})")
    if user is not None and server.oauth_grant == "client_credentials":
        raise AuthCommandError(
            f"group {group!r} signs in as the gateway's service account, shared by every "
            "user: leave out --user"
        )
    if user is not None and server.oauth_grant == "id_jag":
        raise AuthCommandError(
            f"group {group!r} gets each user's token from the JWT they sign in to the "
            "gateway with, at their first call: nothing to sign in to for --user"
        )
    return group, server


async def _sign_in(
    group: str, server: HttpServer | SseServer, path: Path, redactor: Redactor, user: str | None
) -> None:
    from groups.auth.credentials import client_credentials
    from groups.auth.enterprise import id_token_source
    from groups.auth.oauth import CALLBACK_TIMEOUT
    from groups.auth.sign_in import SignIn
    from groups.auth.tokens import oauth_tokens, stored_sign_in
    from groups.config import UnresolvedError, variables_for
    from groups.upstream.transport import resolved_url, uses_authorization_header

    if uses_authorization_header(server):
        raise AuthCommandError(
            f"group {group!r} sends its own Authorization header: nothing to sign in to"
        )
    try:
        variables = variables_for(path)
        url = resolved_url(server, variables, redactor)
        credentials = client_credentials(server, variables, redactor)
    except UnresolvedError as exc:
        raise AuthCommandError(f"group {group!r}: {exc}") from None
    tokens = oauth_tokens(group, redactor, user=user)
    id_token = id_token_source(server, lambda: variables, redactor, user)
    sign_in = SignIn(
        group, url, server, tokens, credentials, user=user, id_token=id_token, redactor=redactor
    )
    whose = f" for user {user}" if user is not None else ""
    link = await sign_in.start(wait=None)
    if server.oauth_grant in ("client_credentials", "id_jag"):  # no person, no link
        if not await sign_in.wait():
            raise AuthCommandError(f"no token for {group}: {sign_in.error}")
        stored = await stored_sign_in(tokens, url)
        print(f"Fetched a token for {group} ({server.oauth_grant}): {_validity(stored)}.")
        return
    if link is not None:
        print(
            f"Sign in to {group}{whose} in a browser (one was opened where possible):\n\n  {link}\n"
        )
        print(f"Waiting for the sign-in, up to {CALLBACK_TIMEOUT / 60:g} minutes...", flush=True)
    if not await sign_in.wait():
        raise AuthCommandError(f"the sign-in to {group} did not finish: {sign_in.error}")
    stored = await stored_sign_in(tokens, url)
    print(f"Signed in to {group}{whose}: {_validity(stored)}; kept in {tokens.where}.")


async def _list(
    remote: dict[str, HttpServer | SseServer],
    path: Path | None,
    redactor: Redactor,
    user: str | None,
) -> None:
    from groups.auth.tokens import oauth_tokens, stored_sign_in
    from groups.config import UnresolvedError, variables_for
    from groups.secrets import shown_url
    from groups.upstream.transport import resolved_url, uses_authorization_header

    if not remote:
        print("No remote (http/sse) groups in the config.")
        return
    for name, server in remote.items():
        if uses_authorization_header(server):
            state = "sends its own Authorization header"
        else:
            try:
                url: str | None = resolved_url(server, variables_for(path), redactor)
            except UnresolvedError:
                url = None  # the group cannot connect anyway; show what the file holds
            machine = server.oauth_grant == "client_credentials"  # the gateway's, not a user's
            tokens = oauth_tokens(name, redactor, user=None if machine else user)
            stored = await stored_sign_in(tokens, url)
            if stored.tokens is not None:
                state = _validity(stored)
            elif stored.unbound:
                state = "holds a token from an older version, bound to no server: sign in again"
            elif stored.elsewhere:
                state = "holds a token for another URL: sign in again"
            else:
                state = "not signed in"
        sys.stdout.write(f"{name}  {shown_url(server.url)}  {state}\n")


def _validity(stored: StoredSignIn) -> str:
    """How long the stored access token lasts, and whether it can be refreshed."""
    expires_at = stored.expires_at
    refresh = " (refreshable)" if stored.tokens and stored.tokens.refresh_token else ""
    if expires_at is None:
        return "signed in, no expiry given" + refresh
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(expires_at))
    if expires_at < time.time():
        return f"signed in, access token expired {when}{refresh}"
    return f"signed in, access token valid until {when}{refresh}"
