"""Whether one group's upstream can be reached, and when a failed one is tried again.

    health = Health("github", on_change=announce)
    health.check()                      # raises at once while FAILED (next retry) or CLOSED
    health.failed(error)                # FAILED; `retry_at` says when the next attempt is due
    health.connected()                  # READY again; a recovery is announced

Guarantees:
- after a failure the group is FAILED and requests answer at once with the reason and
  when the next retry is due, while `Upstream.keep_retrying()` tries again in the
  background: 2 s, 4 s, 8 s after a transient failure, then every 30 s (a permanent one
  goes straight to every 30 s);
- a failure that is cheap to check (an unset variable, `on_next_request`) is not answered
  from here: the next request tries again itself;
- a failed group found back but wanting a person to sign in (`wants_sign_in`) is IDLE
  again, as before its first request: no retry can sign in, the next request can (it
  tries itself and is given the link);
- only a change is announced (`on_change`): the first failure of a run, and a recovery;
- once CLOSED, every request is refused with why it closed (shutdown, or a reload).
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

from groups.errors import GroupUnavailableError

__all__ = ["BACKGROUND_RETRY_INTERVAL", "QUICK_RETRY_DELAYS", "Health", "State"]

logger = logging.getLogger(__name__)

# The defaults of settings.retry_delays and settings.retry_interval.
QUICK_RETRY_DELAYS = (2.0, 4.0, 8.0)  # after a transient failure, as the Rust dynamic-mcp
BACKGROUND_RETRY_INTERVAL = 30.0  # then, and after a permanent failure, until it recovers


class State(enum.Enum):
    """Where a group's connection stands."""

    IDLE = "idle"  # configured; nothing started yet (the state at server start)
    READY = "ready"  # the last attempt connected; sessions serve requests
    FAILED = "failed"  # the last attempt failed; `error` says why, `retry_at` when next
    CLOSED = "closed"  # the server is shutting down; no new connections


class Health:
    """The state of one group's connection, its last failure and its retry schedule."""

    def __init__(self, group: str, on_change: Callable[[], None] | None = None) -> None:
        self.group = group
        self.state = State.IDLE
        self.error: GroupUnavailableError | None = None
        self.retry_at: float | None = None  # time.monotonic() of the next background attempt
        self.failures = 0  # consecutive failed attempts
        self.closing_reason = "dynamic-mcp is shutting down"
        # The retry schedule in seconds (settings.retry_delays, retry_interval); None: default.
        self.schedule: tuple[tuple[float, ...] | None, float | None] = (None, None)
        self._on_change = on_change

    def __repr__(self) -> str:
        return f"Health({self.group!r}, state={self.state.value}, failures={self.failures})"

    def check(self) -> None:
        """Refuse a request that must not try to connect now.

        Raises:
            GroupUnavailableError: the group is closed, or failed and waiting for its retry.
        """
        if self.state is State.CLOSED:
            raise GroupUnavailableError(self.group, self.closing_reason)
        error = self.error
        if self.state is State.FAILED and error is not None and not error.on_next_request:
            wait = max(0.0, (self.retry_at or time.monotonic()) - time.monotonic())
            raise GroupUnavailableError(
                self.group,
                f"{error.cause}; retrying in the background, next attempt in {wait:.0f}s",
                attempts=self.failures,
                permanent=error.permanent,
            )

    def failed(self, error: GroupUnavailableError) -> None:
        """An attempt failed: FAILED, with the next attempt scheduled."""
        first_failure = self.state is not State.FAILED
        self.failures += 1
        quick = self.failures - 1
        delays, interval = self.schedule
        delays = QUICK_RETRY_DELAYS if delays is None else delays
        interval = BACKGROUND_RETRY_INTERVAL if interval is None else interval
        delay = delays[quick] if not error.permanent and quick < len(delays) else interval
        self.state, self.error = State.FAILED, error
        self.retry_at = time.monotonic() + delay
        logger.warning("%s (next attempt in %gs)", error, delay)
        if first_failure:
            self._announce()

    def connected(self) -> None:
        """An attempt connected: READY, the failures forgotten."""
        recovered = self.state is State.FAILED
        self.state, self.error, self.retry_at, self.failures = State.READY, None, None, 0
        logger.info("group %s connected%s", self.group, " again" if recovered else "")
        if recovered:
            self._announce()

    def wants_sign_in(self) -> None:
        """A background attempt found the server back, wanting a person to sign in: a
        failed group is IDLE again (the failures forgotten), so the next request connects
        itself and is given the link; leaving FAILED is announced. Else nothing changes."""
        if self.state is not State.FAILED:
            return
        self.state, self.error, self.retry_at, self.failures = State.IDLE, None, None, 0
        self._announce()

    def close(self) -> None:
        """No new connections from now on."""
        self.state, self.retry_at = State.CLOSED, None

    def retry_delay(self) -> float | None:
        """Seconds until the next background attempt; None when none is due (not FAILED)."""
        if self.state is not State.FAILED or self.retry_at is None:
            return None
        return max(0.0, self.retry_at - time.monotonic())

    def _announce(self) -> None:
        if self._on_change is not None:
            self._on_change()
