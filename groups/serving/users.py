"""A gateway's named users: per-user tokens from a users file, or the organisation's JWTs.

    auth = UsersFile.read(Path("users.json"))       # {"alice": "tok…", "bob": "sha256:…"}
    change = auth.take(read_digests(auth.path))     # the file saved again: who came, who went
    auth = JwtSettings(jwks_url=url, issuer=iss, audience="dynamic-mcp").verifier()
    server = build_server(path, auth=auth)          # FastMCP's server auth: 401 otherwise

Either one is FastMCP's server auth (a `TokenVerifier`); the token it accepts names the
user (`groups.access.UserToken`), and the user's `access` decides what they see.

Guarantees:
- the users file is read only when private to its owner (`read_private`); otherwise, or
  when it is not a JSON object of user name to non-empty token (as given, or
  `sha256:<64 hex digits>`), or two users share a token, serving refuses to start; read
  again while serving (`groups.serving.users_reload`), the users it names replace the
  last good ones at once (`take`), and a file refused for any of these reasons changes
  nothing;
- a presented token is compared with every user's by SHA-256 digest in constant time;
  neither it nor a stored token is ever logged, kept in the access token, or shown;
- a JWT is verified by FastMCP's `JWTVerifier` (signature against the JWKS URL or the
  public key, expiry, issuer and audience, both required), then says when it holds: an
  `exp` is required, an `nbf` or `iat` in the future (past `leeway`) is refused, and so
  is a lifetime (`exp` from `iat`, or from now) past `max_lifetime` when one is set;
- the verified JWT is kept as the user's newest ID token (`groups.serving.id_tokens`), for
  the groups that exchange it for the user's own upstream access (SEP-990);
- the user is its `user_claim` (`sub` by default), a non-empty string, else the request
  gets 401, and is the token's subject: what the SDK compares a legacy session's owner
  by, so two users of one client app never own one session; the user's groups are its
  `groups_claim` (a list of strings, or one string), none when absent;
- a JWKS URL is https, or http on loopback only: keys fetched in the clear from
  elsewhere could be anyone's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.auth.providers.jwt import JWTVerifier

from groups import GATEWAY_ENV_VARS
from groups.access import GROUP_PREFIX, UserToken
from groups.config import parse_duration
from groups.errors import UnsafeServingError
from groups.serving.http_access import is_loopback
from groups.serving.id_tokens import remember
from groups.storage.private_files import NotPrivateError, read_private

__all__ = [
    "JwtSettings",
    "OrganisationTokens",
    "UsersChange",
    "UsersFile",
    "read_digests",
]

logger = logging.getLogger(__name__)

HASHED_PREFIX = "sha256:"
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
# What an access token shows of the secret it stood for: nothing.
HIDDEN = "***"
DEFAULT_LEEWAY = "60s"  # how far the identity provider's clock may be ahead of ours


@dataclass(frozen=True)
class UsersChange:
    """Who a new reading of the users file added, removed, or gave another token."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    token_changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.token_changed)

    def __str__(self) -> str:
        signs = (("+", self.added), ("-", self.removed), ("~", self.token_changed))
        return ", ".join(f"{sign} {user}" for sign, users in signs for user in users)


class UsersFile(TokenVerifier):
    """Accepts each user's own token and names that user."""

    def __init__(self, digests: dict[str, bytes], path: Path | None = None) -> None:
        """`digests`: user name -> SHA-256 digest of the user's token; `path`: the file
        they were read from, watched while serving."""
        super().__init__()
        self._digests = digests
        self.path = path

    def __repr__(self) -> str:
        return f"UsersFile({sorted(self._digests)})"

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._digests)

    @classmethod
    def read(cls, path: Path) -> UsersFile:
        """The users of the file at `path`.

        Raises:
            UnsafeServingError: the file is readable by others, unreadable, or not a JSON
                object of user name to token, or two users have one token.
        """
        return cls(read_digests(path), path)

    def take(self, digests: dict[str, bytes]) -> UsersChange:
        """Accept `digests`' users from now on, and no others; what changed."""
        old, self._digests = self._digests, digests  # one assignment: no request sees half
        return UsersChange(
            added=tuple(sorted(set(digests) - set(old))),
            removed=tuple(sorted(set(old) - set(digests))),
            token_changed=tuple(
                sorted(user for user in set(old) & set(digests) if old[user] != digests[user])
            ),
        )

    async def verify_token(self, token: str) -> AccessToken | None:
        presented = hashlib.sha256(token.encode()).digest()
        found = None
        for user, digest in self._digests.items():  # every one: no early exit to time
            if hmac.compare_digest(presented, digest):
                found = user
        if found is None:
            return None
        return UserToken(token=HIDDEN, client_id=found, subject=found, scopes=[], user=found)


def read_digests(path: Path) -> dict[str, bytes]:
    """Each user's token digest, from the users file at `path`.

    Raises:
        UnsafeServingError: the file is readable by others, unreadable, or not a JSON
            object of user name to token, or two users have one token; the message names
            the file and the users concerned, never a token.
    """
    try:
        data = json.loads(read_private(path))
    except NotPrivateError as exc:
        raise UnsafeServingError(
            f"the users file {path} is readable by others (mode {exc.mode:04o}): "
            f"run chmod 600 {path}"
        ) from None
    except OSError as exc:
        raise UnsafeServingError(f"cannot read the users file {path}: {exc.strerror}") from None
    except ValueError as exc:  # not JSON, or not UTF-8; the message quotes no token
        raise UnsafeServingError(f"the users file {path} is not JSON: {exc}") from None
    return _digests(path, data)


def _digests(path: Path, data: Any) -> dict[str, bytes]:
    """Each user's token digest, from the parsed users file."""

    def refuse(problem: str) -> UnsafeServingError:
        return UnsafeServingError(f"the users file {path} {problem}")

    if not isinstance(data, dict) or not data:
        raise refuse('must be a JSON object of user name to token: {"alice": "…"}')
    digests: dict[str, bytes] = {}
    for user, token in data.items():
        if not user.strip():
            raise refuse("has an empty user name")
        if user.startswith(GROUP_PREFIX):
            raise refuse(f"names a user {user!r}: {GROUP_PREFIX!r} begins a group's name")
        if not isinstance(token, str) or not token.strip():
            raise refuse(f"gives user {user!r} no token (a non-empty string)")
        if token.startswith(HASHED_PREFIX):
            hexdigest = token.removeprefix(HASHED_PREFIX)
            if not _HEX_DIGEST.match(hexdigest):
                raise refuse(f"gives user {user!r} a sha256: token that is not 64 hex digits")
            digest = bytes.fromhex(hexdigest)
        else:
            digest = hashlib.sha256(token.encode()).digest()
        twin = next((other for other, d in digests.items() if d == digest), None)
        if twin is not None:
            raise refuse(f"gives users {twin!r} and {user!r} the same token")
        digests[user] = digest
    return digests


@dataclass(frozen=True)
class JwtSettings:
    """How the organisation's identity provider's JWTs are checked, and who they name."""

    jwks_url: str | None = None
    public_key: Path | None = None  # a PEM file
    issuer: str | None = None
    audience: str | None = None
    user_claim: str = "sub"
    groups_claim: str | None = None
    leeway: str = DEFAULT_LEEWAY  # a duration: the clocks of the IdP and ours may differ
    max_lifetime: str | None = None  # a duration: no token is good for longer

    @classmethod
    def from_env(cls) -> JwtSettings:
        """The settings `$DYNAMIC_MCP_JWKS_URL`, `…_JWT_ISSUER` and the rest give
        (`groups.GATEWAY_ENV_VARS`): for `fastmcp run`, which passes no such flags."""
        named = {"jwks_url", "jwt_issuer", "jwt_audience", "user_claim", "groups_claim"}
        named |= {"jwt_leeway", "jwt_max_lifetime"}
        given = {
            name.removeprefix("jwt_"): os.environ[GATEWAY_ENV_VARS[name]]  # `issuer` here
            for name in named
            if os.environ.get(GATEWAY_ENV_VARS[name])
        }
        key = os.environ.get(GATEWAY_ENV_VARS["jwt_public_key"])
        return cls(**given, public_key=Path(key) if key else None)

    @property
    def given(self) -> bool:
        """Whether any JWT option was given (the claims have defaults, and count only with
        a key)."""
        return any((self.jwks_url, self.public_key, self.issuer, self.audience))

    def verifier(self) -> OrganisationTokens:
        """The verifier these settings describe.

        Raises:
            UnsafeServingError: a key source, the issuer or the audience is missing, both
                key sources are given, the JWKS URL is plain http off loopback, or the
                public key file cannot be read.
        """
        if bool(self.jwks_url) == bool(self.public_key):
            raise UnsafeServingError(
                "JWTs need exactly one key to check them against: --jwks-url URL "
                "(the identity provider's keys) or --jwt-public-key FILE (a PEM file)"
            )
        if not self.issuer or not self.audience:
            raise UnsafeServingError(
                "JWTs need --jwt-issuer and --jwt-audience: without them a token the "
                "identity provider issued for any other service would be accepted here"
            )
        key = None
        if self.public_key is not None:
            try:
                key = self.public_key.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise UnsafeServingError(
                    f"cannot read the JWT public key {self.public_key}: {reason}"
                ) from None
        if self.jwks_url is not None:
            _check_jwks_url(self.jwks_url)
        leeway = _seconds("--jwt-leeway", self.leeway)
        lifetime = _seconds("--jwt-max-lifetime", self.max_lifetime) if self.max_lifetime else None
        return OrganisationTokens(self, public_key=key, leeway=leeway, max_lifetime=lifetime)


def _seconds(flag: str, duration: str) -> float:
    try:
        return parse_duration(duration).total_seconds()
    except ValueError as exc:  # pydantic-core's error carries the rule
        raise UnsafeServingError(f"{flag}: {exc}") from None


def _check_jwks_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or "")):
        return
    raise UnsafeServingError(
        f"the JWKS URL {url!r} must be https (plain http only on loopback): keys fetched "
        "in the clear could be swapped for anyone's"
    )


class OrganisationTokens(JWTVerifier):
    """FastMCP's JWT verifier, naming the user by a claim of the verified token."""

    def __init__(
        self,
        settings: JwtSettings,
        *,
        public_key: str | None,
        leeway: float,
        max_lifetime: float | None,
    ) -> None:
        super().__init__(
            public_key=public_key,
            jwks_uri=settings.jwks_url,
            issuer=settings.issuer,
            audience=settings.audience,
        )
        self._user_claim = settings.user_claim
        self._groups_claim = settings.groups_claim
        self._leeway, self._max_lifetime = leeway, max_lifetime

    def __repr__(self) -> str:
        return f"OrganisationTokens(issuer={self.issuer!r}, audience={self.audience!r})"

    async def verify_token(self, token: str) -> AccessToken | None:
        verified = await super().verify_token(token)
        if verified is None:
            return None
        user = verified.claims.get(self._user_claim)
        if not isinstance(user, str) or not user:
            logger.info("refused a JWT without a %r claim naming the user", self._user_claim)
            return None
        if (untimely := self._untimely(verified.claims)) is not None:
            logger.info("refused a JWT of user %r: %s", user, untimely)
            return None
        # The user's own ID token, for groups their identity provider gives access to
        # (`oauth_grant: id_jag`); kept in memory apart from the access token, never shown.
        remember(user, token, float(verified.claims["exp"]))
        return UserToken(
            **verified.model_dump(exclude={"token", "subject"}),
            token=HIDDEN,
            subject=user,  # the SDK's owner of a session is this person, whatever `sub` says
            user=user,
            user_groups=self._groups(verified.claims),
        )

    def _untimely(self, claims: dict[str, Any]) -> str | None:
        """Why the token does not hold now (its signature and `exp` checked), or None."""
        now = time.time()
        times = {name: claims.get(name) for name in ("exp", "nbf", "iat")}
        for name, value in times.items():
            if value is not None and not _is_number(value):
                return f"its {name!r} is not a number of seconds"
        exp, nbf, iat = times["exp"], times["nbf"], times["iat"]
        if exp is None:
            return "it has no 'exp': a token must expire"
        if nbf is not None and nbf > now + self._leeway:
            return "its 'nbf' is still to come"
        if iat is not None and iat > now + self._leeway:
            return "its 'iat' is in the future"
        lifetime = exp - (iat if iat is not None else now)
        if self._max_lifetime is not None and lifetime > self._max_lifetime + self._leeway:
            return (
                f"it is good for {lifetime:.0f}s, past the most allowed, {self._max_lifetime:.0f}s"
            )
        return None

    def _groups(self, claims: dict[str, Any]) -> tuple[str, ...]:
        value = claims.get(self._groups_claim) if self._groups_claim else None
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(group for group in value if isinstance(group, str))
        return ()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
