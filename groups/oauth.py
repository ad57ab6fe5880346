"""OAuth for remote groups: found from a 401, signed in apart from any request, tokens kept.

    tokens = TokenFile.for_group("github", redactor)   # ~/.dynamic-mcp/oauth-servers/github.json
    auth = GroupOAuth("github", url, server, tokens)    # a session's: never waits for a person
    sign_in = SignIn("github", url, server, tokens)     # the browser flow, in the background
    link = await sign_in.start()                        # within seconds: the link to open

FastMCP's OAuth client does the protocol: discovery from the 401 (RFC 9728 protected
resource metadata, RFC 8414 server metadata), dynamic client registration or a
pre-registered `oauth_client_id`, PKCE, the loopback callback, refresh. What is ours is
where tokens are kept and how the person is asked.

Guarantees:
- a session's requests never wait for a person: where FastMCP would open a browser and wait
  for the callback, the session's `GroupOAuth` raises `AuthorizationRequired`, and the group
  starts a `SignIn` instead, at most one at a time, which gives the link at once, writes it
  to stderr, opens a browser where there is one (`webbrowser`, which honours $BROWSER), and
  waits up to `CALLBACK_TIMEOUT` for the callback;
- tokens are refreshed before they expire (`REFRESH_MARGIN`), and a rotated refresh token
  replaces the stored one;
- one file per group, `<group>.json`, mode 0600 in a 0700 directory, written atomically;
  wider modes found on disk are narrowed, or the file is refused with a message;
- access and refresh tokens and client secrets are known to the `Redactor` from the moment
  they are read or received: no log line, error or result shows them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import tempfile
import threading
import time
import warnings
import webbrowser
from collections.abc import AsyncGenerator
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import httpx2
from fastmcp.client.auth import OAuth
from fastmcp.client.auth.oauth import ClientNotFoundError
from key_value.aio.stores.memory import MemoryStore
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import PrivateAttr

from groups.errors import UnsafeTokenFileError
from groups.failures import AuthorizationRequired
from groups.home import group_file, oauth_token_dir
from groups.secrets import Redactor
from groups.transport import endpoint

if TYPE_CHECKING:
    from groups.config import HttpServer, SseServer

__all__ = [
    "CALLBACK_TIMEOUT",
    "AuthorizationRequired",
    "GroupOAuth",
    "SignIn",
    "TokenFile",
]

logger = logging.getLogger(__name__)

CALLBACK_TIMEOUT = 300.0  # how long a sign-in waits for the person in the browser
LINK_WAIT = 1.5  # how long a request waits for a new sign-in's link before it answers
REFRESH_MARGIN = 60.0  # refresh an access token this long before it expires (at most)
# What the sign-in sends to start the flow: any request the server refuses without a token.
_PROBE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "ping",
}
_PROBE_HEADERS = {"Accept": "application/json, text/event-stream"}
_SSE_HEADERS = {"Accept": "text/event-stream"}


class TokenFile:
    """One group's OAuth tokens and client registration, in one private JSON file.

    Implements the MCP SDK's token storage (`get_tokens`, `set_tokens`, `get_client_info`,
    `set_client_info`) and what FastMCP's `OAuth` reads besides (`get_token_expiry`, `clear`).

    Given the `server` URL, the file is bound to it: tokens written for another server (the
    group's `url` edited since) are never read, so never sent where they were not issued.
    """

    def __init__(
        self, path: Path, redactor: Redactor | None = None, server: str | None = None
    ) -> None:
        self.path = path
        self.server = endpoint(server) if server else None
        self._redactor = redactor or Redactor()

    @classmethod
    def for_group(
        cls, group: str, redactor: Redactor | None = None, server: str | None = None
    ) -> TokenFile:
        return cls(group_file(oauth_token_dir(), group, ".json"), redactor, server)

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    # ---- token storage ------------------------------------------------------------------

    async def get_tokens(self) -> OAuthToken | None:
        raw = self.stored().get("tokens")
        return OAuthToken.model_validate(raw) if raw else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self._learn(tokens.access_token, tokens.refresh_token)
        data = self.stored()
        data["tokens"] = tokens.model_dump(mode="json", exclude_none=True)
        if tokens.expires_in is not None:
            data["expires_at"] = time.time() + tokens.expires_in
        else:
            data.pop("expires_at", None)
        self._write(data)

    async def get_token_expiry(self) -> float | None:
        return self.stored().get("expires_at")

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        raw = self.stored().get("client")
        return OAuthClientInformationFull.model_validate(raw) if raw else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._learn(client_info.client_secret)
        data = self.stored()
        data["client"] = client_info.model_dump(mode="json", exclude_none=True)
        self._write(data)

    async def clear(self) -> None:
        self.delete()

    def callback_port(self) -> int | None:
        """The loopback port the stored registration redirects to, so a sign-in reuses it."""
        client = self.stored().get("client") or {}
        for uri in client.get("redirect_uris") or []:
            port = urlsplit(uri).port
            if urlsplit(uri).hostname == "127.0.0.1" and port:
                return port
        return None

    # ---- the file -----------------------------------------------------------------------

    def stored(self) -> dict[str, Any]:
        """The file's content if it was written for this server, else `{}`."""
        data = self.read()
        written_for = data.get("server")
        if self.server is not None and written_for not in (None, self.server):
            return {}
        return data

    def read(self) -> dict[str, Any]:
        """The file's content; `{}` when there is none.

        Raises:
            UnsafeTokenFileError: the file or its directory is open to others and cannot
                be narrowed, or the file is not JSON.
        """
        if not self.path.exists():
            return {}
        self._make_private()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UnsafeTokenFileError(self.path, f"cannot be read: {exc}") from None
        if not isinstance(data, dict):
            raise UnsafeTokenFileError(self.path, "is not a dynamic-mcp token file")
        tokens, client = data.get("tokens") or {}, data.get("client") or {}
        self._learn(tokens.get("access_token"), tokens.get("refresh_token"))
        self._learn(client.get("client_secret"))
        return data

    def delete(self) -> bool:
        """Remove the file; whether there was one."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def _write(self, data: dict[str, Any]) -> None:
        """Replace the file in one step: a crash leaves the old file or the new, never half."""
        if self.server is not None:
            data["server"] = self.server
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._make_private()
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:  # mkstemp: mode 0600
                json.dump(data, file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _make_private(self) -> None:
        for path, private in ((self.path.parent, 0o700), (self.path, 0o600)):
            if not path.exists():
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077 == 0:
                continue
            try:
                path.chmod(private)
            except OSError:
                raise UnsafeTokenFileError(
                    path, f"is open to others (mode {mode:04o}) and cannot be made {private:04o}"
                ) from None
            logger.warning("%s was open to others (mode %04o): made it %04o", path, mode, private)

    def _learn(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret:
                self._redactor.add(secret)


class GroupOAuth(OAuth):
    """FastMCP's OAuth client for one group, with its tokens in the group's `TokenFile`.

    `interactive=False` (a session's): where a person is needed, raise
    `AuthorizationRequired` and remember it in `needs_sign_in`. `interactive=True` (a
    `SignIn`'s): hand the link to `on_link`, open a browser, and wait for the callback.
    """

    def __init__(
        self,
        url: str,
        server: HttpServer | SseServer,
        tokens: TokenFile,
        *,
        interactive: bool = False,
        on_link: Any = None,
    ) -> None:
        with warnings.catch_warnings():
            # FastMCP warns that memory loses tokens at exit: it is replaced right below.
            warnings.simplefilter("ignore", UserWarning)
            super().__init__(
                mcp_url=url,
                scopes=server.oauth_scopes,
                client_name="dynamic-mcp",
                client_id=server.oauth_client_id,
                token_storage=MemoryStore(),
                callback_host="127.0.0.1",
                # The port the client was registered with: a sign-in that redirects
                # elsewhere is refused, and would register the client anew.
                callback_port=server.oauth_callback_port or tokens.callback_port(),
                callback_timeout=CALLBACK_TIMEOUT,
            )
        self.tokens = tokens
        self.token_storage_adapter = tokens  # type: ignore[assignment]
        self.context.storage = tokens
        # The SDK refreshes only once a token has expired; a request in flight at that
        # moment would be refused and cost a new sign-in. Refresh a little before.
        self.context.update_token_expiry = self._expiry_with_margin  # type: ignore[method-assign]
        self._interactive = interactive
        self._on_link = on_link
        if server.oauth_scopes:
            self.context.client_metadata = _ClientMetadata.keeping(
                self.context.client_metadata, server.oauth_scopes
            )
        self.needs_sign_in = False

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        await self._adopt_stored_tokens()
        async with aclosing(super().async_auth_flow(request)) as flow:
            response = None
            while True:
                try:
                    request = await flow.asend(response)  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
                response = yield request

    async def _adopt_stored_tokens(self) -> None:
        """Take up tokens stored since this client read them: one file serves every session.

        Over HTTP each client has its own upstream session and OAuth client; when one
        refreshes, the server may rotate the refresh token, and the others' copy is spent.
        """
        stored = await self.tokens.get_tokens()
        if stored is None or stored == self.context.current_tokens:
            return
        async with self.context.lock:
            self.context.current_tokens = stored
            expires_at = await self.tokens.get_token_expiry()
            margin = _margin(stored)
            self.context.token_expiry_time = None if expires_at is None else expires_at - margin

    def _expiry_with_margin(self, token: OAuthToken) -> None:
        if token.expires_in is None:
            self.context.token_expiry_time = None
        else:
            self.context.token_expiry_time = time.time() + token.expires_in - _margin(token)

    async def _initialize(self) -> None:
        await super()._initialize()
        expires_at = await self.context.storage.get_token_expiry()  # type: ignore[attr-defined]
        tokens = self.context.current_tokens
        if expires_at is not None and tokens is not None:
            self.context.token_expiry_time = expires_at - _margin(tokens)

    async def redirect_handler(self, authorization_url: str) -> None:
        if not self._interactive:
            self.needs_sign_in = True
            raise AuthorizationRequired(authorization_url)
        # A server that forgot our registration answers 400: register again, once.
        async with httpx2.AsyncClient() as http:
            response = await http.get(authorization_url, follow_redirects=False)
        if response.status_code == 400:
            raise ClientNotFoundError("the OAuth server no longer knows this client")
        if response.status_code not in (200, 302, 303, 307, 308):
            raise RuntimeError(f"the authorization page answers HTTP {response.status_code}")
        if self._on_link is not None:
            self._on_link(authorization_url)
        # webbrowser waits for a browser command to exit, and a browser may only exit once
        # the callback, which starts after this returns, has answered: do not wait.
        threading.Thread(target=webbrowser.open, args=(authorization_url,), daemon=True).start()


class _ClientMetadata(OAuthClientMetadata):
    """Client metadata whose `scope` always holds the config's `oauth_scopes`.

    The SDK sets `scope` to what the server challenged with just before it registers the
    client and asks for authorization; the scopes the user configured are asked for too,
    in both, or the server refuses a scope the client was not registered with.
    """

    _configured: list[str] = PrivateAttr(default_factory=list)

    @classmethod
    def keeping(cls, metadata: OAuthClientMetadata, scopes: list[str]) -> _ClientMetadata:
        kept = cls.model_validate(metadata.model_dump())
        kept._configured = list(scopes)
        kept.scope = metadata.scope
        return kept

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "scope":
            asked = (value or "").split()
            value = " ".join([*asked, *(s for s in self._configured if s not in asked)]) or None
        super().__setattr__(name, value)


class SignIn:
    """One group's browser sign-in, run apart from any request; at most one at a time."""

    def __init__(
        self, group: str, url: str, server: HttpServer | SseServer, tokens: TokenFile
    ) -> None:
        self.group = group
        self.url = url
        self.server = server
        self.tokens = tokens
        self.link: str | None = None
        self.error: str | None = None
        self._done = anyio.Event()
        self._news = anyio.Event()  # a link was given, or the sign-in ended
        self._running = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SignIn({self.group!r}, pending={self.pending})"

    @property
    def pending(self) -> bool:
        """Whether a sign-in waits for the person now."""
        return self._running and not self._done.is_set()

    async def start(self, wait: float | None = LINK_WAIT) -> str | None:
        """The link to sign in with, starting a sign-in unless one is waiting already.

        Waits up to `wait` seconds for the link (None: until the link or the end). None when
        no person is needed after all (tokens were there, or arrived meanwhile), or when
        the link was not there in time: asking again later gives it.
        """
        if not self.pending:
            self._done, self._news = anyio.Event(), anyio.Event()
            self.link, self.error, self._running = None, None, True
            # It outlives the request that started it (a plain task, like a retry), but not
            # its group: `cancel` ends it when the group is closed or changed.
            task = asyncio.get_running_loop().create_task(self._run(), name=f"sign in {self.group}")
            _KEEP.add(task)
            task.add_done_callback(_KEEP.discard)
            self._task = task
        with anyio.move_on_after(wait):
            await self._news.wait()
        return self.link

    def cancel(self) -> None:
        """Stop waiting for the person: the group that asked is gone, or changed."""
        if self._task is not None:
            self._task.cancel()

    async def wait(self) -> bool:
        """Wait until the sign-in ends; whether it ended signed in."""
        await self._done.wait()
        return self.error is None

    async def _run(self) -> None:
        oauth = GroupOAuth(
            self.url, self.server, self.tokens, interactive=True, on_link=self._got_link
        )
        try:
            async with httpx2.AsyncClient(auth=oauth, timeout=CALLBACK_TIMEOUT + 30) as http:
                status = await self._probe(http)
            if status in (401, 403) or await self.tokens.get_tokens() is None:
                raise RuntimeError(f"the server still refuses us (HTTP {status})")
            logger.warning("group %s: signed in", self.group)  # the person waits for this
        except asyncio.CancelledError:
            self.error = "the group was closed or changed"
            raise
        # A refused or abandoned sign-in: say so; the group's next request asks again.
        except Exception as exc:
            self.error = str(exc) or type(exc).__name__
            logger.warning("group %s: sign-in did not finish: %s", self.group, self.error)
        finally:
            self._done.set()
            self._news.set()

    async def _probe(self, http: httpx2.AsyncClient) -> int:
        """Ask the server something it refuses without a token; the status it ends with.

        An SSE server takes only GET at its URL (a POST there is a 405, not a 401): read
        the answer's head and leave the event stream.
        """
        if self.server.type == "sse":
            async with http.stream("GET", self.url, headers=_SSE_HEADERS) as response:
                return response.status_code
        response = await http.post(self.url, json=_PROBE, headers=_PROBE_HEADERS)
        return response.status_code

    def _got_link(self, link: str) -> None:
        self.link = link
        self._news.set()
        logger.warning(
            "group %s needs you to sign in: open %s (waiting up to %g minutes)",
            self.group,
            link,
            CALLBACK_TIMEOUT / 60,
        )


def _margin(token: OAuthToken) -> float:
    """How long before expiry to refresh: a minute, or a third of a short token's life."""
    return min(REFRESH_MARGIN, (token.expires_in or 0) / 3)


_KEEP: set[Any] = set()  # sign-ins in progress, kept from garbage collection
