"""A gateway's users file read again at each save: who is added is served, who is removed refused.

    reloader = UsersReloader(users_file, on_change)   # the server's `UsersFile`, watched
    watching = asyncio.create_task(reloader.run())    # until stopped
    change = await reloader.reload()                  # None: the file was refused
    reloader.stop()

Guarantees:
- the file is watched as the config is (`groups.watching.FileWatch`): every way an editor
  saves works, a symlink is followed, a burst of saves is read once;
- a file that would refuse a start (readable by others, not JSON, not an object of user
  name to token, an empty token, two users with one token; or gone) changes nothing:
  the last good users go on being served, and one error names the file and what is
  wrong in it, never a token; the next good save applies;
- a good save applies at once: a user added is accepted from the next request, a user
  removed, or the old token of a user whose token changed, is refused with 401;
  `on_change` then hears who changed, so their sessions end (`groups.serving.revocation`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from groups.errors import UnsafeServingError
from groups.serving.users import UsersChange, UsersFile, read_digests
from groups.watching import FileWatch

__all__ = ["UsersReloader"]

logger = logging.getLogger(__name__)


class UsersReloader:
    """Watches the users file of a `UsersFile` and has it take each good save."""

    def __init__(
        self, users: UsersFile, on_change: Callable[[UsersChange], Awaitable[None]]
    ) -> None:
        if users.path is None:
            raise ValueError("a users file read from no file cannot be watched")
        self.path = users.path.absolute()
        self._users, self._on_change = users, on_change
        self._lock = anyio.Lock()  # a save and a SIGHUP at once: one after the other
        self._watch = FileWatch(lambda: (self.path,), self.reload)

    def __repr__(self) -> str:
        return f"UsersReloader({str(self.path)!r})"

    async def run(self) -> None:
        await self._watch.run()

    def stop(self) -> None:
        self._watch.stop()

    async def reload(self) -> UsersChange | None:
        """Take the users file as it is on disk now; None when it is refused."""
        async with self._lock:
            try:
                digests = read_digests(self.path)
            except UnsafeServingError as exc:  # its message names the file, never a token
                logger.error("%s (still serving the last good users)", exc)
                return None
            change = self._users.take(digests)
            if change:
                logger.warning("reloaded the users file %s: %s", self.path, change)
                await self._on_change(change)
            return change
