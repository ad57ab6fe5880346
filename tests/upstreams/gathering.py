"""The echo upstream, plus `gather`: calls that meet while in flight, then ask their client.

python gathering.py

`gather(count, question, meeting)` waits until `count` calls of the same `meeting` are in
flight at once, sends a log line and asks its client `question` (elicitation), waits
until all of them have had their answer, and returns `<question> -> <answer>`, or
`-> refused (<the error>)` when the question was answered with an error. One process serves every
caller, so a test can put several users' calls in flight on one upstream session.
`keep_logging(text, times, every)` logs `text #n` for a while: past a caller's time limit.
"""

from __future__ import annotations

from collections import defaultdict

import anyio
from echo_server import mcp
from fastmcp import Context

MEET_WAIT = 20.0  # seconds a call waits for the others of its meeting
_arrived: dict[str, int] = defaultdict(int)
_everyone: dict[str, anyio.Event] = defaultdict(anyio.Event)


async def _meet(name: str, count: int) -> None:
    _arrived[name] += 1
    if _arrived[name] >= count:
        _everyone[name].set()
    with anyio.fail_after(MEET_WAIT):
        await _everyone[name].wait()


@mcp.tool
async def gather(count: int, question: str, meeting: str, ctx: Context) -> str:
    """Meet `count` calls of `meeting` in flight, log, ask `question`, return the answer."""
    await _meet(f"{meeting}/in flight", count)
    await ctx.info(f"{question}: asking")
    try:
        answer = await ctx.elicit(question, response_type=str)
        said = answer.data if answer.action == "accept" else answer.action
    except Exception as exc:
        said = f"refused ({exc})"
    await _meet(f"{meeting}/answered", count)
    return f"{question} -> {said}"


@mcp.tool
async def keep_logging(text: str, times: int, every: float, ctx: Context) -> str:
    """Log `text #n` `times` times, `every` seconds apart, deaf to cancellation (as work
    in a thread is): a call that outlives its caller's time limit goes on logging what
    was its caller's."""
    with anyio.CancelScope(shield=True):
        for n in range(1, times + 1):
            await ctx.info(f"{text} #{n}")
            await anyio.sleep(every)
    return f"logged {text} {times} times"


if __name__ == "__main__":
    mcp.run(show_banner=False, log_level="ERROR")
