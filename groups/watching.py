"""Watching a few files for saves: their folders, a burst of saves taken once, links followed.

    watch = FileWatch(lambda: (config, config.parent / ".env"), on_save=reload)
    task = asyncio.create_task(watch.run())   # calls `await reload()` after each save
    watch.stop()                               # `task` ends at once

The config (`groups.reload`) and a gateway's users file (`groups.serving.users_reload`)
are both watched this way.

Guarantees:
- the folders are watched (watchfiles), not the files, so every way editors save works:
  writing in place, truncating then writing, writing a new file and renaming it over the
  old one, deleting the file and writing it anew; a file that is a symlink is followed
  (its target's folder is watched too, and a link pointed elsewhere is followed there);
- a burst of saves is taken once: after `QUIET_MS` without another, or `BURST_MS` at most;
- `on_save` runs once per burst, never two at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import anyio

__all__ = ["BURST_MS", "QUIET_MS", "FileWatch"]

QUIET_MS = 300  # a save is taken once the files have been quiet this long…
BURST_MS = 3000  # …or this long after the first save of a burst that goes on


class FileWatch:
    """Calls `on_save` after each save of the files `files()` names."""

    def __init__(
        self, files: Callable[[], Iterable[Path]], on_save: Callable[[], Awaitable[object]]
    ) -> None:
        self._files = files  # asked again after each save: a link may point elsewhere now
        self._on_save = on_save
        self._stopped = anyio.Event()  # the watcher's own stop signal: cancelling it waits

    def __repr__(self) -> str:
        return f"FileWatch({sorted(str(file) for file in self._watched())})"

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        """Watch until stopped, starting over when a symlinked file points elsewhere."""
        while not self._stopped.is_set():
            watched = self._watched()
            await self._watch(watched)
            if self._watched() == watched:
                return  # stopped

    def _watched(self) -> frozenset[Path]:
        """Each file, and the file it links to (dotfile managers symlink them).

        An editor saves the link's target, in the target's folder: watching only the
        link's folder would never see the save.
        """
        files = [way for file in self._files() for way in (file.absolute(), file.resolve())]
        return frozenset(file.parent.resolve() / file.name for file in files)

    async def _watch(self, files: frozenset[Path]) -> None:
        """Take every save of `files`; return when stopped or a link's target moved."""
        from watchfiles import awatch  # a Rust extension: loaded only when watching starts

        async for _ in awatch(
            *{file.parent for file in files},
            watch_filter=lambda change, path: Path(path) in files,
            debounce=BURST_MS,
            step=QUIET_MS,
            recursive=False,
            stop_event=self._stopped,
        ):
            await self._on_save()
            if self._watched() != files:
                return  # a link now points at another file: watch that one
