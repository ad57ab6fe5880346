"""A group's resources and prompts, served through the root by a proxy mounted on first use.

    root.add_provider(mounted := MountedGroups())        # once
    mounted.mount("time", lambda: upstream.proxy)        # the group's first use

The proxy holds no tools: calls go through `call_dynamic_tool`, never a mounted tool.
What the proxy does not forward, completions and resource subscriptions, `forwarded` does.
"""

from groups.mounting.forwarded import ForwardedRequests
from groups.mounting.in_flight import HoldWhileInFlight
from groups.mounting.limits import GroupTimeLimits
from groups.mounting.mounted import MountedGroups
from groups.mounting.proxy import GroupProxy

__all__ = [
    "ForwardedRequests",
    "GroupProxy",
    "GroupTimeLimits",
    "HoldWhileInFlight",
    "MountedGroups",
]
