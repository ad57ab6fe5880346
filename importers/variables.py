"""Rewrite each tool's variable syntax as dynamic-mcp's `${VAR}`, and name what cannot be.

    normalize("Bearer ${env:TOKEN}", {"env-colon"})     # "Bearer ${TOKEN}"
    unresolvable("${input:pat}", {"pat": "GitHub PAT"})  # ["keeps ${input:pat} (GitHub PAT), ..."]

Guarantees: `normalize` only rewrites references whose meaning is an environment
variable in the source tool, so the imported config reads the same variable. Anything
else that looks like a placeholder is left exactly as written and reported by
`unresolvable`, because dynamic-mcp would otherwise fail that group at connect time with
an unset variable.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import Literal

__all__ = ["EDITOR_VARIABLES", "Syntax", "normalize", "unresolvable"]

Syntax = Literal["env-colon", "opencode", "dollar"]
"""The variable syntaxes a source may use, besides `${VAR}` itself.

env-colon: `${env:VAR}` (VS Code, Cursor, Cline, Kilo Code).
opencode:  `{env:VAR}`; `{file:path}` is reported, not rewritten.
dollar:    a bare `$VAR` (Gemini CLI expands it in every settings string).
"""

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ENV_COLON = re.compile(rf"\$\{{env:({_NAME})\}}")
_OPENCODE_ENV = re.compile(rf"(?<!\$)\{{env:({_NAME})\}}")
_OPENCODE_FILE = re.compile(r"(?<!\$)\{file:([^}]*)\}")
_DOLLAR = re.compile(rf"\$({_NAME})")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# What dynamic-mcp itself resolves: ${VAR} and ${VAR:-default}.
_OURS = re.compile(rf"^{_NAME}(?::-.*)?$", re.DOTALL)

# Editor variables look like ${VAR} but stand for paths the editor knows; resolved as
# environment variables they would be unset.
EDITOR_VARIABLES = frozenset(
    {
        "workspaceFolder",
        "workspaceFolderBasename",
        "workspaceRoot",
        "userHome",
        "pathSeparator",
        "cwd",
        "file",
        "fileDirname",
        "execPath",
    }
)


def normalize(value: str, syntaxes: Collection[Syntax]) -> str:
    """Rewrite the given syntaxes' environment references as `${VAR}`."""
    if "env-colon" in syntaxes:
        value = _ENV_COLON.sub(r"${\1}", value)
    if "opencode" in syntaxes:
        value = _OPENCODE_ENV.sub(r"${\1}", value)
    if "dollar" in syntaxes:
        value = _DOLLAR.sub(r"${\1}", value)
    return value


def unresolvable(
    value: str,
    inputs: Mapping[str, str],
    *,
    editor: bool = False,
    opencode: bool = False,
) -> Iterator[str]:
    """Say, for each placeholder in `value` that dynamic-mcp cannot resolve, what to do.

    Args:
        value: one already-normalized string of the entry.
        inputs: VS Code input ids and their descriptions, to name them in the message.
        editor: the source is an editor whose `${workspaceFolder}`-style variables apply.
        opencode: the source is opencode, whose `{file:path}` reads a file.
    """
    for match in _PLACEHOLDER.finditer(value):
        inner = match.group(1)
        if inner.startswith("input:"):
            input_id = inner.removeprefix("input:")
            about = f" ({inputs[input_id]})" if inputs.get(input_id) else ""
            yield (
                f"keeps ${{input:{input_id}}}{about}, a VS Code input that dynamic-mcp cannot "
                f"ask for: replace it with ${{VAR}} and set VAR in the environment or in a "
                f".env beside the config"
            )
        elif editor and inner in EDITOR_VARIABLES:
            yield (
                f"keeps ${{{inner}}}, an editor variable rather than an environment "
                f"variable: replace it with the path it stands for"
            )
        elif not _OURS.match(inner):
            yield f"keeps ${{{inner}}}, which dynamic-mcp cannot resolve: replace it with ${{VAR}}"
    if opencode:
        for match in _OPENCODE_FILE.finditer(value):
            yield (
                f"keeps {{file:{match.group(1)}}}, opencode's file substitution, which "
                f"dynamic-mcp does not do: put the value in an environment variable and "
                f"use ${{VAR}}"
            )
