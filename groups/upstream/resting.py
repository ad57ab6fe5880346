"""When an unused stdio upstream is stopped: the whole group, or one user's own process.

    resting = Resting("memo", sessions, in_flight, health)
    await resting.rest_idle(600.0)      # the registry, every `IDLE_CHECK_INTERVAL`

Guarantees:
- the group's sessions are stopped together once no request of any kind has run on the
  group for the idle time, and no client is subscribed to a resource of a live one (its
  updates come only while it runs): the next request starts the upstream again;
- otherwise each user's own process (`"sessions": "per-user"` on a gateway) that this
  user has not used for the idle time is stopped alone (`Session.idle_for`), and every
  other session keeps running;
- a stop is decided under the sessions' lock, and a request handed a session counts as
  a use of it, so a request never gets a session that is being stopped.
"""

from __future__ import annotations

import logging

from groups.upstream.calls import InFlight
from groups.upstream.health import Health, State
from groups.upstream.sessions import Sessions

__all__ = ["Resting"]

logger = logging.getLogger(__name__)


class Resting:
    """The idle stops of one group's sessions."""

    def __init__(self, group: str, sessions: Sessions, in_flight: InFlight, health: Health):
        self.group = group
        self._sessions = sessions
        self._in_flight = in_flight
        self._health = health

    def __repr__(self) -> str:
        return f"Resting({self.group!r})"

    @property
    def idle_for(self) -> float | None:
        """Seconds since the group's last request ended; None while in use, subscribed, or
        not running."""
        return self._in_flight.idle_for if self._sessions.can_rest else None

    async def rest_idle(self, idle_time: float | None) -> None:
        """Stop what has been unused for `idle_time` seconds (None: never): the whole group,
        else each user's own process that this user has not used that long."""
        if not idle_time:
            return
        async with self._sessions.lock:
            if self._health.state is State.CLOSED:
                return
            idle = self.idle_for
            whole = idle is not None and idle >= idle_time
            stopped = self._sessions.take_all() if whole else self._sessions.take_idle(idle_time)
        if whole:
            logger.info("group %s: stopping its upstream, unused for %gs", self.group, idle_time)
        for session in stopped:
            if not whole:
                logger.info(
                    "group %s: stopping %s's own upstream, unused for %gs",
                    self.group,
                    session.user,
                    idle_time,
                )
            await session.close()
