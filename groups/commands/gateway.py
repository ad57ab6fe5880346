"""`dynamic-mcp gateway`: the secrets a team gateway is set up with, made fresh.

    dynamic-mcp gateway new-user alice --users users.json   # adds alice, prints her token
    dynamic-mcp gateway new-store-key                       # prints a key for the store

`new-user` writes the users file (`groups.serving.users`) in one step, as a file only its
owner can read, with the token's SHA-256 alone: the token is printed once, on stdout, for
the user, and kept nowhere. A gateway serving that file takes the new user up while it
runs. Nothing here reaches a gateway or its store.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

from groups import GATEWAY_ENV_VARS
from groups.errors import UnsafeServingError

__all__ = ["gateway"]

TOKEN_BYTES = 32  # of randomness in a user's token and a store key: 256 bits

gateway = App(name="gateway", help="Make a team gateway's secrets: a user's token, a store key.")


@gateway.command(name="new-user")
def new_user(
    name: str,
    /,
    *,
    users: Annotated[Path, Parameter(env_var=GATEWAY_ENV_VARS["users"])],
) -> None:
    """Add NAME to the users file with a fresh token, and print the token (shown only now).

    Parameters
    ----------
    name
        The user's name, as a group's "access" names them.
    users
        The users file (mode 600), made if missing; it keeps the token's SHA-256 only.
    """
    from groups.serving.users import HASHED_PREFIX, read_digests
    from groups.storage.private_files import write_atomically

    if not name.strip() or name.startswith("group:"):
        raise UnsafeServingError(f"{name!r} cannot name a user: 'group:' begins a group's name")
    entries: dict[str, str] = {}
    if users.exists():
        read_digests(users)  # refuses a file that is open to others or malformed, saying why
        entries = json.loads(users.read_text(encoding="utf-8"))
        if name in entries:
            raise UnsafeServingError(
                f"the users file {users} already has {name!r}: remove the entry first "
                f"to give them a new token"
            )
    token = secrets.token_urlsafe(TOKEN_BYTES)
    entries[name] = HASHED_PREFIX + hashlib.sha256(token.encode()).hexdigest()
    try:
        write_atomically(users, json.dumps(entries, indent=2) + "\n")
    except OSError as exc:
        raise UnsafeServingError(f"cannot write the users file {users}: {exc.strerror}") from None
    sys.stderr.write(f"added {name!r} to {users}; their token, shown only now:\n")
    print(token)


@gateway.command(name="new-store-key")
def new_store_key() -> None:
    """Print a fresh key for the shared store (`DYNAMIC_MCP_STORE_KEY`, `settings.store_key`)."""
    print(secrets.token_urlsafe(TOKEN_BYTES))
