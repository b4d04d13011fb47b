"""An objective driven end to end through the official SDK (cadenya 0.2.0), against the runtime
and the fake model server (tests/conftest.py): an agent whose variation uses the fake's model
and an HTTP tool set pointing at a local endpoint; the objective's first turn calls the tool
once and answers "done", a continued turn answers again, then feedback, cancel, and the event
stream replays the whole log and ends."""

import json
import time

import cadenya
import pytest
from cadenya.types import (
    ObjectiveEventDataAssistantMessage,
    ObjectiveEventDataCancelled,
    ObjectiveEventDataToolCalled,
    ObjectiveEventDataToolResult,
    ObjectiveEventDataUserMessage,
)

from conftest import ADMIN_TOKEN, FAKE_MODEL, FAKE_TOOL

BUSY = ("STATE_PENDING", "STATE_RUNNING")


def _settle(client, objective_id, since=None, timeout=30.0):
    """Polls until the objective is out of PENDING/RUNNING and (with `since`, an event id) the
    run has answered after that event; returns the objective."""
    deadline = time.monotonic() + timeout
    while True:
        o = client.objectives.retrieve(objective_id)
        if o.state not in BUSY:
            if since is None:
                return o
            later = list(client.objectives.list_events(objective_id, since_event_id=since))
            if any(isinstance(e.data, ObjectiveEventDataAssistantMessage) for e in later):
                return o
        assert time.monotonic() < deadline, f"objective still {o.state} after {timeout}s"
        time.sleep(0.1)


def _types(events):
    return [e.data.type for e in events]


def test_objective_runs_continues_and_cancels(server, admin, tool_endpoint):
    base, hits = tool_endpoint
    ws = admin.workspace_admin.create(metadata={"name": "Objectives"}, spec={})
    client = cadenya.Cadenya(api_key=ADMIN_TOKEN, base_url=server["base"], workspace_id=ws.metadata.id)

    ts = client.tool_sets.create(
        metadata={"name": "Lookups"},
        spec={"description": "lookups", "adapter": {"type": "http", "http": {"base_url": base}}},
    )
    tool = client.tool_sets.tools.create(
        ts.metadata.id,
        metadata={"name": FAKE_TOOL},
        spec={
            "description": "Look a round up",
            "parameters": {"type": "object", "properties": {"round": {"type": "integer"}}},
            "requires_approval": False,
            "config": {"type": "http", "http": {"request_method": "GET", "path": "/lookup/{{ round }}"}},
        },
    )
    assert tool.spec.llm_tool_name == FAKE_TOOL
    agent = client.agents.create(metadata={"name": "Runner"}, spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_RANDOM"})
    aid = agent.metadata.id
    v = client.agents.variations.create(
        aid,
        metadata={"name": "Fake"},
        spec={"system_prompt_template": "You help {{ customer }}.", "model_config": {"model_id": FAKE_MODEL}},
    )
    assert v.spec.api_model_config.api_model_id == FAKE_MODEL
    client.agents.variations.add_assignment(aid, v.metadata.id, type="toolSetId", tool_set_id=ts.metadata.id)

    created = client.objectives.create(
        agent_id=aid,
        system_prompt_data={"customer": "Ada"},
        first_user_message="Where is round one?",
        metadata={"labels": {"suite": "conformance"}},
    )
    oid = created.metadata.id
    assert oid.startswith("obj_")
    assert created.system_prompt == "You help Ada."
    assert created.first_user_message == "Where is round one?"
    assert created.info.agent_variation.id == v.metadata.id

    # First turn: user message, a call to the tool, its result, the answer.
    o = _settle(client, oid)
    assert o.state == "STATE_WAITING", o.state_message
    events = list(client.objectives.list_events(oid))
    assert _types(events) == ["userMessage", "assistantMessage", "toolCalled", "toolResult", "assistantMessage"]
    first, call, called, result, answer = events
    assert isinstance(first.data, ObjectiveEventDataUserMessage)
    assert first.data.user_message.content == "Where is round one?"
    assert isinstance(call.data, ObjectiveEventDataAssistantMessage)
    [tc] = call.data.assistant_message.tool_calls
    assert tc.function_name == FAKE_TOOL and json.loads(tc.arguments) == {"round": 1}
    assert isinstance(called.data, ObjectiveEventDataToolCalled)
    assert called.data.tool_called.arguments == {"round": 1}
    assert called.data.tool_called.tool.type == "tool"
    assert isinstance(result.data, ObjectiveEventDataToolResult)
    [block] = result.data.tool_result.result.content
    assert json.loads(block.text.text) == {"path": "/lookup/1", "answer": 42}
    assert isinstance(answer.data, ObjectiveEventDataAssistantMessage)
    assert answer.data.assistant_message.content == "done"
    assert hits == ["/lookup/1"]
    window = o.info.current_context_window_id
    assert window and {e.context_window_id for e in events} == {window}
    assert o.info.total_events == 5 and o.info.total_tool_calls == 1

    # The tool call record, listed and fetched with its result.
    [record] = list(client.objectives.tool_calls.list(oid))
    assert record.metadata.id == called.data.tool_called.tool_call_id == result.data.tool_result.tool_call_id
    assert record.status == "TOOL_CALL_STATUS_AUTO_APPROVED"
    assert record.execution_status == "TOOL_CALL_EXECUTION_STATUS_COMPLETED"
    assert record.data.callable.type == "tool" and record.data.callable.tool.id == tool.metadata.id
    assert record.data.arguments == {"round": 1}
    got = client.objectives.tool_calls.retrieve(oid, record.metadata.id)
    assert json.loads(got.result.content[0].text.text)["answer"] == 42
    assert [t.snapshot.metadata.id for t in client.objectives.tools.list(oid)] == [tool.metadata.id]

    # Second turn: continue, and the run answers again (the fake has its one tool result).
    cont = client.objectives.continue_(oid, message="And round two?")
    assert isinstance(cont.data, ObjectiveEventDataUserMessage)
    assert cont.data.user_message.content == "And round two?"
    o = _settle(client, oid, since=cont.metadata.id)
    assert o.state == "STATE_WAITING", o.state_message
    later = list(client.objectives.list_events(oid, since_event_id=cont.metadata.id))
    assert _types(later) == ["assistantMessage"]
    assert later[0].data.assistant_message.content == "done"
    assert hits == ["/lookup/1"]
    assert o.info.total_events == 7

    # Diagnostics: the latest model call's context, part by part.
    d = client.objectives.retrieve_diagnostics(oid).diagnostics
    assert d.context_lengths.system_prompt == len("You help Ada.")
    assert d.context_lengths.user_messages == len("Where is round one?") + len("And round two?")
    assert d.context_lengths.tool_definitions > 0 and d.context_lengths.tool_results > 0
    assert d.context_lengths.skills_memory == 0 and d.input_tokens >= 0

    # Feedback on the objective.
    fb = client.objectives.feedback.create(oid, metadata={}, data={"score": 1, "comment": "spot on"})
    assert fb.data.score == 1 and fb.data.comment == "spot on"
    assert fb.info.submitted_by.metadata.id == o.info.created_by.metadata.id
    assert [f.metadata.id for f in client.objectives.feedback.list(oid)] == [fb.metadata.id]

    assert [x.metadata.id for x in client.objectives.list(agent_id=aid)] == [oid]
    assert [x.metadata.id for x in client.objectives.list(agent_id=aid, state="STATE_WAITING")] == [oid]

    # Cancel: terminal, written as the last event; continuing is refused.
    cancelled = client.objectives.cancel(oid, reason="enough")
    assert cancelled.state == "STATE_CANCELLED"
    events = list(client.objectives.list_events(oid))
    assert isinstance(events[-1].data, ObjectiveEventDataCancelled)
    assert events[-1].data.cancelled.message == "enough"
    with pytest.raises(cadenya.BadRequestError):
        client.objectives.continue_(oid, message="more?")

    # The stream replays the whole log and, the objective being over, ends.
    streamed = list(client.objectives.stream_events(oid, timeout=10))
    assert [e.metadata.id for e in streamed] == [e.metadata.id for e in events]
    assert isinstance(streamed[-1].data, ObjectiveEventDataCancelled)
