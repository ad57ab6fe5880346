"""`dynamic-mcp import <tool>`: read a tool's MCP servers, ask about each, write the config.

    dynamic-mcp import cursor                 # .cursor/mcp.json -> ./dynamic-mcp.json
    dynamic-mcp import claude-code --global   # ~/.claude.json
    dynamic-mcp import vscode -o ~/mcp.json --merge --yes

Guarantees: nothing is written until every question is answered, and then the output is
replaced in one atomic rename (see `importers.output`). Without a terminal on stdin, or
with --yes, no question is asked and stdin is never read. Every server of the source ends
up in the summary as imported, skipped (with the reason) or needing attention (with what
to check); failures are `ImportFailedError` subclasses, which the CLI prints as one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from cyclopts import Parameter

from groups.config import GROUP_NAME_RULE, plain_group_name
from importers import IMPORTERS, find
from importers.entries import Found, Parsed, Unusable
from importers.errors import (
    ImportCancelledError,
    ImportSourceInvalidError,
    ImportSourceMissingError,
    NoProjectScopeError,
    NothingToImportError,
    OutputExistsError,
    UnknownImporterError,
)
from importers.formats import SourceSyntaxError
from importers.importer import Importer
from importers.output import check_entry, compose, load_existing, write_output
from importers.paths import Platform, UserDirs, current_platform
from importers.prompts import Console
from importers.report import Outcome, show, summarize

__all__ = ["import_", "run"]

Scope = Literal["project", "global"]
FEATURES = ("tools", "resources", "prompts")


def import_(
    tool: str,
    /,
    *,
    global_: Annotated[bool, Parameter(name=["--global", "-g"])] = False,
    output: Annotated[Path, Parameter(name=["--output", "-o", "--config"])] = Path(
        "dynamic-mcp.json"
    ),
    force: Annotated[bool, Parameter(name=["--force", "-f"])] = False,
    merge: bool = False,
    yes: Annotated[bool, Parameter(name=["--yes", "-y"])] = False,
    platform: Platform | None = None,
) -> None:
    """Convert TOOL's MCP servers into a dynamic-mcp.json.

    Parameters
    ----------
    tool
        cursor, opencode, claude-desktop, claude (Claude Code), vscode, cline, kilocode,
        codex, gemini or antigravity; case and aliases like claude-code, vs-code work.
    global_
        Read the tool's user config instead of the current directory's project config.
    output
        Where to write the config (--config, as every command names it).
    force
        Replace an existing output without asking.
    merge
        Add the imported servers to an existing output, keeping its entries.
    yes
        Ask nothing, as without a terminal: placeholder descriptions to edit, every feature
        kept, and no overwriting without --force. Otherwise each server's command or URL is
        shown and a description (the model reads it to pick the group) is asked for.
    platform
        Whose OS's user-config paths to use with --global (default: this machine's).
    """
    request = Request(
        tool=tool,
        scope="global" if global_ else "project",
        output=output,
        force=force,
        merge=merge,
        dirs=UserDirs.of(platform or current_platform(), os.environ),
        cwd=Path.cwd(),
    )
    console = Console.for_terminal(yes=yes)
    try:
        run(request, console)
    except KeyboardInterrupt:
        console.say()
        raise ImportCancelledError("interrupted") from None


@dataclass(frozen=True)
class Request:
    """What the user asked for, with the machine facts the paths depend on."""

    tool: str
    scope: Scope
    output: Path
    force: bool
    merge: bool
    dirs: UserDirs
    cwd: Path


def run(request: Request, console: Console) -> Outcome:
    """The whole import: locate, parse, decide about the output, ask, write, summarize.

    Raises:
        ImportFailedError: one of its subclasses, for each way the import can stop.
        ConfigError: --merge (or the merge answer) met an output that is not a valid config.
    """
    importer = find(request.tool)
    if importer is None:
        raise UnknownImporterError(request.tool, [known.name for known in IMPORTERS])
    source = locate(importer, request)
    text = read_source(source)
    servers = parse_source(source, lambda: importer.parse(text))
    console.say(f"Importing from {importer.title}: {source}")
    for_directory = importer.for_directory
    if request.scope == "global" and for_directory is not None:
        local = parse_source(source, lambda: for_directory(text, request.cwd))
        servers = offer_directory(source, servers, local, request.cwd, console)
    servers = plain_names(servers)
    existing = plan_output(request, console)
    if not console.interactive:
        console.say(
            "Not asking (no terminal on stdin, or --yes): descriptions are placeholders "
            "to edit, and every feature is kept."
        )
    outcome = Outcome()
    taken = set(existing["mcpServers"]) if existing else set()
    for number, (name, server) in enumerate(servers.items(), start=1):
        console.say()
        ask_about(name, server, f"[{number}/{len(servers)}]", importer, taken, outcome, console)
    if not outcome.entries:
        raise NothingToImportError(source, outcome.skipped)
    text_out = compose(existing, outcome.entries, request.output)
    mode = write_output(request.output, text_out)
    summarize(request.output, mode, outcome, console)
    return outcome


def plain_names(servers: Parsed) -> Parsed:
    """The servers under names a group may have; a renamed one says so in a note."""
    renamed: Parsed = {}
    for name, server in servers.items():
        plain = plain_group_name(name, taken=renamed)
        if plain != name and isinstance(server, Found):
            note = f"renamed from {name!r}: group names use only {GROUP_NAME_RULE}"
            server = Found(server.entry, (*server.notes, note), server.description)
        renamed[plain] = server
    return renamed


def locate(importer: Importer, request: Request) -> Path:
    """The source file: the first candidate of the scope that exists."""
    if request.scope == "project":
        if not importer.project:
            raise NoProjectScopeError(importer.name, importer.title)
        candidates = [request.cwd / relative for relative in importer.project]
    else:
        candidates = importer.global_paths(request.dirs)
    for path in candidates:
        if path.is_file():
            return path
    raise ImportSourceMissingError(importer.title, request.scope, candidates)


def read_source(path: Path) -> str:
    """The source's text; a UTF-8 byte-order mark (common on Windows) is dropped."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportSourceInvalidError(path, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ImportSourceInvalidError(path, f"cannot read it: {exc.strerror}") from None


def parse_source(path: Path, parse: Callable[[], Parsed]) -> Parsed:
    """Run a parser, turning its syntax error into one that names the file."""
    try:
        return parse()
    except SourceSyntaxError as exc:
        raise ImportSourceInvalidError(
            path, exc.problem, line=exc.line, column=exc.column
        ) from None


def offer_directory(
    source: Path, servers: Parsed, local: Parsed, cwd: Path, console: Console
) -> Parsed:
    """Claude Code keeps local-scope servers per directory in the user config: offer them."""
    if not local:
        return servers
    names = ", ".join(local)
    question = f"{source.name} also keeps {len(local)} server(s) for {cwd}: {names}. Import them"
    if console.interactive and not console.confirm(question + "?", default=True):
        return servers
    if not console.interactive:
        console.say(f"Also importing the servers {source.name} keeps for {cwd}: {names}")
    merged = dict(servers)
    for name, server in local.items():
        if name in merged and isinstance(server, Found):
            note = f"the entry kept for {cwd} replaced the user-wide one, as in Claude Code"
            server = Found(server.entry, (*server.notes, note), server.description)
        merged[name] = server
    return merged


def plan_output(request: Request, console: Console) -> dict[str, Any] | None:
    """Decide, before any question about servers, what happens to an existing output.

    Returns the existing config to merge into, or None to write a fresh file.
    """
    output = request.output
    if not output.exists():
        return None
    if request.merge:
        return load_existing(output)
    if request.force:
        return None
    if not console.interactive:
        raise OutputExistsError(output)
    choice = console.choose(
        f"{output} already exists. Replace it, merge the imported servers into it, or cancel?",
        {"r": "replace", "m": "merge", "c": "cancel"},
        default="c",
    )
    if choice == "c":
        raise ImportCancelledError(f"kept {output} as it was")
    return load_existing(output) if choice == "m" else None


def ask_about(
    name: str,
    server: Found | Unusable,
    counter: str,
    importer: Importer,
    taken: set[str],
    outcome: Outcome,
    console: Console,
) -> None:
    """Show one server, then ask for its description and features (or use defaults)."""
    if isinstance(server, Unusable):
        console.say(f"{counter} {name}: skipped, {server.reason}")
        outcome.skipped[name] = server.reason
        return
    if name in taken:
        reason = "already in the output (kept the entry there)"
        console.say(f"{counter} {name}: skipped, {reason}")
        outcome.skipped[name] = reason
        return
    if problem := check_entry(name, server.entry):
        console.say(f"{counter} {name}: skipped, {problem}")
        outcome.skipped[name] = problem
        return
    show(name, server, counter, console)
    if console.interactive:
        description = console.ask_text(
            f"  What is {name} for? (the model reads this)",
            default=server.description,
            why_needed="A description is required: it is how the model picks this server.",
        )
        features = ask_features(console)
    else:
        description = server.description or placeholder(name, importer)
        features = {}
        if not server.description:
            outcome.placeholders.append(name)
    entry: dict[str, Any] = {"description": description, **server.entry}
    if features:
        entry["features"] = features
    outcome.entries[name] = entry
    disabled = " (disabled)" if entry.get("enabled") is False else ""
    outcome.imported.append(name + disabled)
    outcome.attention.extend((name, note) for note in server.notes)


def placeholder(name: str, importer: Importer) -> str:
    """A description that works, and says plainly that it is waiting to be written."""
    return f"Imported from {importer.title}: edit this to say what {name} is for"


def ask_features(console: Console) -> dict[str, bool]:
    """The features to switch off; empty when all are kept."""
    if console.confirm("  Keep all features (tools, resources, prompts)?", default=True):
        return {}
    answers = {
        feature: console.confirm(f"    Offer {feature}?", default=True) for feature in FEATURES
    }
    return {feature: False for feature, keep in answers.items() if not keep}
