"""The README, CONTRIBUTING.md and docs/*.md say only what is true of this checkout.

Every ```json snippet is read by the real config loader (`groups.config.parse_config`), as
the comment before its fence says it should be (CONTRIBUTING.md, "Docs", has the table);
every shell command shown is checked against what exists: `dynamic-mcp …` parses with the
real command line (`server.app`), `uv run`, `python3 scripts/…` and `npm --prefix` name
files of the checkout, and any other program is one this file knows of. Usage summaries
name only commands and options the real `--help` lists. Every relative link reaches a file
and heading that exist, and `.ci/run` runs the README's test command as written. All in
process, no network, well under a second.
"""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from cyclopts import CycloptsError
from rich.console import Console

from groups.config import parse_config
from groups.errors import ConfigError
from server import app

DOCS = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", *(REPO / "docs").glob("*.md")])
README_LIMIT = 12_000  # bytes: a first page, read in a few minutes (issue 29)
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
# Programs the docs may show that are not ours, so a typo in one of ours is caught.
OTHER_PROGRAMS = {
    "brew", "cat", "chmod", "claude", "cut", "echo", "export", "git", "install", "kill", "sudo",
    "npx", "openssl", "pipx", "printf", "sha256sum", "ssh", "which",
}  # fmt: skip
SEPARATORS = {"&&", "||", ";", "|", "&"}
REDIRECTIONS = {">", ">>", "<", "2>", "2>>"}
MARKER = re.compile(r"^\s*<!-- snippet: (?P<kind>[\w-]+)(?: (?P<argument>\S+))? -->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<language>[\w-]*)\s*$")


@dataclass(frozen=True)
class Snippet:
    """One fenced block of a docs file, and what the comment before its fence says it is."""

    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    kind: str | None
    argument: str | None
    text: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def snippets(path: Path) -> list[Snippet]:
    """Every fenced block of `path`, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        marker = MARKER.match(lines[index - 1]) if index else None
        end = next(
            i for i in range(index + 1, len(lines)) if lines[i].strip() == "```"
        )  # an unclosed fence is a broken page: StopIteration fails the test
        indent = len(opening["indent"])
        body = "\n".join(line[indent:] for line in lines[index + 1 : end])
        found.append(
            Snippet(
                path,
                index + 1,
                opening["language"],
                marker["kind"] if marker else None,
                marker["argument"] if marker else None,
                body,
            )
        )
        index = end + 1
    return found


ALL = [snippet for path in DOCS for snippet in snippets(path)]
JSON = [s for s in ALL if s.language == "json"]
SHELL = [s for s in ALL if s.language in SHELL_LANGUAGES]
SYNOPSES = [s for s in ALL if s.kind == "synopsis"]


def test_the_docs_hold_the_snippets_this_file_checks():
    # Guards the extraction itself: a fence regex that matched nothing would pass every test.
    assert len(JSON) >= 12
    assert len(SHELL) >= 10
    assert len(SYNOPSES) >= 2
    assert {s.kind for s in JSON} >= {None, "server", "client", "broken", "json", "settings"}


# ---- JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize("snippet", JSON, ids=str)
def test_each_json_snippet_is_what_its_comment_says(snippet: Snippet):
    text = snippet.text
    if snippet.kind is None:  # a whole dynamic-mcp.json
        parse_config(text, str(snippet))
    elif snippet.kind == "server":  # entries of mcpServers
        parse_config('{"mcpServers": {' + text + "}}", str(snippet))
    elif snippet.kind == "settings":
        data = json.loads(text)
        assert set(data) == {"settings"}, snippet
        parse_config(json.dumps({"mcpServers": {}, **data}), str(snippet))
    elif snippet.kind == "broken":
        with pytest.raises(ConfigError) as refused:
            parse_config(text, str(snippet))
        assert refused.value.field == snippet.argument, snippet
    elif snippet.kind == "client":
        check_client_config(json.loads(text), snippet)
    elif snippet.kind == "json":
        json.loads(text)
    else:
        pytest.fail(f"{snippet}: unknown snippet kind {snippet.kind!r}")


def check_client_config(data: dict[str, Any], snippet: Snippet) -> None:
    """An MCP client's entry starts dynamic-mcp from a checkout, with arguments it takes."""
    (key,) = set(data) & {"mcpServers", "servers"}  # VS Code names it `servers`
    entries = data[key]
    assert entries, snippet
    for entry in entries.values():
        assert Path(entry["command"]).name == "uvx", snippet
        check_uvx(entry["args"], snippet)


def check_uvx(args: list[str], snippet: Snippet) -> None:
    """`uvx --from SOURCE dynamic-mcp ARGS`: never a bare `uvx dynamic-mcp`, which would
    fetch the unrelated PyPI project of that name."""
    assert args[:1] == ["--from"] and len(args) >= 3, f"{snippet}: uvx without --from"
    assert args[2] == "dynamic-mcp", f"{snippet}: uvx --from … runs {args[2]!r}"
    check_dynamic_mcp(args[3:], snippet)


def check_dynamic_mcp(args: list[str], snippet: Snippet) -> None:
    """`args` parse with the real command line (nothing runs)."""
    if args and args[0] in ("--help", "-h", "--version"):
        return
    try:
        app.parse_args(args, exit_on_error=False, print_error=False)
    except CycloptsError as exc:
        raise AssertionError(f"{snippet}: dynamic-mcp {shlex.join(args)}: {exc}") from exc


# ---- shell commands ---------------------------------------------------------------------


def command_lines(snippet: Snippet) -> list[str]:
    """The commands of a shell snippet: `$ ` lines of a console, every line of a script,
    continuation lines joined."""
    if snippet.language == "console":
        return [line[2:] for line in snippet.text.splitlines() if line.startswith("$ ")]
    return [line for line in snippet.text.replace("\\\n", " ").splitlines() if line.strip()]


def simple_commands(line: str) -> list[list[str]]:
    """`line` split at `&&`, `|`, `;`, its comments and redirections dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    tokens = iter(lexer)
    for token in tokens:
        if token in SEPARATORS:
            commands.append([])
        elif token in REDIRECTIONS:
            next(tokens, None)  # the file redirected to
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def check_command(words: list[str], snippet: Snippet) -> None:
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        check_repo_path_if_relative(words[0].split("=", 1)[1], snippet)
        words = words[1:]
    if not words:  # only variables set, as in `token="$(openssl rand -hex 32)"`
        return
    program, *args = words
    if program == "sudo":  # `sudo -u USER COMMAND`: the command is checked
        check_command(args[2:] if args[:1] == ["-u"] else args, snippet)
    elif program == "dynamic-mcp":
        check_dynamic_mcp(args, snippet)
    elif program == "uvx":
        check_uvx(args, snippet)
    elif program == "uv":
        check_uv(args, snippet)
    elif program in ("python3", "python", "py"):
        check_python(args, snippet)
    elif program == "npm":
        assert args[0] == "ci" and "--prefix" in args, f"{snippet}: npm {shlex.join(args)}"
        assert (REPO / args[args.index("--prefix") + 1] / "package-lock.json").is_file()
    else:
        assert program in OTHER_PROGRAMS, f"{snippet}: unknown program {program!r}"


def check_uv(args: list[str], snippet: Snippet) -> None:
    if args[:2] == ["tool", "install"] or args[:1] == ["sync"]:
        return
    assert args[0] == "run", f"{snippet}: uv {shlex.join(args)}"
    target, *rest = args[1:]
    if target == "pytest":
        for arg in rest:
            check_repo_path_if_relative(arg.split("::")[0], snippet)
    elif target == "python":
        check_python(rest, snippet)
    elif target.endswith(".py"):
        assert (REPO / target).is_file(), f"{snippet}: uv run {target}: no such file"
    else:
        assert importlib.util.find_spec(target) is not None, f"{snippet}: uv run {target}"


def check_python(args: list[str], snippet: Snippet) -> None:
    if args[0] == "-m":
        module = args[1].split(".")[0]
        assert (REPO / module).is_dir() or (REPO / f"{module}.py").is_file(), snippet
        return
    script = REPO / args[0]
    assert script.is_file(), f"{snippet}: python {args[0]}: no such file"
    if script == REPO / "scripts" / "dev.py":
        assert args[1] in dev_script().COMMANDS, f"{snippet}: dev.py has no {args[1]!r}"


def check_repo_path_if_relative(value: str, snippet: Snippet) -> None:
    """A path into the checkout (relative, with a folder) must exist there."""
    if "/" in value and not value.startswith(("/", "~", "$", "-", "http")):
        assert (REPO / value).exists(), f"{snippet}: {value}: no such file in the checkout"


def dev_script() -> Any:
    spec = importlib.util.spec_from_file_location("dev_script", REPO / "scripts" / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("snippet", SHELL, ids=str)
def test_each_shell_command_shown_is_one_that_exists(snippet: Snippet):
    commands = [c for line in command_lines(snippet) for c in simple_commands(line)]

    assert commands, f"{snippet}: no command found"
    for words in commands:
        check_command(words, snippet)


@pytest.mark.parametrize(
    "mistake",
    [
        "dynamic-mcp dynamic-mcp.json --transprt http",  # an option that does not exist
        "dynamic-mcp admin revoke",  # a required argument left out
        "python3 scripts/dev.py tests",  # a command dev.py does not have
        "uv run exmaples/tour.py",  # a script that is not there
        "dynamic-mpc check",  # a program nobody knows
        "uvx dynamic-mcp check",  # would fetch the unrelated PyPI project
    ],
)
def test_a_command_that_does_not_exist_is_caught(mistake: str):
    # The checks above must be able to fail.
    snippet = Snippet(REPO / "README.md", 1, "bash", None, None, mistake)

    with pytest.raises(AssertionError):
        for words in simple_commands(mistake):
            check_command(words, snippet)


# ---- usage summaries --------------------------------------------------------------------


def help_text(command: list[str]) -> str:
    """What `dynamic-mcp [COMMAND [SUBCOMMAND]] --help` prints."""
    out = io.StringIO()
    app.help_print(command, console=Console(file=out, width=300))
    return out.getvalue()


def synopsis_entries(text: str) -> list[str]:
    """Each usage of a summary: a line starting `dynamic-mcp`, with the indented lines
    after it; the description after a run of two spaces left out."""
    entries: list[str] = []
    for line in text.splitlines():
        usage = re.split(r"\s{2,}", line.strip())[0]
        if line.startswith("dynamic-mcp"):
            entries.append(usage)
        elif line.startswith(" ") and entries:
            entries[-1] += " " + usage
    return entries


def check_synopsis(snippet: Snippet) -> None:
    commands = {name for name in app._commands if not name.startswith("-")}
    entries = synopsis_entries(snippet.text)
    assert entries, f"{snippet}: no usage found"
    for usage in entries:
        words = usage.split()
        command = words[1:2] if len(words) > 1 and words[1] in commands else []
        if command and len(words) > 2 and words[2] in app[command[0]]._commands:
            command.append(words[2])  # `admin users`, `gateway new-user`
        listed = help_text(command)
        for option in re.findall(r"(?<![\w-])--?[a-z][\w-]*", usage):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", listed), (
                f"{snippet}: {usage!r}: `dynamic-mcp {' '.join(command)} --help` has no {option}"
            )


@pytest.mark.parametrize("snippet", SYNOPSES, ids=str)
def test_each_usage_summary_names_real_commands_and_options(snippet: Snippet):
    check_synopsis(snippet)


def test_a_usage_summary_with_an_option_the_command_lacks_is_caught():
    # --json is an option of check and tools, not of call.
    mistake = "dynamic-mcp call GROUP TOOL [--json]   call one tool\n"
    snippet = Snippet(REPO / "docs" / "commands.md", 1, "text", "synopsis", None, mistake)

    with pytest.raises(AssertionError):
        check_synopsis(snippet)


# ---- links, the index, the README -------------------------------------------------------


def anchors(path: Path) -> set[str]:
    """The ids GitHub gives the headings of `path`."""
    seen: dict[str, int] = {}
    ids = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line) or line.strip() == "```":
            fenced = not fenced
        if fenced or not line.startswith("#"):
            continue
        slug = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_reaches_a_file_and_heading_that_exist(path: Path):
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        linked = (path.parent / file).resolve() if file else path
        assert linked.exists(), f"{path.name}: link to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{path.name}: link to {target}: no such heading"


def test_every_docs_page_is_in_the_index_and_the_readme():
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in (REPO / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"
            assert f"](docs/{page.name}" in readme, f"README.md does not link {page.name}"


def test_the_readme_stays_a_first_page():
    size = len((REPO / "README.md").read_bytes())

    assert size <= README_LIMIT, f"README.md is {size} bytes: move reference into docs/"


def test_ci_runs_the_readmes_test_command_as_written():
    first_block = next(s for s in snippets(REPO / "README.md") if s.language == "bash")
    lines = [line.split("#")[0].strip() for line in first_block.text.splitlines()]
    test_command = next(line for line in lines if line.endswith(" test"))
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()

    assert lines == ["python3 scripts/dev.py tour", test_command]  # still two commands
    assert test_command in ci
