"""Each user's rate limits and concurrency caps on the tool calls of a group.

    limits = CallLimits()                       # the registry's; counts in the store chosen
    async with limits.admitted("github", "delete_repo", config, settings, user):
        ...                                      # the call; CallLimitedError when refused

Set per group (`"rate_limit": "5/minute"`, `"max_concurrent_calls": 2`), per tool pattern
(`"tools": {"rate_limit": {"delete_*": "1/hour"}}`, on top of the group's), and for every
group that sets none in the settings (same two names).

Guarantees:
- every limit counts one user's calls (the implicit user is one user): a user who reaches
  a limit never slows another;
- counted across every replica when the store is shared (rates by the `limits` library's
  moving window in Redis; a call in flight holds a lease in a Redis sorted set, given
  back when it ends, or at its time limit if its replica died), in this process otherwise;
- a refused call reaches no upstream and starts none; its error names the limit, where
  it is set and when to try again;
- the store not answering lets the call through uncounted, and the operator's log says
  so (at most once a minute): a limit protects an upstream, it is no reason to stop a
  team's work while Redis restarts.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from groups.config.model import rate_items
from groups.errors import CallLimitedError, StoreUnavailableError
from groups.storage.default import default_store, shared_store
from groups.storage.home import user_prefix

if TYPE_CHECKING:
    from groups.access import User
    from groups.config import ServerConfig, Settings

__all__ = ["CallLimits"]

logger = logging.getLogger(__name__)

IMPLICIT = "implicit"  # the one user of stdio or a shared token, counted as a named one
LEASE_MARGIN = 60.0  # seconds a dead replica's call keeps its place past its time limit
UNCOUNTED_LOG_EVERY = 60.0  # seconds between two "not counted" lines in the log


class CallLimits:
    """The limits of every group's tool calls, in this process or the shared store."""

    def __init__(self) -> None:
        self._limiter: Any = None  # a `limits` rate limiter, made at the first rate counted
        self._counted_in: object = None  # the store it counts in: another one, a new limiter
        self._running: Counter[tuple[str, str]] = Counter()  # (user, group): calls in flight
        self._said_uncounted = -math.inf

    def __repr__(self) -> str:
        return f"CallLimits({self._counted_in!r})"

    @asynccontextmanager
    async def admitted(
        self, group: str, tool: str, server: ServerConfig, settings: Settings, user: User | None
    ) -> AsyncIterator[None]:
        """Hold a place for one call of `tool` while it runs.

        Raises:
            CallLimitedError: a limit of `user`'s refuses the call now.
        """
        # Named users by their store prefix: percent-encoded, one segment, never "implicit".
        who = user_prefix(user.name) if user is not None else IMPLICIT
        shown = user.name if user is not None else None
        most = server.max_concurrent_calls or settings.max_concurrent_calls
        rates = _rates(group, tool, server, settings)
        if most is None and not rates:
            yield
            return
        place = await self._take_place(who, shown, group, most, server) if most else None
        try:
            await self._count(who, shown, group, rates)
        except BaseException:
            await self._give_back(who, group, place)
            raise
        try:
            yield
        finally:
            await self._give_back(who, group, place)

    # ---- rates ----------------------------------------------------------------------

    async def _count(
        self, who: str, shown: str | None, group: str, rates: list[tuple[str, str, str]]
    ) -> None:
        """Count one call against each of `rates` ((rate, key, where it is set)), or none
        of them when one is spent: with several, every rate is tested before any is
        counted (one alone is one round trip: a spent rate's hit counts nothing)."""
        if not rates:
            return
        from limits.errors import StorageError

        limiter = self._rate_limiter()
        try:
            items = [(item, key, where) for rate, key, where in rates for item in rate_items(rate)]
            for item, key, where in items if len(items) > 1 else ():
                if not await limiter.test(item, who, group, key):
                    raise await _refusal(limiter, item, (who, group, key), shown, where)
            for item, key, where in items:
                if not await limiter.hit(item, who, group, key):  # another replica took it
                    raise await _refusal(limiter, item, (who, group, key), shown, where)
        except StorageError as exc:  # Redis not answering: see the module
            self._uncounted(exc)

    def _rate_limiter(self) -> Any:
        """The `limits` limiter on this process's store: Redis when it is shared."""
        store = default_store()
        if self._limiter is None or self._counted_in is not store:
            from limits.aio.storage import MemoryStorage
            from limits.aio.strategies import MovingWindowRateLimiter

            shared = shared_store()
            storage = shared.limits_storage() if shared is not None else MemoryStorage()
            self._limiter, self._counted_in = MovingWindowRateLimiter(storage), store
        return self._limiter

    # ---- calls in flight ------------------------------------------------------------

    async def _take_place(
        self, who: str, shown: str | None, group: str, most: int, server: ServerConfig
    ) -> str:
        """A place among `who`'s `most` calls in flight on `group`, named for giving back.

        Raises:
            CallLimitedError: `who` has `most` calls of the group in flight already.
        """
        place = uuid4().hex
        shared = shared_store()
        if shared is None:
            if self._running[who, group] >= most:
                raise _too_many(shown, group, most, server)
            self._running[who, group] += 1
            return place
        lease = server.timeout.tools.total_seconds() + LEASE_MARGIN
        try:
            taken = await shared.run_script(_TAKE, [_running_key(who, group)], [place, most, lease])
        except StoreUnavailableError as exc:
            self._uncounted(exc)
            return ""
        if not taken:
            raise _too_many(shown, group, most, server)
        return place

    async def _give_back(self, who: str, group: str, place: str | None) -> None:
        if not place:
            return
        shared = shared_store()
        if shared is None:
            self._running[who, group] -= 1
            if self._running[who, group] <= 0:
                del self._running[who, group]
            return
        try:
            await shared.run_script(_GIVE_BACK, [_running_key(who, group)], [place])
        except StoreUnavailableError as exc:  # its lease ends it
            logger.info(
                "a call's place on group %r stays taken until its lease ends: %s", group, exc
            )

    def _uncounted(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._said_uncounted >= UNCOUNTED_LOG_EVERY:
            self._said_uncounted = now
            logger.warning("call limits not counted while the store does not answer: %s", exc)


def _rates(
    group: str, tool: str, server: ServerConfig, settings: Settings
) -> list[tuple[str, str, str]]:
    """The rates a call of `tool` counts against: (rate, key, where it is set)."""
    rates = []
    if server.rate_limit is not None:
        rates.append((server.rate_limit, "", f"mcpServers.{group}.rate_limit"))
    elif settings.rate_limit is not None:
        rates.append((settings.rate_limit, "", "settings.rate_limit"))
    for pattern, rate in server.tools.rate_limit.items():
        if fnmatchcase(tool, pattern):
            where = f"mcpServers.{group}.tools.rate_limit[{pattern!r}]"
            rates.append((rate, f"tools:{pattern}", where))
    return rates


async def _refusal(
    limiter: Any, item: Any, keys: tuple[str, str, str], shown: str | None, where: str
) -> CallLimitedError:
    """The error of a spent rate, with when its window frees a place."""
    stats = await limiter.get_window_stats(item, *keys)
    wait = max(1, math.ceil(stats.reset_time - time.time()))
    return CallLimitedError(keys[1], shown, f"{item.amount} calls {_per(item)}", where, wait)


def _too_many(shown: str | None, group: str, most: int, server: ServerConfig) -> CallLimitedError:
    where = f"mcpServers.{group}.max_concurrent_calls"
    if server.max_concurrent_calls is None:
        where = "settings.max_concurrent_calls"
    calls = "1 call" if most == 1 else f"{most} calls"
    return CallLimitedError(group, shown, f"{calls} at once", where, None)


def _per(item: Any) -> str:
    """`5 per 1 minute` as said to a person: "a minute", "per 10 minutes"."""
    unit = item.GRANULARITY.name
    return f"a {unit}" if item.multiples == 1 else f"per {item.multiples} {unit}s"


def _running_key(who: str, group: str) -> str:
    return f"call-limits/{who}/{group}/running"


# KEYS: the user's calls in flight on the group (a sorted set scored by lease end, on
# Redis's own clock). ARGV: the place, the most places, the lease. 1 when taken, else 0.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])), 'GT')
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])), 'NX')
return 1
"""
_GIVE_BACK = "return redis.call('ZREM', KEYS[1], ARGV[1])"  # KEYS: calls; ARGV: the place
