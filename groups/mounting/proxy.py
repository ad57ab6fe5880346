"""The FastMCP proxy server of one group, mounted on the root when the group is first used.

    proxy = GroupProxy("time", client_factory, lambda: config.features)
    mounted.mount("time", lambda: proxy)   # its resources and prompts reach the client

Guarantees: the proxy talks only through the client its factory returns (the caller's
session of the group) and keeps no listing between requests (a lookup lists anew through
the caller's session: one user's listing never answers another's lookup); it offers only
the resources and prompts the config leaves on (read at each listing, so a reload that
switches one applies at once), and no tools at all: a group's tools are reached through
`call_dynamic_tool` alone, with its time limit and its errors, never by a namespaced name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fastmcp import FastMCP
from fastmcp.prompts.base import Prompt
from fastmcp.resources.base import Resource
from fastmcp.resources.template import ResourceTemplate
from fastmcp.server.providers.proxy import ClientFactoryT, ProxyProvider
from fastmcp.tools.base import Tool
from fastmcp.utilities.versions import VersionSpec

from groups.config import Features

__all__ = ["GroupProxy"]


class FeatureFilter(ProxyProvider):
    """A proxy provider of resources and prompts, minus the features a group turns off."""

    def __init__(self, client_factory: ClientFactoryT, features: Callable[[], Features]) -> None:
        # No cache: FastMCP's is one per provider, shared by every session, and a lookup
        # (a read, a prompt) would be answered from whichever user listed last; uncached,
        # it lists through the caller's own session, one round trip more.
        super().__init__(client_factory, cache_ttl=0)
        self._features = features

    @property
    def features(self) -> Features:
        return self._features()

    async def _list_tools(self) -> Sequence[Tool]:
        return []

    async def _get_tool(self, name: str, version: VersionSpec | None = None) -> Tool | None:
        return None

    async def _get_tool_by_hash(self, tool_hash: str, tool_name: str) -> Tool | None:
        return None

    async def _list_resources(self) -> Sequence[Resource]:
        return await super()._list_resources() if self.features.resources else []

    async def _list_resource_templates(self) -> Sequence[ResourceTemplate]:
        return await super()._list_resource_templates() if self.features.resources else []

    async def _list_prompts(self) -> Sequence[Prompt]:
        return await super()._list_prompts() if self.features.prompts else []


class GroupProxy(FastMCP):
    """A FastMCP server that proxies one upstream, with the group's feature switches applied."""

    def __init__(
        self, name: str, client_factory: ClientFactoryT, features: Callable[[], Features]
    ) -> None:
        super().__init__(name=name)
        self.add_provider(FeatureFilter(client_factory, features))
