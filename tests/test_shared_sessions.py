"""What the shared-sessions layer reads from a request, in process: which bodies hold a
client's answers, an `initialize`'s params, and the body given again to what serves it.

The replicas themselves, behind a real load balancer, are in tests/test_replicas.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from groups.serving.replica_messages import (
    answers_in,
    buffered,
    initialize_params,
    negotiated,
)

ANSWER = {"jsonrpc": "2.0", "id": "dmcp-0123456789ab-1", "result": {"action": "accept"}}
REFUSAL = {"jsonrpc": "2.0", "id": 3, "error": {"code": -1, "message": "no"}}
# An answer whose content has a field named "method" (an elicitation form's) is an answer.
FORM = {**ANSWER, "result": {"action": "accept", "content": {"method": "card"}}}
CALL = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "x"}}


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("sent", "answers"),
    [
        (ANSWER, [ANSWER]),  # an elicitation's answer, to a replica's own id
        (REFUSAL, [REFUSAL]),  # an error answer, to the home replica's plain id
        ([ANSWER, REFUSAL], [ANSWER, REFUSAL]),  # a batch of answers
        (FORM, [FORM]),
        (CALL, []),  # a request
        ([ANSWER, CALL], []),  # answers mixed with a request: served here, as sent
        ({"jsonrpc": "2.0", "method": "notifications/initialized"}, []),
    ],
)
def test_only_a_body_of_answers_is_taken_for_the_clients_answers(sent, answers):
    assert answers_in(body(sent)) == answers


@pytest.mark.parametrize("sent", [b"", b"not json", b'{"result": ', None])
def test_a_body_that_is_not_json_holds_no_answer(sent):
    assert answers_in(sent) == []


def test_an_initialize_s_params_are_read_and_its_version_negotiated_as_the_sdk_does():
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c"}}
    unknown = {**params, "protocolVersion": "1999-01-01"}

    assert (
        initialize_params(
            body({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
        )
        == params
    )
    assert initialize_params(body(CALL)) is None
    assert negotiated(params) == "2025-06-18"
    assert negotiated(unknown) == LATEST_HANDSHAKE_VERSION


async def test_a_buffered_body_is_given_again_whole_to_what_serves_the_request():
    parts = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b" 1}", "more_body": False},
        {"type": "http.disconnect"},
    ]
    sent = iter(parts)

    async def receive() -> dict[str, Any]:
        return next(sent)

    read, again = await buffered(receive)
    replayed = [await again() for _ in parts]

    assert read == b'{"a": 1}'
    assert replayed == parts
