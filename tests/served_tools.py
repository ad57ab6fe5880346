"""A warm catalog for tests about what a restarted dynamic-mcp does with one, and the
upstream processes an in-memory dynamic-mcp started.

`fill_catalog` starts each group's real upstream to learn its tools. Many tests of one
worker fill the catalog for the same entry (the echo server, a slow starter), and the
upstream serves the same tools every time, so `warm_catalog` starts it once per launch
identity and test process: a later test's catalog gets the tools that real upstream served,
written through the store as dynamic-mcp writes them. Only tests that are not about the
catalog learning use it.
"""

from __future__ import annotations

from pathlib import Path

import mcp_types
import psutil
from conftest import fill_catalog

from groups.catalog import Catalog
from groups.config import launch_identity, load_config, variables_for

__all__ = ["NewChildren", "warm_catalog"]

_served: dict[str, list[mcp_types.Tool]] = {}  # launch identity: the tools its upstream served


async def warm_catalog(config: Path, *groups: str) -> None:
    """As `fill_catalog(config, *groups)`; an upstream is started only for a launch identity
    this process has not seen served yet."""
    servers = load_config(config).servers
    variables = variables_for(config)
    identities = {group: launch_identity(servers[group], variables) for group in groups}
    unseen = [group for group in groups if identities[group] not in _served]
    if unseen:
        await fill_catalog(config, *unseen)
    catalog = Catalog()
    for group in groups:
        identity = identities[group]
        if group in unseen:
            tools = await catalog.get(identity)
            assert tools, f"the upstream of {group} served no tools"
            _served[identity] = tools
        else:
            await catalog.put(identity, _served[identity])


class NewChildren:
    """This test process as the parent of an in-memory dynamic-mcp's upstreams: `children`,
    as `psutil.Process` has it, gives only the processes started since this was made, so
    `conftest.upstream_processes(NewChildren())` works as for a dynamic-mcp process."""

    def __init__(self) -> None:
        self._me = psutil.Process()
        self._before = {p.pid for p in self._me.children(recursive=True)}

    def children(self, recursive: bool = False) -> list[psutil.Process]:
        return [p for p in self._me.children(recursive=recursive) if p.pid not in self._before]
