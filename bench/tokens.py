"""Context tokens, counted with an o200k tokenizer that works offline (`bpe-openai`).

count(text) -> int
minimal_form(tools) -> str     # name + description + inputSchema per tool, compact
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import mcp_types

__all__ = ["count", "listing", "minimal_form", "reminimized"]


@cache
def _encoding() -> Any:
    import bpe_openai  # ships its tables; tiktoken would download them

    return bpe_openai.get_encoding("o200k_base")


def count(text: str) -> int:
    return len(_encoding().encode(text))


def listing(tools: list[mcp_types.Tool]) -> str:
    """A tools/list as a client receives it (every field the server sent)."""
    return json.dumps([t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools])


def minimal_form(tools: list[mcp_types.Tool]) -> str:
    """What a model needs to call each tool, and nothing else."""
    entries = []
    for tool in tools:
        schema = {k: v for k, v in tool.input_schema.items() if k != "$schema"}
        entries.append({"name": tool.name, "description": tool.description, "inputSchema": schema})
    return json.dumps(entries, separators=(",", ":"))


def reminimized(expansion: str) -> str:
    """An expansion's tools re-serialized in minimal form (the text itself if not JSON tools)."""
    try:
        listed = json.loads(expansion)
    except json.JSONDecodeError:
        return expansion
    if not isinstance(listed, list) or not all(isinstance(t, dict) for t in listed):
        return expansion
    entries = [
        {
            "name": t.get("name"),
            "description": t.get("description"),
            "inputSchema": {k: v for k, v in t.get("inputSchema", {}).items() if k != "$schema"},
        }
        for t in listed
    ]
    return json.dumps(entries, separators=(",", ":"))
