"""A group's launch identity: which process it starts, or which endpoint it reaches, and how.

    identity = launch_identity(server, variables)     # a hex digest
    same_upstream = identity == launch_identity(edited, variables)

Guarantees:
- two entries with one identity start the same command with the same arguments, `env`
  and `cwd`, or reach the same `type` of endpoint at the same `url` with the same headers
  and OAuth settings; the identity keys the schema catalog and decides whether a reload
  restarts a group;
- the value of every `${VAR}` and `${file:PATH}` the entry uses counts, as a digest only:
  an edited variable or secret file is a new identity, and no secret is kept;
- the working directory counts when the command, an argument or `cwd` is a relative path,
  so `python server.py` in two projects is two identities, while an `npx`/`uvx` package
  is one identity wherever dynamic-mcp is started;
- what a reload applies in place (`IN_PLACE`: the description, the tool filter, timeouts,
  `idle_timeout`, `start_on_expand`, feature switches, `access`, `sessions`) is not part
  of it: editing those never loses the catalog entry, and none but `sessions` restarts
  the upstream (`groups.changes`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping

from groups.config.model import ServerConfig, StdioServer
from groups.config.variables import UnresolvedError, interpolate, referenced_values

__all__ = ["IN_PLACE", "launch_identity"]

# The settings of an entry that shape how dynamic-mcp serves an upstream, not which one.
IN_PLACE = frozenset(
    {
        "description",
        "enabled",
        "features",
        "timeout",
        "tools",
        "idle_timeout",
        "start_on_expand",
        "access",
        "sessions",
    }
)

_DOT_PREFIXES = ("./", "../", ".\\", "..\\")


def launch_identity(
    server: ServerConfig, variables: Mapping[str, str], working_dir: str | None = None
) -> str:
    """A digest of what decides the upstream `server` reaches; `working_dir` defaults to
    the process's own, which a stdio upstream inherits."""
    entry = server.model_dump(mode="json", exclude=set(IN_PLACE))
    written = json.dumps(entry, sort_keys=True)
    values = referenced_values(written, variables)
    directory = None
    if isinstance(server, StdioServer):
        directory = _relied_on_directory(server, variables, working_dir or _cwd())
    payload = json.dumps([written, values, directory], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _relied_on_directory(
    server: StdioServer, variables: Mapping[str, str], working_dir: str
) -> str | None:
    """The working directory, when a relative path in the entry resolves against it."""
    cwd = _resolved(server.cwd, variables) if server.cwd else None
    if cwd is not None:
        # An absolute `cwd` is in the entry already and every relative path resolves in it.
        return None if os.path.isabs(cwd) else working_dir
    command = _resolved(server.command, variables)
    # A bare command name is looked up on PATH; one with a separator is a path.
    if not os.path.isabs(command) and ("/" in command or os.sep in command):
        return working_dir
    for arg in server.args:
        value = _resolved(arg, variables)
        if os.path.isabs(value) or not value:
            continue
        # `server.py` is a path only because it exists there; `@scope/pkg` or `-m` are not.
        if value.startswith(_DOT_PREFIXES) or os.path.exists(os.path.join(working_dir, value)):
            return working_dir
    return None


def _resolved(text: str, variables: Mapping[str, str]) -> str:
    """`text` with its `${...}` resolved, or as written when one cannot be (the group fails
    on connecting anyway, and the written text still tells entries apart)."""
    try:
        return interpolate(text, variables)
    except UnresolvedError:
        return text


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory was deleted under us: nothing relative can resolve
        return ""
