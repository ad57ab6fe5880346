"""What a program's tool calls give it, and what the program gives back to the model.

    kept = Kept()
    value = sandbox_value(result, kept)        # structured content, else the text
    # an image in a result reads "[image #1 image/png]" in that text; the image stays here
    result = value_result(value, printed, kept, max_result=65536, redactor=redactor)

Guarantees:
- a tool's result reaches the program as its structured content where it has some, else
  its text blocks joined by newlines, each block of another kind (image, audio, resource,
  resource link) standing as a handle, `[image #1 image/png]`, its data kept on the host;
- what comes back is the value as compact JSON text (and as structured content when it
  is an object, the same JSON), then what the program printed (`Printed:` and the text),
  then each kept block whose handle the value holds somewhere in its strings, in the
  order they were kept; no other block is sent;
- every text the model reads went through the redactor; the structured content is the
  redacted JSON read back, so both always say the same;
- a value past `max_result` bytes of JSON is not sent: the error says its size and the
  setting.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import mcp_types

from groups.errors import CodeRunError

if TYPE_CHECKING:
    from groups.secrets import Redactor

__all__ = ["Kept", "as_json", "error_text", "sandbox_value", "value_result"]

NESTING_LIMIT = 100  # levels of a value searched for handles: monty's values are finite


class Kept:
    """The non-text blocks of one run's tool results, each by its handle."""

    def __init__(self) -> None:
        self._blocks: dict[str, mcp_types.ContentBlock] = {}

    def __len__(self) -> int:
        return len(self._blocks)

    def keep(self, block: mcp_types.ContentBlock) -> str:
        """Keep `block` for the run's result; its handle, the text the program sees."""
        detail = getattr(block, "mime_type", None)
        if isinstance(block, mcp_types.EmbeddedResource):
            detail = str(block.resource.uri)
        elif isinstance(block, mcp_types.ResourceLink):
            detail = str(block.uri)
        handle = f"[{block.type} #{len(self._blocks) + 1}" + (f" {detail}]" if detail else "]")
        self._blocks[handle] = block
        return handle

    def returned(self, value: Any) -> list[mcp_types.ContentBlock]:
        """The blocks whose handles `value` holds in any of its strings."""
        if not self._blocks:
            return []
        texts = list(_strings(value, NESTING_LIMIT))
        return [
            block for handle, block in self._blocks.items() if any(handle in text for text in texts)
        ]


def sandbox_value(result: mcp_types.CallToolResult, kept: Kept) -> Any:
    """What `await call_tool(...)` evaluates to in the program, for a result that is no
    error: its structured content, else its text, other blocks kept and named by handle."""
    if result.structured_content is not None:
        return result.structured_content
    parts = [
        block.text if isinstance(block, mcp_types.TextContent) else kept.keep(block)
        for block in result.content
    ]
    return "\n".join(parts)


def error_text(result: mcp_types.CallToolResult) -> str:
    """What an isError result says: its text, else its structured content, as FastMCP's
    CodeMode tells it (never an image's data)."""
    text = "\n".join(
        block.text for block in result.content if isinstance(block, mcp_types.TextContent)
    )
    if text:
        return text
    if result.structured_content is not None:
        return as_json(result.structured_content)
    return "the tool returned an error"


def value_result(
    value: Any, printed: str, kept: Kept, *, max_result: int, redactor: Redactor
) -> mcp_types.CallToolResult:
    """The result of a run that gave `value` and printed `printed`.

    Raises:
        CodeRunError: the value's JSON is more than `max_result` bytes.
    """
    text = as_json(value)
    size = len(text.encode())
    if size > max_result:
        raise CodeRunError(
            f"the program's value is {size} bytes of JSON, more than settings.code.max_result "
            f"({max_result}): return less (a summary, the fields needed, a slice)",
            setting="settings.code.max_result",
            printed=printed,
        )
    text = redactor.scrub(text)
    content: list[mcp_types.ContentBlock] = [mcp_types.TextContent(type="text", text=text)]
    if printed:
        content.append(
            mcp_types.TextContent(type="text", text=f"Printed:\n{redactor.scrub(printed)}")
        )
    content += kept.returned(value)
    return mcp_types.CallToolResult(content=content, structured_content=_object(value, text))


def _object(value: Any, text: str) -> dict[str, Any] | None:
    """The structured content of a value that is an object: its redacted JSON, read back
    (a value the redactor changed past reading is sent as text alone)."""
    if not isinstance(value, dict):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def as_json(value: Any) -> str:
    """`value` as compact JSON; what JSON has no form for (a set, bytes, a dataclass the
    program made) in the nearest form it has."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    attributes = getattr(value, "attributes", None)  # monty's proxy of a sandbox instance
    if isinstance(attributes, dict):
        return attributes
    if hasattr(value, "isoformat"):  # date, time, datetime
        return value.isoformat()
    return str(value)


def _strings(value: Any, depth: int) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif depth <= 0:
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, depth - 1)
            yield from _strings(item, depth - 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item, depth - 1)
