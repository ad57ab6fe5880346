"""A team gateway's public URL: where a person's browser ends an OAuth sign-in.

    choose_public_url("https://mcp.example.internal")   # at start-up, from --public-url
    public_url()                    # "https://mcp.example.internal", or None: loopback
    callback_url()                  # ".../oauth/callback": the gateway's route

Guarantees: without one (the default, and always on a laptop) sign-ins end on a loopback
port as before; `$DYNAMIC_MCP_PUBLIC_URL` is read when nothing was chosen (`fastmcp run`);
a value that is not an http(s) URL without query or fragment is refused
(`PublicUrlError`) before anything is served.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from groups import GATEWAY_ENV_VARS
from groups.errors import PublicUrlError

__all__ = ["CALLBACK_PATH", "SIGN_IN_PATH", "callback_url", "choose_public_url", "public_url"]

CALLBACK_PATH = "/oauth/callback"  # the gateway's route, under its public URL
SIGN_IN_PATH = "/oauth/sign-in"  # its page a sign-in link opens first: who, and where to

_chosen: str | None = None


def choose_public_url(url: str | None) -> str | None:
    """Make `url` (None: `$DYNAMIC_MCP_PUBLIC_URL`, if set) where this process's sign-ins
    end; the URL now in force.

    Raises:
        PublicUrlError: it is not an http(s) URL without a query or fragment.
    """
    global _chosen
    _chosen = _checked(url) if url else None
    return public_url()


def public_url() -> str | None:
    """The gateway's public URL, without a trailing slash; None: sign-ins end on loopback.

    Raises:
        PublicUrlError: `$DYNAMIC_MCP_PUBLIC_URL` is not usable.
    """
    if _chosen is not None:
        return _chosen
    written = os.environ.get(GATEWAY_ENV_VARS["public_url"])
    return _checked(written) if written else None


def callback_url() -> str | None:
    """The gateway's OAuth callback route, or None without a public URL."""
    base = public_url()
    return None if base is None else base + CALLBACK_PATH


def _checked(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise PublicUrlError(url)
    return url.strip().rstrip("/")
