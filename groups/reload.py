"""Live config reload: edit dynamic-mcp.json, or the .env beside it, and only what changed changes.

    reloader = ConfigReloader(path, apply=root.apply_config, refused=root.config_refused)
    watching = asyncio.create_task(reloader.run())   # until stopped; SIGHUP reloads too
    changes = await reloader.reload()               # read, validate, apply, or keep the last good
    reloader.stop()                                  # `watching` ends at once

Guarantees:
- the files are watched as `groups.watching.FileWatch` watches them, so every way editors
  save works and a symlinked config is followed; a burst of saves is applied once;
- a config that does not load (half saved, bad JSON, an unknown field, no description),
  or that `apply` refuses, changes nothing: `refused` hears why (the root server keeps
  the last good config and logs it, or, serving none, shows the new problems); the next
  good save applies;
- what a reload applies is `apply`'s to decide (the root server's, then
  `Registry.reconfigure`): unchanged groups keep their upstreams, and the clients are told;
- SIGHUP reloads the config, and whatever else was given `also_on_sighup` (the users
  file): one process has one SIGHUP handler.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from groups.config import Config, load_config
from groups.errors import DynamicMcpError
from groups.watching import BURST_MS, QUIET_MS, FileWatch

if TYPE_CHECKING:
    from groups.changes import Changes

__all__ = ["BURST_MS", "QUIET_MS", "ConfigReloader"]

logger = logging.getLogger(__name__)


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
        self._watch = FileWatch(lambda: (self.path, self.path.parent / ".env"), self.reload)
        self._on_sighup_too: list[Callable[[], Awaitable[object]]] = []

    def __repr__(self) -> str:
        return f"ConfigReloader({str(self.path)!r})"

    def also_on_sighup(self, reload: Callable[[], Awaitable[object]]) -> None:
        """Run `reload` too when SIGHUP arrives."""
        self._on_sighup_too.append(reload)

    async def run(self) -> None:
        """Reload on every change to the files, and on SIGHUP, until `stop()`."""
        async with anyio.create_task_group() as watching:
            if hasattr(signal, "SIGHUP"):
                watching.start_soon(self._on_sighup)
            await self._watch.run()
            watching.cancel_scope.cancel()

    def stop(self) -> None:
        self._watch.stop()

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

    async def _on_sighup(self) -> None:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                logger.info("SIGHUP received, reloading %s", self.path)
                await self.reload()
                for reload in self._on_sighup_too:
                    await reload()
