"""A remote group's OAuth as its sessions use it, and the one way a request learns that a
person must sign in.

    sign_in = GroupSignIn("github", lambda: config, read_variables, redactor, browser=True)
    auth = sign_in.oauth_for(url)          # handed to the transport: shared by every session
    raise await sign_in.needed(auth)       # SignInNeededError, with the link when there is one

Guarantees:
- one OAuth client per endpoint, shared by every session of the group: a refresh is done
  once, and a rotated refresh token reaches every session at once;
- a request never waits for a person: it gets a `SignInNeededError` with the link (waiting
  at most `LINK_WAIT` for it), and at most one browser sign-in runs per group at a time,
  whichever request (a first connection, a refused session, one during a sign-in) asked;
- from a terminal command, which ends before a browser sign-in could finish, none is
  started: the error says to run `dynamic-mcp auth` (`browser=False`);
- closing the group stops the sign-in, so its callback port is free for the group's successor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from groups.config import HttpServer, ServerConfig, SseServer
from groups.errors import SignInNeededError
from groups.secrets import Redactor

if TYPE_CHECKING:
    from groups.auth.credentials import ClientCredentials
    from groups.auth.machine import MachineOAuth
    from groups.auth.oauth import GroupOAuth
    from groups.auth.sign_in import SignIn
    from groups.storage.store import Scope

__all__ = ["GroupSignIn"]


class GroupSignIn:
    """One remote group's OAuth clients and its browser sign-in, the one under way or last done."""

    def __init__(
        self,
        group: str,
        config: Callable[[], ServerConfig],
        variables: Callable[[], Mapping[str, str]],
        redactor: Redactor,
        *,
        browser: bool = True,
    ) -> None:
        self.group = group
        self.browser = browser
        self._config = config  # read at each use: a reload may change the entry in place
        self._variables = variables  # read again at each sign-in, as at each connection
        self._redactor = redactor
        self._oauth: dict[str, GroupOAuth | MachineOAuth] = {}  # by endpoint URL
        self._sign_in: SignIn | None = None

    def __repr__(self) -> str:
        return f"GroupSignIn({self.group!r}, pending={self.pending})"

    @property
    def pending(self) -> bool:
        """Whether a browser sign-in waits for the person now."""
        return self._sign_in is not None and self._sign_in.pending

    def oauth_for(self, url: str) -> GroupOAuth | MachineOAuth:
        """The OAuth client that signs requests to `url`, made on first use: a person's
        (`GroupOAuth`), or a service account's, which never needs one (`machine_oauth`).

        Raises:
            UnresolvedError: a `${VAR}` in its secret or key is unset, or a file unusable.
        """
        from groups.auth.machine import machine_oauth
        from groups.auth.oauth import GroupOAuth

        if url not in self._oauth:
            server = self._remote()
            credentials = self._credentials(server)
            if server.oauth_grant == "client_credentials":
                self._oauth[url] = machine_oauth(url, server, credentials, self._tokens())
            else:
                self._oauth[url] = GroupOAuth(url, server, self._tokens(), credentials=credentials)
        return self._oauth[url]

    async def needed(self, auth: GroupOAuth | None = None) -> SignInNeededError:
        """Start the browser sign-in (unless one waits already); the error that gives its link.

        `auth` is the OAuth of the session that was refused, whose URL the sign-in is for;
        without one, the group's URL as it resolves now.
        """
        from groups.auth.sign_in import SignIn
        from groups.upstream.transport import resolved_url

        if not self.browser:
            return SignInNeededError(self.group, None, by_command=True)
        if self._sign_in is None or not self._sign_in.pending:
            server = self._remote()
            if auth is not None:
                url = auth.mcp_url
            else:
                url = resolved_url(server, self._variables(), self._redactor)
            credentials = self._credentials(server)
            self._sign_in = SignIn(self.group, url, server, self._tokens(), credentials)
        link = await self._sign_in.start()
        return SignInNeededError(self.group, link, self._sign_in.error)

    def cancel(self) -> None:
        """Stop waiting for the person: the group is closed or changed."""
        if self._sign_in is not None:
            self._sign_in.cancel()

    def _remote(self) -> HttpServer | SseServer:
        config = self._config()
        if not isinstance(config, HttpServer | SseServer):
            # Only a remote transport asks for OAuth: reaching here is a bug, not a config error.
            raise TypeError(f"group {self.group!r} is not remote: it has no OAuth")
        return config

    def _credentials(self, server: HttpServer | SseServer) -> ClientCredentials:
        """The entry's client secret and key, read anew for each OAuth client and sign-in.

        Raises:
            UnresolvedError: a `${VAR}` is unset or a `${file:PATH}` unusable.
        """
        from groups.auth.credentials import client_credentials

        return client_credentials(server, self._variables(), self._redactor)

    def _tokens(self) -> Scope:
        from groups.auth.tokens import oauth_tokens

        return oauth_tokens(self.group, self._redactor)
