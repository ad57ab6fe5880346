"""Keep secrets out of every message: the errors the model reads and every log line.

    redactor = Redactor()
    url = interpolate("https://x/mcp?key=${API_KEY}", variables, redactor)  # value now known
    redactor.scrub(f"HTTP 503 from {url}")      # 'HTTP 503 from https://x/mcp?key=${API_KEY}'
    shown_url("https://x/mcp?key=abc&v=2")      # 'https://x/mcp?key=***&v=***'
    handler.setFormatter(RedactingFormatter(redactor, "%(message)s"))

Messages name things as the config writes them (`${API_KEY}`, not its value); `scrub` is the
net under that rule, applied to every error result the model reads, to what `check` shows,
and to every log line at any level, from our loggers and FastMCP's, the SDK's and httpx's.

Guarantees:
- a value substituted for `${VAR}` reads `${VAR}` after `scrub`, wherever it appears;
- literal values written in the config read `***` wherever they appear (httpx's "HTTP
  Request:" line, the SDK's debug lines, tracebacks, an upstream's stderr): header values,
  env values under names that say secret (`*TOKEN*`, `*KEY*`…), the query values and the
  password of a URL (`url`, or a URL among a stdio server's `args`), and the values of
  secret-looking flags and header flags in `args` (`--token X`, `--header "K: v"`);
- OAuth codes and tokens (`code=`, `access_token=`, `refresh_token=`, `id_token=`,
  `client_secret=`, `code_verifier=`) and `Bearer` credentials read `***` in every log
  line (a sign-in link, which carries none of these, stays usable);
- upstream tool results are not changed: a proxy passes them through as they came.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlsplit, urlunsplit

__all__ = ["HIDDEN", "RedactingFormatter", "Redactor", "shown_args", "shown_url"]

HIDDEN = "***"
# Shorter values are too common to hide ("1", "on") and too short to be credentials.
MIN_SECRET_LENGTH = 4
# Env names whose literal values are credentials (a literal DEBUG=true is not).
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSW|AUTH|CRED|PRIVATE|SESSION|COOKIE", re.I)
_SECRET_FLAG = re.compile(r"^--?[\w-]*(token|key|secret|passw|auth|cred)[\w-]*$", re.I)
_HEADER_FLAG = re.compile(r"^(--header|-H)$")
# Credentials that can reach a log line without our knowing their value: an OAuth flow's
# query and form parameters, JSON token fields, and bearer headers. `code` is hidden only
# as a parameter or a JSON string: `code=-32000` in an error's repr is no secret.
_TOKEN_NAMES = "access_token|refresh_token|id_token|client_secret|code_verifier"
_CREDENTIALS = [
    re.compile(rf"(?i)([?&](?:code|{_TOKEN_NAMES})=)([^&\s\"',;)]+)"),
    re.compile(rf"(?i)(\b(?:{_TOKEN_NAMES})=[\"']?)([^&\s\"',;)]+)"),  # also a repr's '…'
    re.compile(rf"(?i)([\"'](?:code|{_TOKEN_NAMES})[\"']\s*:\s*[\"'])([^\"']+)"),
    re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{4,})"),
]


class Redactor:
    """The secret values known so far, and what each is shown as instead.

    Values are learned as `${VAR}` references are resolved (`groups.config.interpolate`),
    so a secret is known from the moment it could first appear in a message.
    """

    def __init__(self) -> None:
        self._shown_as: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()  # log records are formatted on any thread

    def __repr__(self) -> str:
        return f"Redactor({len(self._shown_as)} secrets)"

    def add(self, value: str, shown_as: str = HIDDEN) -> None:
        """Hide `value` from now on, showing `shown_as` in its place."""
        if len(value) < MIN_SECRET_LENGTH or self._shown_as.get(value) == shown_as:
            return
        with self._lock:
            self._shown_as[value] = shown_as
            self._pattern = None

    def add_literal_header(self, value: str) -> None:
        """A header value written in the config: hide it, and its credential alone.

        A value with a `${VAR}` in it is left to `interpolate`, which learns what the
        reference stands for: the reference itself is how messages name it.
        """
        if "${" in value:
            return
        self.add(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.isalpha():
            self.add(credential)

    def add_literal_env(self, name: str, value: str) -> None:
        """An env value written in the config: hidden when its name says it is a secret."""
        if _SECRET_NAME.search(name) and "${" not in value:
            self.add(value)

    def add_literal_url(self, url: str) -> None:
        """A URL written in the config: its query values and its password are hidden.

        Hidden as written and decoded, so httpx's "HTTP Request:" line, which shows the URL
        as sent, and any message showing it decoded read `***` alike.
        """
        try:
            parts = urlsplit(url)
        except ValueError:
            return
        userinfo, at, _ = parts.netloc.rpartition("@")
        user, has_password, password = userinfo.partition(":")
        if at and has_password and self._add_written(password):
            # httpx sends a URL's userinfo as Basic credentials: hide those too.
            pair = f"{unquote(user)}:{unquote(password)}".encode()
            self.add(base64.b64encode(pair).decode())
        for field in parts.query.split("&"):
            self._add_written(field.partition("=")[2])

    def add_literal_args(self, args: list[str]) -> None:
        """A stdio server's `args`: the values `shown_args` hides are hidden everywhere."""
        for flag, value in _flagged(args):
            if flag is not None and _HEADER_FLAG.match(flag):
                _, colon, content = value.partition(":")
                if colon:
                    self.add_literal_header(content.strip())
            elif flag is not None:
                self._add_written(value)
            elif value.startswith(("http://", "https://")):
                self.add_literal_url(value)

    def _add_written(self, value: str) -> bool:
        """Hide a literal value, as written and percent-decoded; not one that uses `${VAR}`."""
        if "${" in value or len(value) < MIN_SECRET_LENGTH:
            return False
        self.add(value)
        self.add(unquote_plus(value))
        return True

    def scrub(self, text: str) -> str:
        """`text` with every known secret, OAuth parameter and bearer credential hidden."""
        pattern = self._compiled()
        if pattern is not None:
            text = pattern.sub(lambda match: self._shown_as[match.group(0)], text)
        return scrub_credentials(text)

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._shown_as:
                # Longest first, so a secret that contains another is hidden whole.
                values = sorted(self._shown_as, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, values)))
            return self._pattern


def scrub_credentials(text: str) -> str:
    """Hide OAuth parameters and bearer credentials whose values nobody registered."""
    for pattern in _CREDENTIALS:
        text = pattern.sub(lambda match: f"{match.group(1)}{HIDDEN}", text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output, traceback included, never shows a known secret."""

    def __init__(self, redactor: Redactor, fmt: str) -> None:
        super().__init__(fmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.scrub(super().format(record))


def shown_url(url: str) -> str:
    """A URL as a message may show it: `${VAR}` kept, literal query values and passwords hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{HIDDEN}@{host}" if has_password else f"{user}@{host}"
    query = "&".join(
        f"{quote(key, safe='${}')}={value if _is_reference(value) else HIDDEN}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def shown_args(args: list[str]) -> list[str]:
    """Command-line arguments as a message may show them, secrets hidden.

    Hidden: the values of secret-looking flags (`--token X`, `--api-key=X`), header values
    (`--header "X-Api-Key: v"`, the mcp-remote form), and literal query values of URLs.
    """
    shown: list[str] = []
    for (flag, value), arg in zip(_flagged(args), args, strict=True):
        if flag is not None:
            shown.append(arg.removesuffix(value) + _shown_value(flag, value))
        elif arg.startswith(("http://", "https://")):
            shown.append(shown_url(arg))
        else:
            shown.append(arg)
    return shown


def _flagged(args: list[str]) -> Iterator[tuple[str | None, str]]:
    """Each argument as (the secret-looking or header flag it is the value of, its value).

    `--token X` gives (None, "--token"), then ("--token", "X"); `--token=X` gives
    ("--token", "X"); any other argument (None, itself).
    """
    follows: str | None = None  # the flag the previous argument was, when it takes this one
    for arg in args:
        flag, equals, value = arg.partition("=")
        if follows is not None:
            yield follows, arg
        elif equals and (_SECRET_FLAG.match(flag) or _HEADER_FLAG.match(flag)):
            yield flag, value
        else:
            yield None, arg
        takes_value = not equals and (_SECRET_FLAG.match(arg) or _HEADER_FLAG.match(arg))
        follows = arg if takes_value else None


def _shown_value(flag: str, value: str) -> str:
    if _is_reference(value):
        return value
    if _HEADER_FLAG.match(flag):
        name, colon, content = value.partition(":")
        if not colon or _is_reference(content.strip()):
            return value
        return f"{name}:{' ' if content.startswith(' ') else ''}{HIDDEN}"
    return HIDDEN


def _is_reference(value: str) -> bool:
    """Whether a value is only a `${VAR}` reference (which shows nothing secret)."""
    return bool(re.fullmatch(r"\$\{(file:[^}]+|[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?)\}", value))
