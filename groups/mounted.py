"""The groups whose resources and prompts the root serves: mounted on use, unmounted on reload.

    root.add_provider(mounted := MountedGroups())     # once, when the root is built
    mounted.mount("time", upstream.proxy)              # the group's first use
    mounted.unmount("time")                            # a reload changed or removed it

Guarantees: a mounted group's resources and prompts are served under its namespace
(`scheme://time/…`, `time_<prompt>`); after `unmount` none of them is listed or reachable.
"""

from __future__ import annotations

from fastmcp import FastMCP
from fastmcp.server.providers import Provider
from fastmcp.server.providers.aggregate import AggregateProvider

__all__ = ["MountedGroups"]


class MountedGroups(AggregateProvider):
    """The root's one provider of every mounted group's resources and prompts.

    FastMCP can mount a server but not unmount one; a reload must take a changed or removed
    group's resources and prompts away. So the root holds this provider, added once, and
    groups are mounted into it, and out of it, by name.
    """

    def __init__(self) -> None:
        super().__init__()
        self._by_group: dict[str, Provider] = {}

    def __repr__(self) -> str:
        return f"MountedGroups({sorted(self._by_group)})"

    def __contains__(self, group: object) -> bool:
        return group in self._by_group

    def mount(self, group: str, proxy: FastMCP) -> None:
        """Serve `proxy`'s resources and prompts under the namespace `group`."""
        self.add_provider(proxy, namespace=group)
        self._by_group[group] = self.providers[-1]  # as wrapped, with its namespace

    def unmount(self, group: str) -> bool:
        """Stop serving the group's resources and prompts; whether it was mounted."""
        provider = self._by_group.pop(group, None)
        if provider is not None:
            self.providers.remove(provider)
        return provider is not None
