"""A stdio group on a team gateway: one process per user, or `"sessions": "shared"`.

A real gateway on 127.0.0.1 with alice and bob in its users file, spoken to by the
official client as each of them; the upstreams are real processes (tests/upstreams/),
checked with psutil.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import psutil
import pytest
from conftest import UPSTREAMS, stdio_entry, wait_gone
from fastmcp import Client, FastMCP
from fastmcp.client.auth import BearerAuth
from fastmcp.client.elicitation import ElicitResult
from test_per_user import ALICE, BOB, gateway, text

from groups.config import Features, load_config
from groups.errors import ConfigError
from groups.mounting.proxy import GroupProxy

WAIT = 30.0  # seconds: a first call starts a Python upstream
GATHERING = UPSTREAMS / "gathering.py"


def write(tmp_path: Path, **groups: dict[str, Any]) -> Path:
    path = tmp_path / "dynamic-mcp.json"
    path.write_text(json.dumps({"mcpServers": groups}))
    return path


class Person:
    """One user's client, and what its upstreams asked it and told it."""

    def __init__(self, url: str, name: str, token: str) -> None:
        self.name = name
        self.questions: list[str] = []
        self.logs: list[str] = []
        self.client = Client(
            url,
            auth=BearerAuth(token),
            init_timeout=WAIT,
            timeout=WAIT,
            elicitation_handler=self._answer,
            log_handler=self._log,
            mode="legacy",  # a client that takes requests from the server: a session id
        )

    async def _answer(self, message: str, response_type: Any, params: Any, context: Any) -> Any:
        self.questions.append(message)
        return ElicitResult(action="accept", content={"value": f"answer from {self.name}"})

    async def _log(self, message: mcp_types.LoggingMessageNotificationParams) -> None:
        self.logs.append(str(message.data))

    async def call(self, group: str, name: str, **args: Any) -> str:
        result = await self.client.call_tool_mcp(
            "call_dynamic_tool", {"group": group, "name": name, "args": args}
        )
        assert not result.is_error, text(result)
        return text(result)

    async def pid(self, group: str) -> int:
        return int(await self.call(group, "pid"))


async def test_a_stdio_group_is_a_process_per_user_by_default_and_one_for_all_when_shared(
    tmp_path,
):
    config = write(tmp_path, own=stdio_entry(), shared=stdio_entry(sessions="shared"))
    with gateway(config, tmp_path) as (url, _):
        alice, bob = Person(url, "alice", ALICE), Person(url, "bob", BOB)
        async with alice.client, bob.client:
            own = [await alice.pid("own"), await bob.pid("own")]
            shared = [await alice.pid("shared"), await bob.pid("shared")]

    assert own[0] != own[1]
    assert shared[0] == shared[1]


async def test_per_user_sessions_give_each_user_a_process_their_clients_share(tmp_path):
    config = write(tmp_path, memo=stdio_entry(sessions="per-user"))
    with gateway(config, tmp_path) as (url, _):
        alice, bob = Person(url, "alice", ALICE), Person(url, "bob", BOB)
        again = Person(url, "alice", ALICE)  # alice's second client (another editor)
        async with alice.client, bob.client, again.client:
            alices, bobs = await alice.pid("memo"), await bob.pid("memo")
            alices_again = await again.pid("memo")

    assert alices != bobs
    assert alices_again == alices


async def test_a_users_own_process_stops_after_their_idle_time_and_others_keep_theirs(tmp_path):
    config = write(tmp_path, memo=stdio_entry(sessions="per-user", idle_timeout="1s"))
    with gateway(config, tmp_path) as (url, _):
        alice, bob = Person(url, "alice", ALICE), Person(url, "bob", BOB)
        async with alice.client, bob.client:
            alices = psutil.Process(await alice.pid("memo"))
            bobs = await bob.pid("memo")
            bob_meanwhile = set()
            with anyio.fail_after(WAIT):  # bob keeps using his; alice leaves hers alone
                while True:  # bob calls at least once, however soon hers stops
                    bob_meanwhile.add(await bob.pid("memo"))
                    if not alices.is_running() or alices.status() == psutil.STATUS_ZOMBIE:
                        break
                    await anyio.sleep(0.2)
            bob_after = await bob.pid("memo")
            alice_after = await alice.pid("memo")  # her next call starts hers again

    assert wait_gone([alices]) == []
    assert bob_meanwhile == {bobs} and bob_after == bobs
    assert alice_after not in (alices.pid, bobs)


async def test_on_a_shared_process_callbacks_reach_a_user_only_while_it_served_only_them(
    tmp_path,
):
    config = write(tmp_path, shared=stdio_entry(GATHERING, sessions="shared"))
    with gateway(config, tmp_path) as (url, _):
        alice, bob = Person(url, "alice", ALICE), Person(url, "bob", BOB)
        async with alice.client, bob.client:
            alone = await alice.call("shared", "gather", count=1, question="q1", meeting="one")
            answers: dict[str, str] = {}

            async def gather(person: Person) -> None:
                question = f"asked by {person.name}'s call"
                answers[person.name] = await person.call(
                    "shared", "gather", count=2, question=question, meeting="two"
                )

            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as both:
                    both.start_soon(gather, alice)
                    both.start_soon(gather, bob)

    # One user's call in flight: the question and the log line are hers.
    assert alone == "q1 -> answer from alice"
    assert alice.questions == ["q1"] and any("q1: asking" in line for line in alice.logs)
    # Two users' calls in flight on one session: no one is asked, nothing is heard.
    refused = " -> refused (elicitation/create cannot be answered: this upstream's one process"
    assert answers["alice"].startswith("asked by alice's call" + refused), answers
    assert answers["bob"].startswith("asked by bob's call" + refused), answers
    assert bob.questions == [] and bob.logs == []
    assert alice.questions == ["q1"] and not any("asked by" in line for line in alice.logs)


async def test_a_call_past_its_time_limit_never_logs_to_the_next_users_call(tmp_path):
    entry = stdio_entry(GATHERING, sessions="shared", timeout={"tools": "1s"})
    config = write(tmp_path, shared=entry)
    with gateway(config, tmp_path) as (url, log):
        alice, bob = Person(url, "alice", ALICE), Person(url, "bob", BOB)
        async with alice.client, bob.client:
            arguments = {"text": "ALICE-PAYROLL-42", "times": 12, "every": 0.2}
            late = await alice.client.call_tool_mcp(
                "call_dynamic_tool", {"group": "shared", "name": "keep_logging", "args": arguments}
            )
            # Hers logs on for a second and more, while bob's call is in flight.
            bobs = await bob.call("shared", "keep_logging", text="BOB", times=4, every=0.2)

    assert late.is_error and "timed out" in text(late)
    assert bobs == "logged BOB 4 times"
    assert not any("ALICE" in line for line in bob.logs), bob.logs
    assert "upstream log messages are dropped from now on" in log.read_text()


async def test_a_groups_proxy_answers_a_lookup_from_the_callers_own_listing_alone():
    """In process: the proxy of a per-user group, its factory giving each caller their own
    upstream (two real FastMCP servers, in memory), as a gateway's sessions do."""
    alices_upstream, bobs_upstream = FastMCP("alice's"), FastMCP("bob's")

    @alices_upstream.resource("note://salary")
    def salary() -> str:
        return "ALICE-PAYROLL-42"

    @alices_upstream.prompt
    def raise_for(amount: str) -> str:
        return f"ask for {amount}"

    callers = {"alice": Client(alices_upstream), "bob": Client(bobs_upstream)}
    calling = ["alice"]
    provider = GroupProxy("notes", lambda: callers[calling[0]], Features).providers[-1]

    listed = await provider.list_resources(), await provider.list_prompts()  # as alice
    calling[0] = "bob"
    looked_up = await provider.get_resource("note://salary"), await provider.get_prompt("raise_for")

    assert [str(r.uri) for r in listed[0]] == ["note://salary"] and listed[1]
    assert looked_up == (None, None)  # bob's upstream has neither


@pytest.mark.parametrize("value", ["per-person", "PER-USER", True])
def test_a_bad_sessions_value_is_a_config_error_naming_the_field(tmp_path, value):
    config = write(tmp_path, memo=stdio_entry(sessions=value))

    with pytest.raises(ConfigError) as refused:
        load_config(config)

    assert refused.value.field == "mcpServers.memo.sessions"
    assert refused.value.file == config


async def test_a_reload_to_per_user_sessions_gives_each_user_a_process_of_their_own(tmp_path):
    config = write(tmp_path, memo=stdio_entry(sessions="shared"))
    with gateway(config, tmp_path) as (url, _):
        alice, bob = Person(url, "alice", ALICE), Person(url, "bob", BOB)
        async with alice.client, bob.client:
            before = {await alice.pid("memo"), await bob.pid("memo")}
            shared_one = psutil.Process(next(iter(before)))
            write(tmp_path, memo=stdio_entry(sessions="per-user"))
            with anyio.fail_after(WAIT):  # the reload is applied within moments of the save
                while True:
                    after = {await alice.pid("memo"), await bob.pid("memo")}
                    if len(after) == 2 and not after & before:  # both calls after the reload
                        break
                    await anyio.sleep(0.2)

    assert len(before) == 1 and len(after) == 2 and not after & before
    assert wait_gone([shared_one]) == []
