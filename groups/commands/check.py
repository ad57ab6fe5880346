"""`dynamic-mcp check`: is every group of a config usable, and what does each cost the model?

    dynamic-mcp check                       # a table, and a progress line per group on a TTY
    dynamic-mcp check other.json --json     # one object per group, for scripts
    dynamic-mcp check --config other.json --log-level info   # and what the groups logged

The config is validated first (an invalid one is one error naming file, server and field,
exit 2). Then every enabled group is connected at once, as many starting together as
dynamic-mcp allows while serving, each bounded by the connect time limit, and asked for
its tools, resources and prompts. With a shared store (a team gateway's Redis) the store
is asked to answer too, and its line says whether it did. Exit 1 if any group failed, or
the store did not answer.

Token figures are estimates, a quarter of the characters of the JSON a client would put in
the model's context on every turn: a group's tools as its server sends them when connected
directly, against its line in `get_dynamic_tools` through dynamic-mcp. The total line
compares all groups' tools with dynamic-mcp's whole `tools/list`.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import Parameter

from groups import LogLevel
from groups.commands.arguments import CONFIG_HELP, ConfigOption, LogLevelOption, one_config

if TYPE_CHECKING:
    import mcp_types

    from groups.config import ServerConfig
    from groups.registry import Registry

__all__ = ["check"]

CHARS_PER_TOKEN = 4  # the usual rule of thumb for English and JSON
COLUMNS = (
    "group",
    "transport",
    "tools",
    "resources",
    "prompts",
    "connect",
    "direct ≈tokens",
    "dynamic-mcp ≈tokens",
    "status",
)


@dataclass(frozen=True)
class StoreCheck:
    """Whether a team gateway's shared store answered (`line` says which, and why not)."""

    line: str
    failed: bool


@dataclass
class GroupCheck:
    """One group's row: `status` is ok, failed (`reason` says why) or disabled."""

    group: str
    transport: str
    status: str
    reason: str | None = None
    tools: int | None = None
    resources: int | None = None
    prompts: int | None = None
    seconds: float | None = None
    tokens_direct: int | None = None
    tokens_via_dynamic_mcp: int | None = None


def check(
    config: Annotated[Path | None, Parameter(help=CONFIG_HELP)] = None,
    /,
    *,
    config_option: ConfigOption = None,
    json_: Annotated[bool, Parameter(name="--json")] = False,
    log_level: LogLevelOption = "error",
) -> None:
    """Validate CONFIG, connect every enabled group, and report each one and its token cost.

    Parameters
    ----------
    json_
        Print a JSON list, one object per group, instead of the table.
    """
    import anyio

    path = one_config(config, config_option)
    rows, via_total, store = anyio.run(_check_all, path, sys.stderr.isatty(), log_level)
    if json_:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        if store is not None and store.failed:
            sys.stderr.write(f"dynamic-mcp: {store.line}\n")  # the list holds groups alone
    else:
        sys.stdout.write(_table(rows) + _total(rows, via_total))
        if store is not None:
            sys.stdout.write(f"{store.line}.\n")
    if (store is not None and store.failed) or any(row.status == "failed" for row in rows):
        sys.exit(1)


async def _check_all(
    config: Path | None, progress: bool, log_level: LogLevel
) -> tuple[list[GroupCheck], int, StoreCheck | None]:
    """Every group's row, in config order, the tokens of dynamic-mcp's own tools/list, and
    the shared store's line (None with the local files)."""
    import anyio

    from groups.commands.terminal import own_server
    from groups.upstream import STARTS_AT_ONCE

    async with own_server(config, log_level=log_level) as own:
        store = await _check_store()
        registry = own.registry
        listed = await own.client.list_tools()  # before any group connects or fails
        via_total = _tokens([_dumped(tool) for tool in listed])
        rows = {name: _disabled(name, server) for name, server in own.config.servers.items()}
        starting = anyio.CapacityLimiter(STARTS_AT_ONCE)  # so a row's time is its own

        async def check_one(name: str) -> None:
            async with starting:
                rows[name] = await _check_group(registry, name)
            if progress:
                _progress(rows[name])

        async with anyio.create_task_group() as checks:
            for name in registry.group_names():
                checks.start_soon(check_one, name)
    return list(rows.values()), via_total, store


async def _check_store() -> StoreCheck | None:
    """Whether the shared store answers; None with the local files."""
    from groups.errors import StoreUnavailableError
    from groups.storage import default_store
    from groups.storage.store import LocalStore

    store = default_store()
    if isinstance(store, LocalStore):
        return None  # the local files: nothing to reach (and nothing of Redis imported)
    from groups.storage.shared import SharedStore

    if not isinstance(store, SharedStore):
        return None
    try:
        await store.ping()
    except StoreUnavailableError as exc:
        return StoreCheck(str(exc), failed=True)
    return StoreCheck(f"the store {store.shown} answered", failed=False)


async def _check_group(registry: Registry, name: str) -> GroupCheck:
    from groups.errors import DynamicMcpError, GroupUnavailableError

    upstream = registry.upstream(name)
    row = _disabled(name, upstream.config)
    row.status = "ok"
    row.tokens_via_dynamic_mcp = _tokens([f"- {name}: {upstream.config.description}\n"])
    started = time.monotonic()
    try:
        inventory = await upstream.inventory()
    except GroupUnavailableError as exc:
        row.status, row.reason = "failed", exc.cause
    except DynamicMcpError as exc:
        row.status, row.reason = "failed", str(exc)
    except Exception as exc:  # an upstream that answers a request wrongly fails its row alone
        row.status, row.reason = "failed", registry.redactor.scrub(f"{type(exc).__name__}: {exc}")
    else:
        if inventory.tools is not None:
            row.tools = len(inventory.tools)
            row.tokens_direct = _tokens([_dumped(tool) for tool in inventory.tools])
        row.resources, row.prompts = inventory.resources, inventory.prompts
    row.seconds = round(time.monotonic() - started, 3)
    return row


def _disabled(name: str, server: ServerConfig) -> GroupCheck:
    return GroupCheck(name, server.type, "disabled")


def _dumped(tool: mcp_types.Tool) -> str:
    """The tool as a client receives it in tools/list."""
    fields = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def _tokens(texts: list[str]) -> int:
    return math.ceil(sum(len(text) for text in texts) / CHARS_PER_TOKEN)


def _progress(row: GroupCheck) -> None:
    why = f": {row.reason}" if row.reason else ""
    sys.stderr.write(f"{row.status:>6}  {row.group} ({row.seconds:.2f}s){why}\n")


def _table(rows: list[GroupCheck]) -> str:
    """Aligned columns, names to the left, numbers to the right, the status (and reason) last."""
    lines = [list(COLUMNS), *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS) - 1)]

    def aligned(line: list[str]) -> str:
        cells = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line[:-1], widths, strict=True))
        ]
        return "  ".join([*cells, line[-1]])

    return "".join(aligned(line) + "\n" for line in lines)


def _cells(row: GroupCheck) -> list[str]:
    connect = f"{row.seconds:.2f}s" if row.seconds is not None else None
    figures = [
        row.tools,
        row.resources,
        row.prompts,
        connect,
        row.tokens_direct,
        row.tokens_via_dynamic_mcp,
    ]
    status = f"failed: {row.reason}" if row.reason else row.status
    return [row.group, row.transport, *("—" if f is None else str(f) for f in figures), status]


def _total(rows: list[GroupCheck], via_total: int) -> str:
    ok = [row for row in rows if row.tokens_direct is not None]
    direct = sum(row.tokens_direct or 0 for row in ok)
    failed = sum(row.status == "failed" for row in rows)
    note = f" ({failed} failed group{'s' if failed != 1 else ''} not counted)" if failed else ""
    if not direct:
        return f"\nNo tools to compare{note}.\n"
    saving = 1 - via_total / direct
    change = f"{saving:.0%} less" if saving >= 0 else f"{-saving:.0%} more"
    return (
        f"\nTools in context on every turn (≈ tokens): {direct} connected directly, "
        f"{via_total} through dynamic-mcp, {change}{note}.\n"
    )
