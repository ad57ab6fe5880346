"""Live config reload: edit dynamic-mcp.json, or the .env beside it, and only what changed changes.

    reloader = ConfigReloader(path, apply=registry.reconfigure, refused=log_it)
    watching = asyncio.create_task(reloader.run())   # until stopped; SIGHUP reloads too
    changes = await reloader.reload()               # read, validate, apply, or say why not
    reloader.stop()                                  # `watching` ends at once

Guarantees:
- the folder is watched (watchfiles), not the file, so every way editors save works:
  writing in place, truncating then writing, writing a new file and renaming it over the
  old one, deleting the file and writing it anew; a config that is a symlink is followed
  (its target's folder is watched too, and a link pointed elsewhere is followed there);
- a burst of saves is applied once: after `QUIET_MS` without another, or `BURST_MS` at most;
- a config that does not load (half saved, bad JSON, an unknown field, no description),
  or that `apply` refuses, changes nothing: `refused` hears why (the root server keeps
  the last good config and logs it, or, serving none, shows the new problems); the next
  good save applies;
- what a reload applies is `apply`'s to decide (the root server's, then
  `Registry.reconfigure`): unchanged groups keep their upstreams, and the clients are told;
- a config whose folder does not exist (yet) is reloaded on SIGHUP only.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from groups.config import Config, load_config
from groups.errors import DynamicMcpError

if TYPE_CHECKING:
    from groups.changes import Changes

__all__ = ["BURST_MS", "QUIET_MS", "ConfigReloader"]

logger = logging.getLogger(__name__)

QUIET_MS = 300  # a save is applied once the files have been quiet this long…
BURST_MS = 3000  # …or this long after the first save of a burst that goes on


class ConfigReloader:
    """Watches one config file and the `.env` beside it; applies each good change."""

    def __init__(
        self,
        path: Path,
        *,
        apply: Callable[[Config], Changes],
        refused: Callable[[DynamicMcpError], None],
    ) -> None:
        """Args:
        path: the config file.
        apply: serves a config that loaded, and says what changed; raises a
            `DynamicMcpError` if it cannot be served (a store setting it cannot use).
        refused: hears why the config on disk cannot be served now.
        """
        self.path = path.absolute()
        self._apply = apply
        self._refused = refused
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
        """Apply the config as it is on disk now; None when it cannot be served."""
        async with self._lock:
            try:
                changes = self._apply(load_config(self.path))
            except DynamicMcpError as exc:
                self._refused(exc)
                return None
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

        folders = {file.parent for file in files if file.parent.is_dir()}
        if not folders:
            logger.warning("%s: its folder does not exist; reloaded on SIGHUP only", self.path)
            await self._stopped.wait()
            return
        async for _ in awatch(
            *folders,
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
