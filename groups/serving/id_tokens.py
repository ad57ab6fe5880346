"""The ID token each of a gateway's named users last signed in with, for SEP-990.

    remember("alice", jwt, expires_at)     # the gateway's JWT verifier, on every request
    id_token_of("alice")                   # her newest JWT still good, or None

A user who signs in to the gateway with the organisation's JWTs presents one with every
request; a group with `"oauth_grant": "id_jag"` exchanges it at the identity provider for
that user's own upstream access (`groups.auth.enterprise`). An exchange may run after the
request that brought the token (a session's token expired mid-stream), so the newest token
of each user is kept here, in this process's memory only, never written or shown.

Guarantees: one token per user, the one that lasts longest; a token past its expiry is
never handed out; `forget` drops a user's (their access ended).
"""

from __future__ import annotations

import threading
import time

__all__ = ["forget", "id_token_of", "remember"]

_lock = threading.Lock()
_newest: dict[str, tuple[float, str]] = {}  # user -> (expires_at, token)


def remember(user: str, token: str, expires_at: float) -> None:
    """Keep `token` as `user`'s unless the one kept outlives it."""
    with _lock:
        kept = _newest.get(user)
        if kept is None or kept[0] <= expires_at:
            _newest[user] = (expires_at, token)


def id_token_of(user: str) -> str | None:
    """`user`'s newest ID token, or None: none came, or it has expired."""
    with _lock:
        kept = _newest.get(user)
    if kept is None or kept[0] <= time.time():
        return None
    return kept[1]


def forget(user: str) -> None:
    with _lock:
        _newest.pop(user, None)
