"""A lock on a file that holds across processes, and for the task holding it, again.

    async with FileLock.of(path):           # ~/.dynamic-mcp/oauth-servers/github.json.lock
        ...                                 # no other process, and no other task, is here

Guarantees: `fcntl.flock` on the lock file (created 0600 in a 0700 folder), so another
process's holder excludes us and the other way round, and so does another task's of this
process (each takes its own open file); the task already holding it passes through (a
write inside a refresh); waiting happens in a worker thread, never on the event loop, and
ends with `TimeoutError` after `LOCK_TIMEOUT`. On a system without `fcntl` (Windows) the
lock is a no-op: processes there are not kept apart.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

import anyio
import anyio.to_thread

from groups.storage.private_files import FILE_MODE, FOLDER_MODE

try:
    import fcntl
except ImportError:  # Windows: no flock; see the module docstring
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_TIMEOUT", "FileLock"]

# Long enough for a holder's OAuth refresh (one HTTP exchange, 30 s at most by default).
LOCK_TIMEOUT = 60.0
_POLL = 0.01  # how often a waiting worker thread tries again

# path -> (the id of the task holding it, how many times it entered)
_HELD: dict[Path, tuple[int, int]] = {}


class FileLock:
    """An exclusive lock on `path` (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    @classmethod
    def of(cls, path: Path) -> FileLock:
        return cls(path)

    def __repr__(self) -> str:
        return f"FileLock({str(self.path)!r})"

    async def __aenter__(self) -> None:
        me = anyio.get_current_task().id
        holder, depth = _HELD.get(self.path, (None, 0))
        if holder == me:
            _HELD[self.path] = (me, depth + 1)
            return
        self._descriptor = await anyio.to_thread.run_sync(_acquire, self.path)
        _HELD[self.path] = (me, 1)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        holder, depth = _HELD[self.path]
        if depth > 1:
            _HELD[self.path] = (holder, depth - 1)
            return
        del _HELD[self.path]
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing the file releases the flock
            self._descriptor = None


def _acquire(path: Path) -> int:
    """Open and lock `path`, waiting up to `LOCK_TIMEOUT`; the open descriptor."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    if fcntl is None:
        return descriptor
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return descriptor
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(descriptor)
                raise TimeoutError(f"{path} stayed locked for {LOCK_TIMEOUT:g}s") from None
            time.sleep(_POLL)
