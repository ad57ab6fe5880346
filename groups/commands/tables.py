"""Plain-text tables for the terminal commands: a header row, columns two spaces apart.

    print(table(["USER", "SESSIONS"], [["alice", "2"], ["bob", "0"]]))
    ago(time.time() - 75)      # "1m15s ago"
    span(5400)                 # "1h30m"

Guarantees: every row has the header's columns (a missing cell is "-"); columns are as
wide as their widest cell, the last one unpadded, so `grep` and `awk` read the lines.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

__all__ = ["ago", "at", "span", "table"]

NONE = "-"  # a cell with nothing to say


def table(headers: Sequence[str], rows: Sequence[Sequence[str | None]]) -> str:
    cells = [list(headers), *[[cell or NONE for cell in row] for row in rows]]
    for row in cells:
        row.extend([NONE] * (len(headers) - len(row)))
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]))
    return "\n".join(lines)


def span(seconds: float | None) -> str:
    """A duration as an operator reads it: 45s, 12m30s, 3h05m, 2d04h."""
    if seconds is None:
        return NONE
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def ago(epoch: float | None) -> str:
    return NONE if epoch is None else f"{span(time.time() - epoch)} ago"


def at(epoch: float | None) -> str:
    """A moment in local time, to the second."""
    return NONE if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
