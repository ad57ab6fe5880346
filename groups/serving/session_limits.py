"""How many legacy sessions each named user may hold, and how fast they may open them.

    limits = SessionLimits(then=sessions.handle)       # after `RequestBodies`, identity known
    limits.use(store, settings.http)                   # when the config is loaded
    await limits.handle(app, scope, receive, send)

A legacy (2025-11-25 and earlier) `initialize` opens a session the SDK keeps in memory
(15-40 KB each, and a record in Redis): one user opening thousands would reach the SDK's
one limit for everybody and lock the others out. So each named user has their own:

Guarantees:
- a user holds at most `sessions_per_user` sessions and opens at most
  `session_opens_per_minute` a minute, counted across every replica when the store is
  shared (one Redis script: two replicas cannot both take the last place), in this
  process otherwise; a refused open is `429` with `Retry-After` (when a place frees up)
  and a JSON-RPC error naming the user, the limit and its setting; it counts against that
  user alone, never another;
- a session holds its place while it can live: `session_idle_timeout` from its last use
  (renewed at most every `HttpSettings.renew_every` with a shared store), and gives it
  back when its client ends it (DELETE); one the SDK's idle timeout ends frees it then;
- the implicit user (stdio, loopback, one shared token) and 2026-07-28 requests, which
  open no session, are left to the SDK's own limit (`max_sessions`);
- a user whose sessions all ended at once (removed, revoked: `forget`) has every place
  given back, on every replica when the store is shared;
- the store down: an open is `503` naming the store, as for the session's record.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from uuid import uuid4

from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from groups.access import User, user_of_scope
from groups.config import HttpSettings
from groups.errors import StoreUnavailableError
from groups.serving.audit import audit
from groups.serving.request_bodies import initialize_params, json_error, posted_messages
from groups.storage.home import user_prefix
from groups.storage.shared import SharedStore

if TYPE_CHECKING:
    from groups.storage.store import Store

__all__ = ["RATE_WINDOW", "Refusal", "SessionLimits", "forget_places"]

logger = logging.getLogger(__name__)

RATE_WINDOW = 60.0  # seconds: `session_opens_per_minute` counts the opens of the last one
TOO_MANY = -32000  # the JSON-RPC error code of a refusal: a server error, not a bad request

Handler = Callable[[ASGIApp, Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Refusal:
    """Why a user may not open a session now, and in how many seconds to ask again."""

    limit: str  # the setting: "sessions_per_user" or "session_opens_per_minute"
    retry_after: float


class _Places(Protocol):
    """Where a user's sessions hold their places: this process, or the shared store."""

    async def take(
        self, user: str, place: str, *, lifetime: float, most: int, rate: int
    ) -> Refusal | None: ...
    async def rename(self, user: str, place: str, session_id: str) -> None: ...
    async def renew(self, user: str, session_id: str, *, lifetime: float) -> None: ...
    async def give_back(self, user: str, place: str) -> None: ...
    async def forget(self, user: str) -> None: ...


class SessionLimits:
    """Each named user's own limits on legacy sessions (see the module)."""

    def __init__(self, *, then: Handler) -> None:
        self.settings = HttpSettings()
        self._then = then
        self._places: _Places = _LocalPlaces()
        self._renewed: dict[str, float] = {}  # session id -> when its place was renewed

    def __repr__(self) -> str:
        return f"SessionLimits({self._places!r}, {self.settings.sessions_per_user} per user)"

    def use(self, store: Store, settings: HttpSettings) -> None:
        """Count places in `store` when it is shared, with `settings`' limits."""
        self.settings = settings
        self._places = _SharedPlaces(store) if isinstance(store, SharedStore) else _LocalPlaces()

    async def handle(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        user = user_of_scope(scope)
        headers = Headers(scope=scope)
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if user is None or (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS):
            await self._then(app, scope, receive, send)
            return
        session_id = headers.get(MCP_SESSION_ID_HEADER)
        if session_id is None:
            posted = posted_messages(scope) if scope["method"] == "POST" else []
            if initialize_params(posted) is not None:
                await self._open(user, app, scope, receive, send)
            else:
                await self._then(app, scope, receive, send)
            return
        try:
            await self._renew_when_due(user, session_id)
        except StoreUnavailableError as exc:
            logger.debug("session %s…: its place not renewed: %s", session_id[:8], exc)
        if scope["method"] != "DELETE":
            await self._then(app, scope, receive, send)
            return

        async def ending(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 300:
                # Given back before the client hears the session ended: its next open
                # must find the place free.
                self._renewed.pop(session_id, None)
                await self._give_back(user, session_id)
                audit.record("session_closed", user=user, outcome="ok", session=session_id[:8])
            await send(message)

        await self._then(app, scope, receive, ending)

    async def _open(
        self, user: User, app: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        settings, place = self.settings, uuid4().hex  # the session id is not known yet
        try:
            refusal = await self._places.take(
                user.name,
                place,
                lifetime=settings.session_lifetime,
                most=settings.sessions_per_user,
                rate=settings.session_opens_per_minute,
            )
        except StoreUnavailableError as exc:
            await json_error(503, str(exc))(scope, receive, send)
            return
        if refusal is not None:
            await self._refuse(user, refusal)(scope, receive, send)
            return
        opened: list[str] = []

        async def naming(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 300:
                session_id = Headers(raw=message["headers"]).get(MCP_SESSION_ID_HEADER)
                if session_id is not None:
                    opened.append(session_id)
                    audit.record("session_opened", user=user, outcome="ok", session=session_id[:8])
                    self._renewed[session_id] = time.monotonic()
                    try:
                        await self._places.rename(user.name, place, session_id)
                    except StoreUnavailableError as exc:  # the place is held all the same
                        logger.info(
                            "session %s…'s place keeps its first name: %s", session_id[:8], exc
                        )
            await send(message)

        try:
            await self._then(app, scope, receive, naming)
        finally:
            if not opened:
                await self._give_back(user, place)

    def _refuse(self, user: User, refusal: Refusal) -> ASGIApp:
        settings, wait = self.settings, max(1, math.ceil(refusal.retry_after))
        if refusal.limit == "sessions_per_user":
            said = (
                f"user {user.name!r} holds {settings.sessions_per_user} sessions, the most "
                f"one user may (settings.http.sessions_per_user): end one, or try again "
                f"in {wait}s"
            )
        else:
            said = (
                f"user {user.name!r} opened {settings.session_opens_per_minute} sessions "
                f"in the last minute, the most one user may "
                f"(settings.http.session_opens_per_minute): try again in {wait}s"
            )
        logger.warning("refused a session to user %r: %s", user.name, refusal.limit)
        audit.record("session_refused", user=user, outcome="limited", limit=refusal.limit)
        return json_error(429, said, code=TOO_MANY, headers={"Retry-After": str(wait)})

    async def forget(self, user: str) -> None:
        """Give back every place `user` holds: their sessions all ended."""
        try:
            await self._places.forget(user)
        except StoreUnavailableError as exc:
            logger.info("the session places of user %r stay taken until they expire: %s", user, exc)

    async def _renew_when_due(self, user: User, session_id: str) -> None:
        now = time.monotonic()
        if isinstance(self._places, _SharedPlaces):
            if now - self._renewed.get(session_id, -math.inf) < self.settings.renew_every:
                return  # most requests of a session make no round trip to Redis
            if len(self._renewed) > self.settings.max_sessions:
                self._renewed = {}  # ended by idleness, never told: renewed at next use
        self._renewed[session_id] = now
        await self._places.renew(user.name, session_id, lifetime=self.settings.session_lifetime)

    async def _give_back(self, user: User, place: str) -> None:
        try:
            await self._places.give_back(user.name, place)
        except StoreUnavailableError as exc:
            logger.info("a session place of user %r stays taken until it expires: %s", user, exc)


# ---- places: in this process ---------------------------------------------------------------


@dataclass
class _UserPlaces:
    held: dict[str, float] = field(default_factory=dict)  # place or session -> until
    opens: deque[float] = field(default_factory=deque)  # when, within the last window


class _LocalPlaces:
    """Places counted in this process: one replica, or the local store."""

    def __init__(self) -> None:
        self._users: dict[str, _UserPlaces] = {}

    def __repr__(self) -> str:
        return "local places"

    async def take(
        self, user: str, place: str, *, lifetime: float, most: int, rate: int
    ) -> Refusal | None:
        now = time.monotonic()
        places = self._users.setdefault(user, _UserPlaces())
        while places.opens and places.opens[0] <= now - RATE_WINDOW:
            places.opens.popleft()
        places.held = {held: until for held, until in places.held.items() if until > now}
        if len(places.opens) >= rate:
            return Refusal("session_opens_per_minute", places.opens[0] + RATE_WINDOW - now)
        if len(places.held) >= most:
            return Refusal("sessions_per_user", min(places.held.values()) - now)
        places.opens.append(now)
        places.held[place] = now + lifetime
        return None

    async def rename(self, user: str, place: str, session_id: str) -> None:
        held = self._users[user].held
        held[session_id] = held.pop(place, time.monotonic())

    async def renew(self, user: str, session_id: str, *, lifetime: float) -> None:
        held = self._users.get(user, _UserPlaces()).held
        if session_id in held:
            held[session_id] = time.monotonic() + lifetime

    async def give_back(self, user: str, place: str) -> None:
        self._users.get(user, _UserPlaces()).held.pop(place, None)

    async def forget(self, user: str) -> None:
        self._users.get(user, _UserPlaces()).held.clear()  # the opens still count: a rate


# ---- places: in the shared store, for every replica -----------------------------------------

# KEYS: the user's places, their opens (sorted sets scored by Redis's own clock, the same
# for every replica). ARGV: the place, its lifetime, the most places, the most opens a
# window, the window. Returns {"", 0} when taken, else {limit, seconds until it frees}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local lifetime, most, rate, window = tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= rate then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {'session_opens_per_minute', tostring(tonumber(oldest[2]) + window - now)}
end
if redis.call('ZCARD', KEYS[1]) >= most then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'sessions_per_user', tostring(tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZADD', KEYS[1], now + lifetime, ARGV[1])
redis.call('EXPIRE', KEYS[2], math.ceil(window))
redis.call('EXPIRE', KEYS[1], math.ceil(lifetime), 'GT')
redis.call('EXPIRE', KEYS[1], math.ceil(lifetime), 'NX')
return {'', '0'}
"""
# KEYS: the user's places. ARGV: the place, the session id it becomes.
_RENAME = """
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if deadline then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[1], deadline, ARGV[2])
end
return 0
"""
# KEYS: the user's places. ARGV: the session, its lifetime from now. Only a held place.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])), 'GT')
return 0
"""

_GIVE_BACK = "return redis.call('ZREM', KEYS[1], ARGV[1])"  # KEYS: places; ARGV: the place
_FORGET = "return redis.call('DEL', KEYS[1])"  # KEYS: places


class _SharedPlaces:
    """Places counted in Redis, so a user's sessions on every replica count together."""

    def __init__(self, store: SharedStore) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"places in {self._store.shown}"

    async def take(
        self, user: str, place: str, *, lifetime: float, most: int, rate: int
    ) -> Refusal | None:
        limit, wait = await self._store.run_script(
            _TAKE, _keys(user), [place, lifetime, most, rate, RATE_WINDOW]
        )
        return Refusal(limit, float(wait)) if limit else None

    async def rename(self, user: str, place: str, session_id: str) -> None:
        await self._store.run_script(_RENAME, _keys(user)[:1], [place, session_id])

    async def renew(self, user: str, session_id: str, *, lifetime: float) -> None:
        await self._store.run_script(_RENEW, _keys(user)[:1], [session_id, lifetime])

    async def give_back(self, user: str, place: str) -> None:
        await self._store.run_script(_GIVE_BACK, _keys(user)[:1], [place])

    async def forget(self, user: str) -> None:
        await forget_places(self._store, user)


async def forget_places(store: SharedStore, user: str) -> None:
    """Give back every session place `user` holds in `store` (their opens still count)."""
    await store.run_script(_FORGET, _keys(user)[:1], [])


def _keys(user: str) -> list[str]:
    """The Redis names of `user`'s places and opens (under the store's namespace)."""
    prefix = f"http-sessions/{user_prefix(user)}"
    return [f"{prefix}/places", f"{prefix}/opens"]
