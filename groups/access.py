"""Who is asking, and which groups they may use: a gateway's named users and `access`.

    user = user_of_request(ctx.request)         # None: the one implicit user
    user = current_user()                       # the same, inside FastMCP's own dispatch
    may_use(user, config.access)                # whether `user` sees and uses the group

Guarantees:
- without named users (stdio, HTTP on loopback without auth, one shared token) there is
  one implicit user, None here, who may use every group: exactly as before `access`;
- a user is named only by one of our own token verifiers (`groups.serving.users`, a
  users file or the organisation's JWTs), which return a `UserToken`; a request that
  carries any other token, or none, is the implicit user, and never reaches us unnamed
  where named users are configured (FastMCP answers it 401 first);
- a named user may use a group whose entry has no `access`, or whose `access` lists the
  user's name or, as `group:NAME`, one of the user's groups (the identity provider's
  groups claim): user names and group names never stand for each other; a group with
  `access: []` is nobody's but the implicit user's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastmcp.server.auth import AccessToken
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

__all__ = [
    "GROUP_PREFIX",
    "User",
    "UserToken",
    "current_user",
    "may_use",
    "user_of_request",
    "user_of_scope",
]

GROUP_PREFIX = "group:"  # an `access` entry naming an identity provider's group

logger = logging.getLogger(__name__)
_told_bare_names: set[str] = set()  # bare `access` names the operator was warned of


@dataclass(frozen=True)
class User:
    """A named caller of a gateway: a name, and the identity provider's groups it is in."""

    name: str
    groups: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"User({self.name!r})"


class UserToken(AccessToken):
    """The access token our verifiers return: who the bearer is, decided once, at the door."""

    user: str
    user_groups: tuple[str, ...] = ()


def may_use(user: User | None, access: Sequence[str] | None) -> bool:
    """Whether `user` (None: the implicit user) may see and use a group with `access`."""
    if user is None or access is None:
        return True
    entries = [_entry(entry) for entry in access]
    if any(name in user.groups if is_group else name == user.name for is_group, name in entries):
        return True
    for is_group, name in entries:
        if not is_group and name in user.groups and name not in _told_bare_names:
            _told_bare_names.add(name)  # once per name: this runs on every request
            logger.warning(
                "access names %r, a user name, and user %r is in the group %r: to let that "
                'group in, write "%s%s"',
                name,
                user.name,
                name,
                GROUP_PREFIX,
                name,
            )
    return False


def _entry(entry: str) -> tuple[bool, str]:
    """An `access` entry: (True, group) for `group:NAME`, else (False, user name). Two
    namespaces: nobody can take a user name that grants a group's access."""
    group = entry.removeprefix(GROUP_PREFIX)
    return group != entry, group


def user_of(token: Any) -> User | None:
    """The user a verified access token names, or None for the implicit user."""
    if isinstance(token, UserToken):
        return User(token.user, frozenset(token.user_groups))
    return None


def user_of_request(request: Any) -> User | None:
    """The user of an HTTP request as authenticated by FastMCP's server auth (Starlette's
    `scope["user"]`); None for stdio (no request) or when nobody is named."""
    scope = getattr(request, "scope", None)
    return user_of_scope(scope) if isinstance(scope, Mapping) else None


def user_of_scope(scope: Mapping[str, Any]) -> User | None:
    """The user FastMCP's server auth put in an ASGI scope, or None when nobody is named."""
    authenticated = scope.get("user")
    if isinstance(authenticated, AuthenticatedUser):
        return user_of(authenticated.access_token)
    return None


def current_user() -> User | None:
    """The user of the request FastMCP is dispatching in this task (resources, prompts,
    completions reach us that way), or None."""
    from fastmcp.server.dependencies import get_access_token

    return user_of(get_access_token())
