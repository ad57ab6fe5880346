"""Find tools across every group by what their names and descriptions say.

    hits = rank("create an issue", [("github", tool), ("linear", tool2)], limit=10)
    hits[0]          # Hit(group="github", tool=Tool(name="create_issue", ...), score=7.0)
    text = search_text("create an issue", {"github": tools, "linear": None}, limit=10)

Words are compared lowercased, names split at `_`, `-`, `.` and case changes
(`createIssue` is `create issue`). A query word counts most in a tool's name, less as part
of a name word, least in its description; a word's plural or other ending still matches
(`issues` finds `issue`). Only tools that match some word are returned, best first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import mcp_types

__all__ = ["Hit", "rank", "search_text", "words"]

NAME_WORD = 3.0  # a query word that is a word of the tool's name
NAME_PART = 2.0  # …that begins a word of the name, or a name word that begins it
DESCRIPTION_WORD = 1.0  # …that is a word of the description (or begins one)
# Words that say nothing about what a tool does.
_STOP = frozenset(
    {"a", "an", "the", "of", "to", "for", "in", "on", "and", "or", "with", "by", "from"}
    | {"my", "me", "i", "is", "are", "be", "it"}
)


@dataclass(frozen=True)
class Hit:
    group: str
    tool: mcp_types.Tool
    score: float


def words(text: str) -> list[str]:
    """`text` as lowercase words: split at punctuation, `_`, `-` and case changes."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def rank(query: str, tools: Iterable[tuple[str, mcp_types.Tool]], *, limit: int = 10) -> list[Hit]:
    """The tools that match `query`, best first, `limit` at most."""
    asked = [w for w in words(query) if w not in _STOP] or words(query)
    hits = []
    for order, (group, tool) in enumerate(tools):
        score = _score(asked, words(tool.name), set(words(tool.description or "")))
        if score > 0:
            hits.append((-score, order, Hit(group, tool, score)))
    return [hit for *_, hit in sorted(hits, key=lambda entry: entry[:2])[:limit]]


def _score(asked: list[str], name: list[str], description: set[str]) -> float:
    score = 0.0
    for word in asked:
        if word in name:
            score += NAME_WORD
        elif any(_related(word, part) for part in name):
            score += NAME_PART
        elif word in description or any(_related(word, other) for other in description):
            score += DESCRIPTION_WORD
    return score


def _related(a: str, b: str) -> bool:
    """Whether one word begins the other, both long enough to mean it (issue, issues)."""
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= 3 and longer.startswith(shorter)


def search_text(query: str, known: Mapping[str, list[mcp_types.Tool] | None], *, limit: int) -> str:
    """What `search_dynamic_tools` answers: the best `limit` matches as compact JSON, and
    the groups whose tools are not known yet (None in `known`), which were not searched."""
    candidates = [(group, tool) for group, tools in known.items() for tool in tools or ()]
    hits = [
        {"group": hit.group, "name": hit.tool.name, "description": hit.tool.description or ""}
        for hit in rank(query, candidates, limit=limit)
    ]
    text = json.dumps(hits, separators=(",", ":"), ensure_ascii=False)
    unknown = [group for group, tools in known.items() if tools is None]
    if unknown:
        text += (
            "\nNot searched, their tools are not known yet (expand them with "
            f"get_dynamic_tools): {', '.join(unknown)}"
        )
    return text
