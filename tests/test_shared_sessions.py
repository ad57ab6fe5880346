"""What the shared-sessions layer reads from a request's messages, in process: which hold a
client's answers, an `initialize`'s params, the version it negotiates.

The replicas themselves, behind a real load balancer, are in tests/test_replicas.py.
"""

from __future__ import annotations

import pytest
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from groups.serving.request_bodies import (
    answers_in,
    cancellations_in,
    initialize_params,
    negotiated,
)

ANSWER = {"jsonrpc": "2.0", "id": "dmcp-0123456789ab-1", "result": {"action": "accept"}}
REFUSAL = {"jsonrpc": "2.0", "id": 3, "error": {"code": -1, "message": "no"}}
# An answer whose content has a field named "method" (an elicitation form's) is an answer.
FORM = {**ANSWER, "result": {"action": "accept", "content": {"method": "card"}}}
CALL = {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "x"}}


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
    assert answers_in(sent if isinstance(sent, list) else [sent]) == answers


@pytest.mark.parametrize("sent", [[], [None], ["answer"], [{"result": 1}]])
def test_values_that_are_not_answers_hold_no_answer(sent):
    assert answers_in(sent) == []


def test_cancellations_are_found_among_the_other_messages():
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}}

    assert cancellations_in([CALL, cancel, ANSWER]) == [cancel]
    assert cancellations_in([CALL]) == []


def test_an_initialize_s_params_are_read_and_its_version_negotiated_as_the_sdk_does():
    params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "c"}}
    unknown = {**params, "protocolVersion": "1999-01-01"}

    assert (
        initialize_params([{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}])
        == params
    )
    assert initialize_params([CALL]) is None
    assert initialize_params([{"method": "initialize", "params": "not an object"}]) is None
    assert negotiated(params) == "2025-06-18"
    assert negotiated(unknown) == LATEST_HANDSHAKE_VERSION
