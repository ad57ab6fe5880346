"""OAuth for remote groups: FastMCP's OAuth client on our store, and the browser sign-in.

    auth = GroupOAuth(url, server, oauth_tokens("github", redactor))   # shared by sessions
    link = await SignIn("github", url, server, tokens).start()        # a person signs in

Tokens and registrations live in the process's one store (`groups.storage.default_store`),
a gateway's named users each in a scope of their own. A sign-in ends on a loopback port
(`loopback`), or on a gateway's own `/oauth/callback` (`handover`, `callback_route`). No
person signs in for a service account (`machine`) nor where the organisation's identity
provider vouches for the user (`enterprise`, SEP-990).
"""

from groups.auth.oauth import CALLBACK_TIMEOUT, GroupOAuth
from groups.auth.sign_in import SignIn
from groups.auth.tokens import StoredSignIn, oauth_tokens, stored_sign_in

__all__ = [
    "CALLBACK_TIMEOUT",
    "GroupOAuth",
    "SignIn",
    "StoredSignIn",
    "oauth_tokens",
    "stored_sign_in",
]
