"""What every command takes the same way: the config and the log level.

    dynamic-mcp [CONFIG]                      dynamic-mcp tools [CONFIG] GROUP
    dynamic-mcp check [CONFIG]                dynamic-mcp call [CONFIG] GROUP TOOL
    dynamic-mcp auth [CONFIG] [GROUP]         dynamic-mcp rekey [CONFIG]
    dynamic-mcp run-code [CONFIG] PROGRAM
    ... --config PATH   --log-level LEVEL     (or $DYNAMIC_MCP_CONFIG, $DYNAMIC_MCP_LOG_LEVEL)

Guarantees: every command that reads a config takes it as its first argument or as
`--config` (giving both, differently, is an error naming both), else `$DYNAMIC_MCP_CONFIG`,
else `./dynamic-mcp.json`; a command's first argument is its config exactly when it is
given one argument more than the command takes, so `tools time` and `tools cfg.json time`
both work; every command takes `--log-level` and `$DYNAMIC_MCP_LOG_LEVEL`. This module
stays import-light: the command line reads it for `--help`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from groups import CONFIG_ENV_VAR, LOG_LEVEL_ENV_VAR, LogLevel
from groups.errors import CommandArgumentError

__all__ = ["ConfigOption", "LogLevelOption", "config_and_names", "one_config"]

CONFIG_HELP = "Path to dynamic-mcp.json (default: $DYNAMIC_MCP_CONFIG, else ./dynamic-mcp.json)."

ConfigOption = Annotated[
    Path | None, Parameter(name="--config", env_var=CONFIG_ENV_VAR, help=CONFIG_HELP)
]
LogLevelOption = Annotated[
    LogLevel,
    Parameter(env_var=LOG_LEVEL_ENV_VAR, help="Least severe log message written to stderr."),
]


def one_config(argument: Path | None, option: Path | None) -> Path | None:
    """The config named by the first argument or by --config (None: neither).

    Raises:
        CommandArgumentError: both name one, and not the same file.
    """
    if argument is not None and option is not None and argument != option:
        raise CommandArgumentError(
            "--config", f"the config is given twice: {str(argument)!r} and {str(option)!r}"
        )
    return argument if argument is not None else option


def config_and_names(
    command: str,
    given: Sequence[str],
    names: Sequence[str],
    option: Path | None,
    *,
    optional: int = 0,
) -> tuple[Path | None, list[str]]:
    """The config and `command`'s own arguments (`names`, the last `optional` of them
    optional) from the arguments `given`: one more than `names` means a config first.

    Raises:
        CommandArgumentError: too few or too many arguments, or the config given twice.
    """
    most, least = len(names), len(names) - optional
    if not least <= len(given) <= most + 1:
        usage = " ".join(["[CONFIG]", *names[:least], *(f"[{name}]" for name in names[least:])])
        got = f"{len(given)}: {' '.join(given)}" if given else "none"
        raise CommandArgumentError(command, f"takes {usage}; arguments given: {got}")
    if len(given) == most + 1:
        return one_config(Path(given[0]), option), list(given[1:])
    return option, list(given)
