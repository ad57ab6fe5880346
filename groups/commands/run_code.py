"""`dynamic-mcp run-code`: run a program as the model would, to test a setup from a terminal.

    dynamic-mcp run-code zones.py --config dynamic-mcp.json    # or: run-code CONFIG zones.py
    echo 'return await call_tool("time", "get_current_time", {"timezone": "UTC"})' \\
        | dynamic-mcp run-code -

The program goes through `run_dynamic_code` of dynamic-mcp's own server
(`groups.commands.terminal`): the config's groups, filters and `settings.code` limits, the
same sandbox. The value is printed as the model gets it (its JSON, then what the program
printed), and an error on stderr with exit code 1, as `call` does. A config without
`settings.code` is refused (exit 2): the model could not run it either.
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from groups.commands.arguments import ConfigOption, LogLevelOption, config_and_names
from groups.commands.tools import print_result
from groups.errors import CommandArgumentError, ConfigError

if TYPE_CHECKING:
    import mcp_types

    from groups import LogLevel

__all__ = ["run_code"]


def run_code(
    *arguments: Annotated[str, Parameter(name="[CONFIG] PROGRAM", allow_leading_hyphen=True)],
    config: ConfigOption = None,
    log_level: LogLevelOption = "error",
) -> None:
    """Run PROGRAM (a file, or - for stdin) as run_dynamic_code; exit 1 when it fails.

    Parameters
    ----------
    arguments
        The Python program's file, or - to read it from stdin; before it, the config's
        path if not --config.
    """
    import anyio

    config, (program,) = config_and_names("run-code", arguments, ["PROGRAM"], config)
    code = _read(program)
    result = anyio.run(partial(_run, config, code, log_level))
    print_result(result)
    if result.is_error:
        sys.exit(1)


async def _run(config: Path | None, code: str, log_level: LogLevel) -> mcp_types.CallToolResult:
    from groups.commands.terminal import own_server

    async with own_server(config, log_level=log_level) as own:
        if own.config.settings.code_limits is None:
            raise ConfigError(
                own.config_path,
                'code mode is off: set "settings": {"code": true} to run programs',
                field="settings.code",
            )
        return await own.client.call_tool_mcp("run_dynamic_code", {"code": code})


def _read(program: str) -> str:
    if program == "-":
        return sys.stdin.read()
    try:
        return Path(program).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandArgumentError(program, f"cannot be read ({exc})") from None
