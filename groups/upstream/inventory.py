"""What one group serves: its tools (from the catalog or a session), its filters, its lists.

    tools = Tools("github", identity, lambda: catalog, lambda: config, announce, list_changed)
    known = await tools.catalogued(has_session=False)   # None: ask the upstream
    listed = await tools.of(session)                     # listed once per session
    shown = tools.visible(listed)                        # the config's `tools` filter applied

Guarantees:
- the tools are answered from the catalog (by launch identity) only while the caller has
  no live session; each session lists its tools once and that live list replaces the
  catalog entry (a difference is announced, `on_catalog_differs`);
- the upstream's `tools/list_changed` drops the session's list and the catalog's answer,
  so the next expansion and call list anew; its resources or prompts `list_changed` is
  passed on (`on_list_changed`) where the config serves them;
- the model sees only the tools the group's `tools` filter leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mcp_types

from groups.access import User, may_use
from groups.config import ServerConfig
from groups.errors import FeatureDisabledError, ToolHiddenError, UnknownToolError
from groups.upstream.sessions import Session

if TYPE_CHECKING:
    from groups.catalog import Catalog

__all__ = ["Inventory", "Tools"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inventory:
    """What a group serves through dynamic-mcp. None: the config turns the feature off, or
    the upstream does not offer it."""

    tools: list[mcp_types.Tool] | None  # as the model sees them, filters applied
    resources: int | None  # resources and resource templates
    prompts: int | None


class Tools:
    """One group's tool list: the catalog's until a session lists its own, filtered."""

    def __init__(
        self,
        group: str,
        identity: str,
        catalog: Callable[[], Catalog | None],
        config: Callable[[], ServerConfig],
        on_catalog_differs: Callable[[], None],
        on_list_changed: Callable[[str], None],
    ) -> None:
        self.group = group
        self._catalog = catalog  # read at each use: a reload may switch it on or off
        self._identity = identity  # the catalog's key (`groups.config.identity`)
        self._config = config  # read at each use: a reload may change the entry in place
        self._on_catalog_differs = on_catalog_differs
        self._on_list_changed = on_list_changed
        # The upstream said its tools changed since the catalog entry was last replaced.
        self._catalog_stale = False

    def __repr__(self) -> str:
        return f"Tools({self.group!r}, catalog={self._catalog() is not None})"

    async def of(self, session: Session, *, refresh: bool = False) -> list[mcp_types.Tool]:
        """The tools `session` offers: listed once, and again with `refresh`."""
        if session.tools is None or refresh:
            logger.debug("→ %s tools/list", self.group)
            timeout = self._config().timeout.tools.total_seconds()
            with session.bounded("Listing tools", timeout):
                session.tools = await session.client.list_tools()
            session.tool_names = frozenset(tool.name for tool in session.tools)
            logger.debug("← %s tools/list: %d tools", self.group, len(session.tools))
            self._catalog_stale = False
            catalog = self._catalog()
            if catalog is not None and await catalog.put(self._identity, session.tools):
                self._on_catalog_differs()  # they differ from the ones the catalog had given out
        return session.tools

    async def catalogued(self, *, has_session: bool) -> list[mcp_types.Tool] | None:
        """The catalog's tools, unless there is no catalog, the caller has a live session,
        or the upstream has said since the entry was written that its tools changed."""
        catalog = self._catalog()
        if catalog is None or self._catalog_stale or has_session:
            return None
        return await catalog.get(self._identity)

    def check_enabled(self) -> None:
        """Raises:
        FeatureDisabledError: the config turns this group's tools off."""
        if not self._config().features.tools:
            raise FeatureDisabledError(self.group, "tools")

    def check_callable(self, name: str, user: User | None = None) -> None:
        """Raises:
        FeatureDisabledError: the config turns this group's tools off.
        ToolHiddenError: the group's `tools` filter hides `name` (from `user`)."""
        self.check_enabled()
        if why := self._config().tools.hides(name, _lets_in(user)):
            raise ToolHiddenError(self.group, name, why)

    async def require(self, session: Session, name: str, user: User | None = None) -> None:
        """Make sure the session offers tool `name`, listing anew once: it may have added it.

        Raises:
            UnknownToolError: the upstream has no tool `name`; the error lists the visible ones.
        """
        if name not in session.tool_names:
            tools = await self.of(session, refresh=True)
            if name not in session.tool_names:
                offered = [tool.name for tool in self.visible(tools, user)]
                raise UnknownToolError(self.group, name, offered)

    def visible(
        self, tools: list[mcp_types.Tool], user: User | None = None
    ) -> list[mcp_types.Tool]:
        """The tools the group's `tools` filter leaves for `user`'s model to see."""
        hides, lets_in = self._config().tools.hides, _lets_in(user)
        return [tool for tool in tools if not hides(tool.name, lets_in)]

    async def count_others(self, session: Session) -> tuple[int | None, int | None]:
        """How many resources (and templates) and prompts the session serves, asked now;
        None where the config turns them off or the upstream does not offer them."""
        config, client = self._config(), session.client
        features, timeouts = config.features, config.timeout
        offered = client.initialize_result.capabilities if client.initialize_result else None
        resources = prompts = None
        if features.resources and offered and offered.resources:
            with session.bounded("Listing resources", timeouts.resources.total_seconds()):
                resources = len(await client.list_resources())
                resources += len(await client.list_resource_templates())
        if features.prompts and offered and offered.prompts:
            with session.bounded("Listing prompts", timeouts.prompts.total_seconds()):
                prompts = len(await client.list_prompts())
        return resources, prompts

    def heard(self, session: Session | None, message: object) -> None:
        """An upstream's notification: a list it changed is asked for anew when next needed.

        Runs in the session's receive loop, so it only takes note: it must not wait on the
        upstream it is listening to.
        """
        if isinstance(message, mcp_types.ToolListChangedNotification):
            listed = session is not None and session.tools is not None
            if listed or not self._catalog_stale:  # news: what was known is dropped now
                logger.info("group %s: the upstream's tools changed", self.group)
            self._catalog_stale = True  # until a listing replaces the entry
            if session is not None:
                session.tools, session.tool_names = None, frozenset()
        elif isinstance(message, mcp_types.ResourceListChangedNotification):
            self._lists_changed("resources")
        elif isinstance(message, mcp_types.PromptListChangedNotification):
            self._lists_changed("prompts")

    def _lists_changed(self, kind: str) -> None:
        if getattr(self._config().features, kind):
            self._on_list_changed(kind)


def _lets_in(user: User | None) -> Callable[[list[str]], bool]:
    """Whether an `access` list of `tools.access` lets `user` in."""
    return lambda names: may_use(user, names)
