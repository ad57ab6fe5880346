"""Live config reload: edit dynamic-mcp.json, or the .env beside it, and only what changed changes.

    reloader = ConfigReloader(path, registry)
    watching = asyncio.create_task(reloader.run())   # until stopped; SIGHUP reloads too
    changes = await reloader.reload()               # read, validate, apply, or keep the last good
    reloader.stop()                                  # `watching` ends at once

Guarantees:
- the folder is watched (watchfiles), not the file, so every way editors save works:
  writing in place, truncating then writing, writing a new file and renaming it over the
  old one, deleting the file and writing it anew; a config that is a symlink is followed
  (its target's folder is watched too, and a link pointed elsewhere is followed there);
- a burst of saves is applied once: after `QUIET_MS` without another, or `BURST_MS` at most;
- a config that does not load (half saved, bad JSON, an unknown field, no description)
  changes nothing: the last good config keeps serving, and one warning names the file and
  the line and column, or the field; the next good save applies;
- what a reload applies is the registry's to decide (`Registry.reconfigure`): unchanged
  groups keep their upstreams, and the clients are told.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from groups.config import load_config
from groups.errors import ConfigError

if TYPE_CHECKING:
    from groups.changes import Changes
    from groups.registry import Registry

__all__ = ["BURST_MS", "QUIET_MS", "ConfigReloader"]

logger = logging.getLogger(__name__)

QUIET_MS = 300  # a save is applied once the files have been quiet this long…
BURST_MS = 3000  # …or this long after the first save of a burst that goes on


class ConfigReloader:
    """Watches one config file and the `.env` beside it; applies each good change."""

    def __init__(self, path: Path, registry: Registry) -> None:
        self.path = path.absolute()
        self._registry = registry
        self._lock = anyio.Lock()  # a save and a SIGHUP at once: one reload after the other
        self._stopped = anyio.Event()  # the watcher's own stop signal: cancelling it waits

    def __repr__(self) -> str:
        return f"ConfigReloader({str(self.path)!r})"

    async def run(self) -> None:
        """Reload on every change to the files, and on SIGHUP, until `stop()`."""
        async with anyio.create_task_group() as watching:
            if hasattr(signal, "SIGHUP"):
                watching.start_soon(self._on_sighup)
            await self._watch()
            watching.cancel_scope.cancel()

    def stop(self) -> None:
        self._stopped.set()

    async def reload(self) -> Changes | None:
        """Apply the config as it is on disk now; None when it does not load."""
        async with self._lock:
            try:
                config = load_config(self.path)
            except ConfigError as exc:
                logger.warning("%s (still serving the last good config)", exc)
                return None
            changes = self._registry.reconfigure(config)
            if changes:
                logger.info("reloaded %s: %s", self.path, changes)
            return changes

    async def _watch(self) -> None:
        """Watch until stopped, starting over when a symlinked config points elsewhere."""
        while not self._stopped.is_set():
            watched = self._watched_files()
            await self._watch_files(watched)
            if self._watched_files() == watched:
                return  # stopped

    def _watched_files(self) -> frozenset[Path]:
        """The config, the file it links to (dotfile managers symlink it), and the `.env`.

        An editor saves the link's target, in the target's folder: watching only the
        link's folder would never see the save.
        """
        files = (self.path, self.path.resolve(), self.path.parent / ".env")
        return frozenset(file.parent.resolve() / file.name for file in files)

    async def _watch_files(self, files: frozenset[Path]) -> None:
        """Reload on every change to `files`; return when stopped or the link's target moved."""
        from watchfiles import awatch  # a Rust extension: loaded only when watching starts

        async for _ in awatch(
            *{file.parent for file in files},
            watch_filter=lambda change, path: Path(path) in files,
            debounce=BURST_MS,
            step=QUIET_MS,
            recursive=False,
            stop_event=self._stopped,
        ):
            await self.reload()
            if self._watched_files() != files:
                return  # the link now points at another file: watch that one

    async def _on_sighup(self) -> None:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                logger.info("SIGHUP received, reloading %s", self.path)
                await self.reload()
