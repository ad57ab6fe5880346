"""How search_dynamic_tools ranks tools: by name first, then description."""

from __future__ import annotations

import mcp_types
import pytest

from groups.search import rank, words

TOOLS = [
    (
        "github",
        mcp_types.Tool(
            name="list_issues", description="List issues of a repository.", input_schema={}
        ),
    ),
    (
        "github",
        mcp_types.Tool(name="create_issue", description="Open a new issue.", input_schema={}),
    ),
    (
        "linear",
        mcp_types.Tool(
            name="createTicket", description="File an issue in Linear.", input_schema={}
        ),
    ),
    (
        "time",
        mcp_types.Tool(
            name="get_current_time", description="Current time in a zone.", input_schema={}
        ),
    ),
]


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("create an issue", "create_issue"),  # both words in the name beat one
        ("issues", "list_issues"),  # a name word beats a description word
        ("ticket", "createTicket"),  # camelCase names split into words
        ("what time is it", "get_current_time"),
    ],
)
def test_the_best_match_comes_first(query, best):
    assert rank(query, TOOLS)[0].tool.name == best


def test_nothing_matches_nothing_and_the_limit_holds():
    assert rank("weather forecast", TOOLS) == []
    assert len(rank("issue", TOOLS, limit=2)) == 2


def test_words_split_names_as_people_read_them():
    assert words("getCurrentTime_v2-beta") == ["get", "current", "time", "v2", "beta"]
