"""A remote group's OAuth as its sessions use it, and the one way a request learns that a
person must sign in.

    sign_in = GroupSignIn("github", lambda: config, read_variables, redactor, browser=True)
    auth = sign_in.oauth_for(url, user)    # handed to the transport: the user's sessions share it
    raise await sign_in.needed(user, auth) # SignInNeededError, with the link when there is one

`user` is a gateway's named user, whose own tokens sign their requests, or None: the
implicit user (stdio, loopback, one shared token), whose tokens are the group's, as on a
laptop.

Guarantees:
- one OAuth client per endpoint and user, shared by every session of that user: a refresh
  is done once, and a rotated refresh token reaches every session at once; one user's
  tokens never sign another user's requests (a service account's, `client_credentials`,
  are the gateway's own and serve everyone);
- a request never waits for a person: it gets a `SignInNeededError` with the link (waiting
  at most `LINK_WAIT` for it), and at most one browser sign-in runs per group and user at
  a time, whichever request of that user (a first connection, a refused session, one
  during a sign-in) asked; a named user's link is in their own result alone, and their
  sign-in ends in their own tokens;
- from a terminal command, which ends before a browser sign-in could finish, none is
  started: the error says to run `dynamic-mcp auth` (`browser=False`);
- closing the group stops the sign-in, so its callback port is free for the group's successor;
  a user whose access ended (`forget_user`) has their sign-in stopped and their OAuth
  clients dropped, so no token held in memory signs another request of theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from groups.config import HttpServer, ServerConfig, SseServer
from groups.errors import SignInNeededError
from groups.secrets import Redactor
from groups.upstream.background import unattended
from groups.upstream.failures import AuthorizationRequired

if TYPE_CHECKING:
    from groups.auth.credentials import ClientCredentials
    from groups.auth.enterprise import EnterpriseOAuth
    from groups.auth.handover import Handover
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
        # By (user, url): a person's, a service account's, or an identity provider's.
        self._oauth: dict[tuple[str | None, str], GroupOAuth | MachineOAuth | EnterpriseOAuth] = {}
        self._sign_ins: dict[str | None, SignIn] = {}  # by user: the one under way or last done

    def __repr__(self) -> str:
        waiting = [user for user in self._sign_ins if self.pending(user)]
        return f"GroupSignIn({self.group!r}, pending for {waiting})"

    def pending(self, user: str | None) -> bool:
        """Whether `user`'s browser sign-in waits for the person now."""
        sign_in = self._sign_ins.get(user)
        return sign_in is not None and sign_in.pending

    def oauth_for(
        self, url: str, user: str | None = None
    ) -> GroupOAuth | MachineOAuth | EnterpriseOAuth:
        """The OAuth client that signs requests to `url`, made on first use: a person's
        (`GroupOAuth`), a service account's, which never needs one (`machine_oauth`), or
        the user's by their organisation's identity provider, which never needs one either
        (`enterprise_oauth`, from `user`'s own ID token).

        Raises:
            UnresolvedError: a `${VAR}` in its secret or key is unset, or a file unusable.
        """
        from groups.auth.machine import machine_oauth
        from groups.auth.oauth import GroupOAuth

        server = self._remote()
        if server.oauth_grant == "client_credentials":
            user = None  # a service account is the gateway's own: every user shares it
        if (user, url) not in self._oauth:
            credentials = self._credentials(server)
            tokens = self._tokens(user)
            if server.oauth_grant == "client_credentials":
                self._oauth[user, url] = machine_oauth(url, server, credentials, tokens)
            elif server.oauth_grant == "id_jag":
                self._oauth[user, url] = self._enterprise(url, server, credentials, tokens, user)
            else:
                handover = self._handover(user, tokens)  # registered with the same redirect
                self._oauth[user, url] = GroupOAuth(
                    url, server, tokens, credentials=credentials, handover=handover
                )
        return self._oauth[user, url]

    async def needed(
        self, user: str | None = None, auth: GroupOAuth | None = None
    ) -> SignInNeededError:
        """Start `user`'s browser sign-in (unless one waits already); the error that gives
        its link.

        `auth` is the OAuth of the session that was refused, whose URL the sign-in is for;
        without one, the group's URL as it resolves now.
        """
        from groups.auth.sign_in import SignIn
        from groups.upstream.transport import resolved_url

        if not self.browser:
            return SignInNeededError(self.group, None, by_command=True)
        if not self.pending(user):
            server = self._remote()
            if auth is not None:
                url = auth.mcp_url
            else:
                url = resolved_url(server, self._variables(), self._redactor)
            tokens = self._tokens(user)
            handover = self._handover(user, tokens)
            if handover is not None and (link := await handover.waiting_link(url)):
                return SignInNeededError(self.group, link)  # one flow, whichever replica asks
            # A named user signs in on their own machine: the gateway opens no browser.
            browser = user is None and handover is None
            self._sign_ins[user] = SignIn(
                self.group,
                url,
                server,
                tokens,
                self._credentials(server),
                user=user,
                browser=browser,
                handover=handover,
            )
        sign_in = self._sign_ins[user]
        link = await sign_in.start()
        return SignInNeededError(self.group, link, sign_in.error)

    async def told(self, user: str | None) -> Exception:
        """What a request of `user` is told: their sign-in is started (`needed`). An attempt
        nobody waits for (`unattended`) starts none, and is told `AuthorizationRequired`."""
        return AuthorizationRequired(self.group) if unattended() else await self.needed(user)

    async def finish(self, flow: Mapping[str, Any], code: str) -> None:
        """Finish a sign-in on the gateway's route: `code` for tokens, in the scope of the
        user the flow was started for (`groups.auth.handover.finish`).

        Raises:
            OAuthTokenError, httpx2.HTTPError: the token endpoint refused or was not reached.
            UnresolvedError: a `${VAR}` in the client's secret is unset.
        """
        from groups.auth.handover import finish
        from groups.auth.oauth import GroupOAuth

        server = self._remote()
        user = flow.get("user")
        tokens = self._tokens(user)
        oauth = GroupOAuth(
            str(flow["url"]),
            server,
            tokens,
            credentials=self._credentials(server),
            handover=self._handover(user, tokens),
        )
        await finish(oauth, flow, code)

    def forget_user(self, user: str) -> bool:
        """Stop `user`'s sign-in and drop their OAuth clients (the next one reads the store
        anew: tokens deleted there are gone) and the ID token they brought; whether a
        sign-in was waiting for them."""
        from groups.serving.id_tokens import forget

        forget(user)
        sign_in = self._sign_ins.pop(user, None)
        for key in [key for key in self._oauth if key[0] == user]:
            del self._oauth[key]
        if sign_in is None:
            return False
        waiting = sign_in.pending
        sign_in.cancel()
        return waiting

    def cancel(self) -> None:
        """Stop waiting for the people: the group is closed or changed."""
        for sign_in in self._sign_ins.values():
            sign_in.cancel()

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

    def _enterprise(
        self,
        url: str,
        server: HttpServer | SseServer,
        credentials: ClientCredentials,
        tokens: Scope,
        user: str | None,
    ) -> EnterpriseOAuth:
        """`user`'s OAuth by the organisation's identity provider: their own ID token."""
        from groups.auth.enterprise import enterprise_oauth, id_token_source

        id_token = id_token_source(server, self._variables, self._redactor, user)
        return enterprise_oauth(url, server, credentials, tokens, id_token, self._redactor)

    def _handover(self, user: str | None, tokens: Scope) -> Handover | None:
        """Where `user`'s sign-in ends: the gateway's route (with a public URL), or None:
        a loopback port here."""
        from groups.auth.handover import Handover

        return Handover.configured(self.group, user, tokens, self._redactor)

    def _tokens(self, user: str | None) -> Scope:
        from groups.auth.tokens import oauth_tokens

        return oauth_tokens(self.group, self._redactor, user=user)
