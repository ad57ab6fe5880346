"""What a config reload changes, group by group: the diff, before anything is applied.

    changes = compare(applied, identities, servers, old_settings, new_settings)
    str(changes)     # "+ new, - gone, ~ edited, ~ kept (description), settings.search"

Guarantees: a group is `changed` (closed, started anew on next use) only when its launch
identity is another (`groups.config.identity`) than the one it runs with (its sessions',
`${VAR}`s as they read them when they started: a `.env` saved after an upstream started
with its value restarts nothing), or its `sessions` (one process for every
user, or one each: the processes running are of the other kind); a new description alone
makes it `described`, and new filters, timeouts, idle time, feature switches or `access`
make it `retuned`: both keep their upstream. Comparing changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from groups.config import ServerConfig, Settings, StdioServer

__all__ = ["Changes", "compare"]


@dataclass(frozen=True)
class Changes:
    """What a reload changed, by group name."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # closed, and started anew on next use
    described: tuple[str, ...] = ()  # a new description only: the upstream stays
    unmounted: bool = False  # a mounted group went: its resources and prompts with it
    settings: tuple[str, ...] = ()  # dynamic-mcp's own settings with a new value
    # New filters, timeouts, idle time or feature switches: the upstream stays.
    retuned: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        changed = self.added or self.removed or self.changed or self.described or self.retuned
        return bool(changed or self.settings)

    def __str__(self) -> str:
        parts = [
            *(f"+ {name}" for name in self.added),
            *(f"- {name}" for name in self.removed),
            *(f"~ {name}" for name in self.changed),
            *(f"~ {name} (description)" for name in self.described),
            *(f"~ {name} (settings)" for name in self.retuned),
            *(f"settings.{name}" for name in self.settings),
        ]
        return ", ".join(parts) or "nothing changed"


def compare(
    applied: Mapping[str, tuple[str, ServerConfig]],
    identities: Mapping[str, str],
    servers: Mapping[str, ServerConfig],
    old_settings: Settings,
    new_settings: Settings,
) -> Changes:
    """How `servers` (with their launch `identities`) differ from the `applied` groups
    (name: identity and entry), and which of dynamic-mcp's own settings have a new value."""
    changed = [
        n
        for n, (identity, server) in applied.items()
        if n in servers
        and (identities[n] != identity or _sessions(servers[n]) != _sessions(server))
    ]
    kept = {n: s for n, s in servers.items() if n in applied and n not in changed}
    return Changes(
        added=tuple(n for n in servers if n not in applied),
        removed=tuple(n for n in applied if n not in servers),
        changed=tuple(changed),
        described=tuple(n for n, s in kept.items() if s.description != applied[n][1].description),
        settings=tuple(
            name
            for name in Settings.model_fields
            if getattr(new_settings, name) != getattr(old_settings, name)
        ),
        retuned=tuple(n for n, s in kept.items() if _in_place(s) != _in_place(applied[n][1])),
    )


def _sessions(server: ServerConfig) -> str | None:
    """How a stdio group's processes are kept: for every user, or per user."""
    return server.sessions if isinstance(server, StdioServer) else None


def _in_place(server: ServerConfig) -> ServerConfig:
    """The entry but its description: what else a reload applies in place."""
    return server.model_copy(update={"description": ""})
