"""A remote group's sign-in, run apart from any request: a person's in a browser, or a
service account's token fetched.

    sign_in = SignIn("github", url, server, tokens, credentials)
    link = await sign_in.start()        # within seconds: the link to open (None: no person)
    signed_in = await sign_in.wait()
    SignIn("github", url, server, alices_tokens, user="alice", browser=False)  # a gateway's

Guarantees:
- at most one sign-in per `SignIn` at a time: asking again while one waits gives its link;
- the link is given at once, written to stderr, and a browser opened where there is one
  (`webbrowser`, which honours $BROWSER); the person has `CALLBACK_TIMEOUT` to finish;
- a gateway's named user's sign-in (`browser=False`) ends in that user's tokens
  (`tokens` is their scope); its link goes to that user alone: no browser is opened on
  the gateway and stderr names the user, not the link;
- with a `handover` (a gateway with a public URL) the sign-in ends once the link is
  given: the browser lands on the gateway's route, which finishes it
  (`groups.auth.handover`); without one, on a loopback port of this machine;
- a service account (`oauth_grant: client_credentials`) needs no person: no link, no
  browser; the sign-in fetches its token; nor does a user whose organisation's identity
  provider vouches for them (`id_jag`, given `id_token`: where their ID token comes from);
- the sign-in ends signed in only if the server then answers the probe, and says why not.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import anyio
import httpx2

from groups.auth.credentials import ClientCredentials
from groups.auth.enterprise import EnterpriseOAuth, enterprise_oauth
from groups.auth.handover import HandedOver, Handover
from groups.auth.machine import MachineOAuth, machine_oauth
from groups.auth.oauth import CALLBACK_TIMEOUT, GroupOAuth
from groups.auth.tokens import carry_over_legacy, registered_port

if TYPE_CHECKING:
    from collections.abc import Callable

    from groups.config import HttpServer, SseServer
    from groups.secrets import Redactor
    from groups.storage.store import Scope

__all__ = ["LINK_WAIT", "SignIn"]

logger = logging.getLogger(__name__)

LINK_WAIT = 1.5  # how long a request waits for a new sign-in's link before it answers
# What the sign-in sends to start the flow: any request the server refuses without a token.
_PROBE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "ping",
}
_PROBE_HEADERS = {"Accept": "application/json, text/event-stream"}
_SSE_HEADERS = {"Accept": "text/event-stream"}


class SignIn:
    """One group's browser sign-in, run apart from any request; at most one at a time."""

    def __init__(
        self,
        group: str,
        url: str,
        server: HttpServer | SseServer,
        tokens: Scope,
        credentials: ClientCredentials | None = None,
        *,
        user: str | None = None,
        browser: bool = True,
        handover: Handover | None = None,
        id_token: Callable[[], str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.group = group
        self.url = url
        self.server = server
        self.tokens = tokens
        self.credentials = credentials
        self.user = user  # a gateway's named user, whose tokens these are; None: the implicit
        self.browser = browser
        self.handover = handover  # the gateway's route finishes it (`groups.auth.handover`)
        self.id_token = id_token  # `id_jag`: the ID token to exchange, and who learns it
        self.redactor = redactor
        self.link: str | None = None
        self.error: str | None = None
        self._done = anyio.Event()
        self._news = anyio.Event()  # a link was given, or the sign-in ended
        self._running = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"SignIn({self.group!r}, user={self.user!r}, pending={self.pending})"

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
        try:
            await carry_over_legacy(self.tokens, self.url)
            oauth = await self._oauth()
            async with httpx2.AsyncClient(auth=oauth, timeout=CALLBACK_TIMEOUT + 30) as http:
                status = await self._probe(http)
            if status in (401, 403) or not _holds_token(oauth):
                raise RuntimeError(f"the server still refuses us (HTTP {status})")
            logger.warning("group %s: signed in%s", self.group, self._whom)  # the person waits
        except HandedOver:
            pass  # the link is given; the person's browser ends it on the gateway's route
        except asyncio.CancelledError:
            self.error = "the group was closed or changed"
            raise
        # A refused or abandoned sign-in: say so; the group's next request asks again.
        except Exception as exc:
            self.error = str(exc) or type(exc).__name__
            logger.warning(
                "group %s: sign-in%s did not finish: %s", self.group, self._whom, self.error
            )
        finally:
            self._done.set()
            self._news.set()

    async def _oauth(self) -> GroupOAuth | MachineOAuth | EnterpriseOAuth:
        """A person's OAuth, which asks them in a browser, a service account's, or the
        identity provider's for the user."""
        credentials = self.credentials or ClientCredentials()
        if self.server.oauth_grant == "client_credentials":
            return machine_oauth(self.url, self.server, credentials, self.tokens)
        if self.server.oauth_grant == "id_jag":
            if self.id_token is None or self.redactor is None:
                raise TypeError("an id_jag sign-in needs where its ID token comes from")
            return enterprise_oauth(
                self.url, self.server, credentials, self.tokens, self.id_token, self.redactor
            )
        return GroupOAuth(
            self.url,
            self.server,
            self.tokens,
            interactive=True,
            on_link=self._got_link,
            callback_port=await registered_port(self.tokens, self.url),
            credentials=credentials,
            browser=self.browser,
            handover=self.handover,
        )

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

    @property
    def _whom(self) -> str:
        return f" as user {self.user}" if self.user is not None else ""

    def _got_link(self, link: str) -> None:
        self.link = link
        self._news.set()
        if not self.browser:  # the link is the user's: it goes to them in the result alone
            whom = f"user {self.user}" if self.user is not None else "the client"
            logger.warning("group %s: %s was asked to sign in", self.group, whom)
            return
        logger.warning(
            "group %s needs you to sign in: open %s (waiting up to %g minutes)",
            self.group,
            link,
            CALLBACK_TIMEOUT / 60,
        )


def _holds_token(oauth: GroupOAuth | MachineOAuth | EnterpriseOAuth) -> bool:
    if isinstance(oauth, EnterpriseOAuth):
        return oauth.holds_token
    return oauth.context.current_tokens is not None


_KEEP: set[Any] = set()  # sign-ins in progress, kept from garbage collection
