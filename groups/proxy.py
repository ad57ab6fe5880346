"""The FastMCP proxy server of one group, mounted on the root when the group is first used.

    proxy = GroupProxy("time", upstream.client, features)
    root.mount(proxy, namespace="time")   # its resources and prompts reach the client

Guarantees: the proxy talks only through the client its factory returns (the group's one
held session), and offers only the features the config leaves on.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastmcp import FastMCP
from fastmcp.prompts.base import Prompt
from fastmcp.resources.base import Resource
from fastmcp.resources.template import ResourceTemplate
from fastmcp.server.providers.proxy import ClientFactoryT, ProxyProvider
from fastmcp.tools.base import Tool

from groups.config import Features

__all__ = ["GroupProxy"]


class FeatureFilter(ProxyProvider):
    """A proxy provider that lists nothing for the features a group turns off."""

    def __init__(self, client_factory: ClientFactoryT, features: Features) -> None:
        super().__init__(client_factory)
        self.features = features

    async def _list_tools(self) -> Sequence[Tool]:
        return await super()._list_tools() if self.features.tools else []

    async def _list_resources(self) -> Sequence[Resource]:
        return await super()._list_resources() if self.features.resources else []

    async def _list_resource_templates(self) -> Sequence[ResourceTemplate]:
        return await super()._list_resource_templates() if self.features.resources else []

    async def _list_prompts(self) -> Sequence[Prompt]:
        return await super()._list_prompts() if self.features.prompts else []


class GroupProxy(FastMCP):
    """A FastMCP server that proxies one upstream, with the group's feature switches applied."""

    def __init__(self, name: str, client_factory: ClientFactoryT, features: Features) -> None:
        super().__init__(name=name)
        self.add_provider(FeatureFilter(client_factory, features))
