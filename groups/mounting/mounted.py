"""The groups whose resources and prompts the root serves: mounted on use, unmounted on reload.

    root.add_provider(mounted := MountedGroups())       # once, when the root is built
    mounted.mount("time", lambda: upstream.proxy)        # the group's first use
    mounted.unmount("time")                              # a reload changed or removed it

Guarantees: a mounted group's resources and prompts are served under its namespace
(`scheme://time/…`, `time_<prompt>`); its proxy is built only when the client first lists
or reads them, so mounting costs nothing; after `unmount` none of them is listed or reachable;
to a request whose user may not use the group (`may_use`, asked per request), none of them
is listed, and reading or getting one is FastMCP's "unknown", as for a group never mounted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from fastmcp import FastMCP
from fastmcp.prompts.base import Prompt
from fastmcp.resources.base import Resource
from fastmcp.resources.template import ResourceTemplate
from fastmcp.server.providers import Provider
from fastmcp.server.providers.aggregate import AggregateProvider
from fastmcp.server.providers.fastmcp_provider import FastMCPProvider
from fastmcp.utilities.versions import VersionSpec

__all__ = ["MountedGroups"]


class MountedGroups(AggregateProvider):
    """The root's one provider of every mounted group's resources and prompts.

    FastMCP can mount a server but not unmount one; a reload must take a changed or removed
    group's resources and prompts away. So the root holds this provider, added once, and
    groups are mounted into it, and out of it, by name.
    """

    def __init__(self, may_use: Callable[[str], bool] = lambda group: True) -> None:
        """`may_use(group)`: whether the request being served may use the group."""
        super().__init__()
        self._by_group: dict[str, Provider] = {}
        self._may_use = may_use

    def __repr__(self) -> str:
        return f"MountedGroups({sorted(self._by_group)})"

    def __contains__(self, group: object) -> bool:
        return group in self._by_group

    def mount(self, group: str, build_proxy: Callable[[], FastMCP]) -> None:
        """Serve the resources and prompts of the proxy `build_proxy` makes, under `group`."""
        self.add_provider(OnFirstUse(build_proxy, partial(self._may_use, group)), namespace=group)
        self._by_group[group] = self.providers[-1]  # as wrapped, with its namespace

    def unmount(self, group: str) -> bool:
        """Stop serving the group's resources and prompts; whether it was mounted."""
        provider = self._by_group.pop(group, None)
        if provider is not None:
            self.providers.remove(provider)
        return provider is not None


class OnFirstUse(Provider):
    """A group's proxy server, built the first time its resources or prompts are asked for.

    Building one imports FastMCP's proxy and client, a fifth of a second; an expansion
    answered from the catalog mounts its group and must not pay that. A group's proxy has
    no tools and no extensions, so resources and prompts are all there is to pass on.
    """

    def __init__(self, build: Callable[[], FastMCP], allowed: Callable[[], bool]) -> None:
        super().__init__()
        self._build = build
        self._built: FastMCPProvider | None = None
        self._allowed = allowed  # whether the request being served may use the group

    @property
    def _proxy(self) -> FastMCPProvider:
        if self._built is None:
            self._built = FastMCPProvider(self._build())
        return self._built

    async def _list_resources(self) -> Sequence[Resource]:
        return await self._proxy.list_resources() if self._allowed() else []

    async def _get_resource(self, uri: str, version: VersionSpec | None = None) -> Resource | None:
        return await self._proxy.get_resource(uri, version) if self._allowed() else None

    async def _list_resource_templates(self) -> Sequence[ResourceTemplate]:
        return await self._proxy.list_resource_templates() if self._allowed() else []

    async def _get_resource_template(
        self, uri: str, version: VersionSpec | None = None
    ) -> ResourceTemplate | None:
        if not self._allowed():
            return None
        return await self._proxy.get_resource_template(uri, version)

    async def _list_prompts(self) -> Sequence[Prompt]:
        return await self._proxy.list_prompts() if self._allowed() else []

    async def _get_prompt(self, name: str, version: VersionSpec | None = None) -> Prompt | None:
        return await self._proxy.get_prompt(name, version) if self._allowed() else None
