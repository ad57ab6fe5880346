"""`${VAR}` and `${file:PATH}` in config values, resolved when a group connects.

    variables = variables_for(config_path)               # the environment over a `.env` beside it
    url = interpolate("https://x/mcp?key=${API_KEY}", variables, redactor)

Guarantees: a reference is resolved from the environment, else the `.env` beside the
config, else its `:-default`; an unset one or an unusable file raises `UnresolvedError`
naming it (never its value); every value put in is taught to the `Redactor` first; a
secret file is read only if private to its owner (`groups.storage.private_files`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from groups.storage.private_files import NotPrivateError, read_private

if TYPE_CHECKING:
    from groups.secrets import Redactor

__all__ = [
    "SecretFileError",
    "UnresolvedError",
    "UnsetVariableError",
    "interpolate",
    "read_secret_file",
    "referenced_values",
    "variables_for",
]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_REFERENCE = re.compile(r"\$\{(?:file:([^}]+)|([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?)\}")


class UnresolvedError(Exception):
    """A `${...}` in a group's config cannot be resolved now; the group fails alone."""


class UnsetVariableError(UnresolvedError):
    """A `${VAR}` in a group's config names a variable that is not set."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"environment variable {name} is not set (used as ${{{name}}})")


class SecretFileError(UnresolvedError):
    """A `${file:PATH}` names a file that is missing, unreadable, or readable by others."""

    def __init__(self, written: str, problem: str) -> None:
        self.written = written
        self.problem = problem
        super().__init__(f"the secret file {written} (used as ${{file:{written}}}) {problem}")


def variables_for(config_path: Path | None) -> dict[str, str]:
    """The environment `${VAR}` sees: a `.env` beside the config, overridden by the process."""
    from_file: dict[str, str] = {}
    if config_path is not None:
        env_file = config_path.parent / ".env"
        if env_file.is_file():
            from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**from_file, **os.environ}


def interpolate(text: str, variables: Mapping[str, str], redactor: Redactor | None = None) -> str:
    """Replace `${VAR}`, `${VAR:-default}` and `${file:PATH}`; `redactor` learns each secret.

    Raises:
        UnsetVariableError: a variable without a default is not set.
        SecretFileError: a secret file is missing, unreadable or readable by others.
    """

    def substitute(match: re.Match[str]) -> str:
        path, name, default = match.groups()
        if path is not None:
            value, shown = read_secret_file(path), f"${{file:{path}}}"
        elif name in variables:
            value, shown = variables[name], f"${{{name}}}"
        elif default is not None:
            return default  # written in the config for all to see: no secret
        else:
            raise UnsetVariableError(name)
        if redactor is not None:
            redactor.add(value, shown)
        return value

    return _REFERENCE.sub(substitute, text)


def read_secret_file(written: str) -> str:
    """The content of a `${file:PATH}` (`~` expanded), its trailing newline removed.

    Raises:
        SecretFileError: the file is missing, unreadable, or readable by group or others.
    """
    path = Path(written).expanduser()
    try:
        text = read_private(path)
    except FileNotFoundError:
        raise SecretFileError(written, "does not exist") from None
    except NotPrivateError as exc:
        problem = f"is readable by others (mode {exc.mode:04o}): run chmod 600 {path}"
        raise SecretFileError(written, problem) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretFileError(written, f"cannot be read ({exc})") from None
    return text.removesuffix("\n").removesuffix("\r")


def referenced_values(written: str, variables: Mapping[str, str]) -> dict[str, str | None]:
    """The value of each `${VAR}` and `${file:PATH}` in `written` (an unset one as None, an
    unreadable file as its problem): what a digest of the entry must cover besides its text."""
    values: dict[str, str | None] = {}
    for match in _REFERENCE.finditer(written):
        path, name, _ = match.groups()
        if path is not None:
            try:
                values[f"file:{path}"] = read_secret_file(path)
            except SecretFileError as exc:
                values[f"file:{path}"] = f"unresolved: {exc.problem}"
        else:
            values[name] = variables.get(name)
    return values
