"""FastMCP's Host/Origin guard with the config's allowed names, and a word for each refusal.

    refusals = HostRefusals()
    refusals.attach(app)          # takes over FastMCP's guard of `app`, if it has one
    refusals.use(settings.http)   # once the config is loaded: allowed_hosts, allowed_origins

FastMCP builds its guard (`HostOriginGuardMiddleware`) with the app, from the options
`groups.serving.http_access.browser_guard` gives; the config is read only later, in the
lifespan, and the guard refuses without a word. So the guard is built again here from the
same options plus the config's names.

Guarantees:
- which requests pass is decided by FastMCP's own guard: the config only adds names to
  what it allows (`allowed_hosts` also narrows the "any Host" of a server off loopback);
- each refusal, `421` for a Host and `403` for an Origin, is logged at WARNING with the
  name it saw and the setting that would let it in, once per name a minute, and at most
  `LINES_PER_MINUTE` lines a minute however many names are tried (the rest are counted in
  the next line); what a client sent is quoted, never written raw into the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fastmcp.server.http import HostOriginGuardMiddleware
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groups.internals import host_origin_guard

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from groups.config import HttpSettings

__all__ = ["HostRefusals"]

logger = logging.getLogger(__name__)

WINDOW = 60.0  # seconds: a name refused again within this is not logged again
LINES_PER_MINUTE = 20  # refusal lines at most, however many names are tried
QUOTED_LENGTH = 120  # characters of a client's Host or Origin quoted in a line
_PASSED = "dynamic_mcp.passed_host_guard"  # the scope's mark: the guard let it through


class HostRefusals:
    """FastMCP's Host/Origin guard of one app, with the config's names (see the module)."""

    def __init__(self) -> None:
        self.hosts: list[str] = []  # settings.http.allowed_hosts
        self.origins: list[str] = []  # settings.http.allowed_origins
        self._options: dict[str, Any] | None = None  # FastMCP's guard's, as it was built
        self._guards: list[_Guard] = []
        self._said = _Said()

    def __repr__(self) -> str:
        state = "no guard" if self._options is None else f"hosts {self.hosts or 'default'}"
        return f"HostRefusals({state})"

    def attach(self, app: Starlette) -> None:
        """Take over `app`'s Host/Origin guard; an app without one is left as it is."""
        found = host_origin_guard(app)
        if found is None:
            return
        index, options = found
        self._options = options
        app.user_middleware[index] = Middleware(_Guard, refusals=self)

    def use(self, settings: HttpSettings) -> None:
        """Allow the names of `settings` too, from the next request on."""
        self.hosts, self.origins = list(settings.allowed_hosts), list(settings.allowed_origins)
        for guard in self._guards:
            guard.build()

    def guard_options(self) -> dict[str, Any]:
        """FastMCP's guard's options with the config's names added."""
        options = dict(self._options or {})
        if self.hosts:
            # FastMCP always allows localhost and the address a request came in on.
            options["allowed_hosts"] = list(self.hosts)
        if self.origins:
            options["allowed_origins"] = [*(options.get("allowed_origins") or ()), *self.origins]
        return options

    def refused(self, status: int, headers: Headers) -> None:
        """Say why the guard refused a request, unless it was said a moment ago."""
        if status == 421:
            host = headers.get("host", "")
            name = _without_port(host)
            said = self._said.should_say(f"host {name}")
            if said is not None:
                logger.warning(self._host_refusal(host, name) + said)
        elif status == 403:
            origin = headers.get("origin", "")
            said = self._said.should_say(f"origin {origin}")
            if said is not None:
                logger.warning(_origin_refusal(origin) + said)

    def _host_refusal(self, host: str, name: str) -> str:
        if not host:
            return "refused a request without a Host header (421 Misdirected Request)"
        allowed = ", ".join(["localhost", "127.0.0.1", "::1", *self.hosts])
        example = f'"settings": {{"http": {{"allowed_hosts": [{_json([*self.hosts, name])}]}}}}'
        return (
            f"refused a request for Host {_quoted(host)} (421 Misdirected Request): this "
            f"server answers to {allowed} and the address it listens on. If clients reach "
            f"it by that name (a load balancer or proxy in front), allow it in the config: "
            f"{example}"
        )


def _origin_refusal(origin: str) -> str:
    return (
        f"refused a request from a browser page of origin {_quoted(origin)} (403 Forbidden "
        f"Origin): only pages of this machine and of the server's own origin may call it. "
        f'If that page should, allow it in the config: "settings": {{"http": '
        f'{{"allowed_origins": [{_json([origin])}]}}}}'
    )


class _Guard:
    """The ASGI middleware in place of FastMCP's guard: the guard, built again when the
    config's names change, and a word for each request it refuses."""

    def __init__(self, app: ASGIApp, *, refusals: HostRefusals) -> None:
        self.app, self.refusals = app, refusals
        self.build()
        refusals._guards.append(self)

    def build(self) -> None:
        self.guard = HostOriginGuardMiddleware(self._through, **self.refusals.guard_options())

    async def _through(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_PASSED] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and not scope.get(_PASSED):
                self.refusals.refused(message["status"], Headers(scope=scope))
            await send(message)

        await self.guard(scope, receive, watched)


class _Said:
    """Which refusals were logged in the last minute, so that each is said once."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}  # what was said, and when
        self._unsaid = 0  # refusals of other names past LINES_PER_MINUTE

    def should_say(self, what: str) -> str | None:
        """None if `what` is not to be logged now, else the line's ending (empty, or how
        many refusals went unsaid)."""
        now = time.monotonic()
        if len(self._last) >= LINES_PER_MINUTE or what in self._last:
            self._last = {key: at for key, at in self._last.items() if now - at < WINDOW}
        if what in self._last:
            return None
        if len(self._last) >= LINES_PER_MINUTE:
            self._unsaid += 1
            return None
        self._last[what] = now
        unsaid, self._unsaid = self._unsaid, 0
        return f" ({unsaid} more refusals of other names in the last minute)" if unsaid else ""


def _without_port(host: str) -> str:
    """`mcp.example.com:443` → `mcp.example.com`; `[::1]:8931` → `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _quoted(text: str) -> str:
    """What a client sent, safe in a log line: quoted, escaped, cut short."""
    shown = text[:QUOTED_LENGTH] + ("…" if len(text) > QUOTED_LENGTH else "")
    return repr(shown)


def _json(names: Sequence[str]) -> str:
    import json

    return ", ".join(json.dumps(name[:QUOTED_LENGTH]) for name in names)
