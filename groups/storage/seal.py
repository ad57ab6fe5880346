"""What replicas write for each other, sealed with a MAC only holders of the store key make.

    seal = Seal(["new key", "old key"])                         # the store keys, newest first
    text = seal.sealed("records", session_id, '{"owner": …}')   # sealed with the newest
    seal.opened("records", session_id, text)                   # any key's seal, or None

Anyone who can write to Redis (a second application, a leaked password) could otherwise
rewrite a session record's owner, end or cancel another user's session, or answer their
elicitation. Each value replicas exchange is sealed by an HMAC-SHA256 under a key derived
from the operator's `store_key` (never the key itself, which also encrypts tokens), over
what it says, where it is written (`kind`: a collection or a channel) and what it is
about (`subject`: a session id), so a sealed value cannot be replayed elsewhere either.

Guarantees: `sealed` uses the newest key, `opened` accepts the seal of any key given (a
key being rotated out still verifies) and returns None for a value no key sealed
(forged, written by an older version, or cut), never raising; comparisons are in
constant time; no key appears in a message or log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json

__all__ = ["Seal"]

_LABEL = b"dynamic-mcp replica messages, v1"  # what the derived key is for


class Seal:
    """Seals and opens the values replicas exchange (see the module)."""

    def __init__(self, store_keys: list[str]) -> None:
        self._keys = [hmac.new(key.encode(), _LABEL, hashlib.sha256).digest() for key in store_keys]

    def __repr__(self) -> str:
        return "Seal(***)"

    def sealed(self, kind: str, subject: str, text: str) -> str:
        """`text`, with its MAC, as one JSON string."""
        return json.dumps({"text": text, "mac": self._mac(self._keys[0], kind, subject, text)})

    def opened(self, kind: str, subject: str, sealed: str) -> str | None:
        """The text `sealed` holds, if this key sealed it for `kind` and `subject`."""
        envelope = _envelope(sealed)
        if envelope is None:
            return None
        text, mac = envelope
        macs = [self._mac(key, kind, subject, text) for key in self._keys]
        return text if any([hmac.compare_digest(mac, made) for made in macs]) else None

    @staticmethod
    def is_sealed(sealed: str) -> bool:
        """Whether `sealed` is shaped as a seal makes it (with whatever key)."""
        return _envelope(sealed) is not None

    @staticmethod
    def _mac(key: bytes, kind: str, subject: str, text: str) -> str:
        message = json.dumps([kind, subject, text]).encode()  # unambiguous: no joins to forge
        return hmac.new(key, message, hashlib.sha256).hexdigest()


def _envelope(sealed: str) -> tuple[str, str] | None:
    """The text and MAC of a sealed value, or None if it is not one."""
    try:
        value = json.loads(sealed)
        text, mac = value["text"], value["mac"]
    except (ValueError, TypeError, KeyError):
        return None
    return (text, mac) if isinstance(text, str) and isinstance(mac, str) else None
