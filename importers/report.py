"""What the import tells the user: each server as it will run, and the closing summary.

    outcome = Outcome()
    show("github", found, "[1/3]", console)
    summarize(Path("dynamic-mcp.json"), 0o600, outcome, console)

Guarantees: env and header *values* are never shown (they are often tokens), only their
names; every server the source listed appears in the summary as imported or skipped, and
each note about it under "Needs attention", so nothing is left out silently.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importers.entries import Found
from importers.prompts import Console

__all__ = ["Outcome", "show", "summarize"]


@dataclass
class Outcome:
    """What happened to each server of the source."""

    #: Names of imported servers, "(disabled)" marked.
    imported: list[str] = field(default_factory=list)
    #: Server name -> why it was not imported.
    skipped: dict[str, str] = field(default_factory=dict)
    #: Imported servers whose description is a placeholder to replace.
    placeholders: list[str] = field(default_factory=list)
    #: (server, what to check), in source order.
    attention: list[tuple[str, str]] = field(default_factory=list)
    #: The entries to write, by name.
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)


def show(name: str, server: Found, counter: str, console: Console) -> None:
    """The server as it will run: transport, command or URL, env and header names, notes."""
    entry = server.entry
    kind = entry.get("type", "http" if "url" in entry else "stdio")
    off = ", disabled" if entry.get("enabled") is False else ""
    console.say(f"{counter} {name} ({kind}{off})")
    if "url" in entry:
        console.say(f"    {entry['url']}")
    else:
        words = [entry["command"], *entry.get("args", [])]
        console.say("    " + " ".join(_shown(word) for word in words))
    for key in ("env", "headers"):
        if entry.get(key):
            console.say(f"    {key}: {', '.join(entry[key])}")
    if entry.get("cwd"):
        console.say(f"    cwd: {entry['cwd']}")
    for note in server.notes:
        console.say(f"    ! {note}")


def summarize(output: Path, mode: int, outcome: Outcome, console: Console) -> None:
    """What was written, what was left out and why, what to check, and how to run it."""
    count = len(outcome.entries)
    console.say()
    secret = " (mode 600: it holds env values or headers)" if mode == 0o600 else ""
    console.say(f"Wrote {output}: {count} server{'s' if count != 1 else ''}{secret}.")
    console.say(f"Imported: {', '.join(outcome.imported)}")
    _section("Skipped", outcome.skipped.items(), console)
    attention = list(outcome.attention)
    if outcome.placeholders:
        names = ", ".join(outcome.placeholders)
        attention.insert(0, (names, f"the description is a placeholder; edit it in {output}"))
    _section("Needs attention", attention, console)
    console.say("Run it with:")
    console.say(f"  dynamic-mcp {shlex.quote(str(output))}")


def _section(title: str, rows: Iterable[tuple[str, str]], console: Console) -> None:
    rows = list(rows)
    if rows:
        console.say(f"{title}:")
        for name, text in rows:
            console.say(f"  {name}: {text}")


def _shown(word: str) -> str:
    """A command-line word, quoted only when it would otherwise be ambiguous."""
    return shlex.quote(word) if not word or any(c.isspace() for c in word) else word
