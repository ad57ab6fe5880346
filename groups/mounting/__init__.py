"""A group's resources and prompts, served through the root by a proxy mounted on first use.

root.add_provider(mounted := MountedGroups())        # once
mounted.mount("time", lambda: upstream.proxy)        # the group's first use
"""

from groups.mounting.in_flight import HoldWhileInFlight
from groups.mounting.limits import GroupTimeLimits
from groups.mounting.mounted import MountedGroups
from groups.mounting.proxy import GroupProxy

__all__ = ["GroupProxy", "GroupTimeLimits", "HoldWhileInFlight", "MountedGroups"]
