"""An objective driven end to end through the strict SDK (cadenya 1.0.0), against the runtime and
the fake model server (tests/conftest.py): every object the scenario meets (objective, events,
tool calls with their results, objective tools, context windows, feedback, the SSE stream) must
decode, and is read again at the end, once the objective is over."""

import json
import threading
import time

import cadenya
import pytest
from cadenya import types

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
            later = client.objectives.list_events(objective_id, since_event_id=since)
            if any(isinstance(e.data, types.ObjectiveEventData_AssistantMessage) for e in later):
                return o
        assert time.monotonic() < deadline, f"objective still {o.state} after {timeout}s"
        time.sleep(0.1)


def _read_stream(client, objective_id, timeout=15.0):
    """Every event of the SSE stream until the server ends it; fails if it does not end."""
    stream = client.objectives.stream_events(objective_id, request_options=cadenya.RequestOptions(reconnect=False))
    got, failure = [], []

    def read():
        try:
            got.extend(stream)
        except Exception as e:  # noqa: BLE001 - reported below
            failure.append(e)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    ended = not reader.is_alive()
    stream.close()
    assert ended, f"the stream did not end within {timeout}s ({len(got)} events read)"
    assert not failure, failure
    return got


def test_strict_objective_end_to_end(server, admin, tool_endpoint):
    base, hits = tool_endpoint
    ws = admin.workspace_admin.create(metadata={"name": "Strict objectives"}, spec={})
    client = cadenya.Cadenya(api_key=ADMIN_TOKEN, base_url=server["base"], workspace_id=ws.metadata.id)

    ts = client.tool_sets.create(metadata={"name": "Lookups"}, spec={"adapter": {"type": "http", "http": {"baseUrl": base}}})
    tool = client.tool_sets.tools.create(
        ts.metadata.id,
        metadata={"name": FAKE_TOOL},
        spec={
            "description": "Look a round up",
            "parameters": {"type": "object", "properties": {"round": {"type": "integer"}}},
            "requiresApproval": False,
            "config": {"type": "http", "http": {"requestMethod": "GET", "path": "/lookup/{{ round }}"}},
        },
    )
    agent = client.agents.create(metadata={"name": "Strict runner"}, spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_RANDOM"})
    aid = agent.metadata.id
    v = client.agents.variations.create(
        aid,
        metadata={"name": "Fake"},
        spec={"system_prompt_template": "You help {{ customer }}.", "model_config": {"model_id": FAKE_MODEL}},
    )
    assert v.spec.model_config.model_id == FAKE_MODEL
    client.agents.variations.add_assignment(aid, v.metadata.id, body={"type": "toolSetId", "toolSetId": ts.metadata.id})

    created = client.objectives.create(
        agent_id=aid,
        system_prompt_data={"customer": "Grace"},
        first_user_message="Where is round one?",
        metadata={"labels": {"suite": "strict"}},
    )
    oid = created.metadata.id
    assert oid.startswith("obj_")
    assert created.system_prompt == "You help Grace."
    assert created.first_user_message == "Where is round one?"
    assert created.pinned_parameters == {} and created.secrets == []

    # First turn: user message, a call to the tool, its result, the answer.
    o = _settle(client, oid)
    assert o.state == "STATE_WAITING", o.state_message
    events = list(client.objectives.list_events(oid, include_info=True))
    assert [type(e.data) for e in events] == [
        types.ObjectiveEventData_UserMessage,
        types.ObjectiveEventData_AssistantMessage,
        types.ObjectiveEventData_ToolCalled,
        types.ObjectiveEventData_ToolResult,
        types.ObjectiveEventData_AssistantMessage,
    ]
    first, call, called, result, answer = events
    assert first.data.user_message.content == "Where is round one?"
    assert first.info.created_by.metadata.id == o.info.created_by.metadata.id
    [tc] = call.data.assistant_message.tool_calls
    assert tc.function_name == FAKE_TOOL and json.loads(tc.arguments) == {"round": 1}
    assert isinstance(called.data.tool_called.tool, types.CallableTool_Tool)
    assert called.data.tool_called.tool.tool.id == tool.metadata.id
    [block] = result.data.tool_result.result.content
    assert isinstance(block, types.ObjectiveToolCallResult_ContentBlock_Text)
    assert json.loads(block.text.text) == {"path": "/lookup/1", "answer": 42}
    assert answer.data.assistant_message.content == "done" and answer.data.assistant_message.tool_calls == []
    assert hits == ["/lookup/1"]
    assert {e.context_window_id for e in events} == {o.info.current_context_window_id}

    # Second turn.
    cont = client.objectives.continue_(oid, message="And round two?")
    assert isinstance(cont.data, types.ObjectiveEventData_UserMessage)
    assert cont.data.user_message.content == "And round two?"
    o = _settle(client, oid, since=cont.metadata.id)
    assert o.state == "STATE_WAITING", o.state_message
    later = list(client.objectives.list_events(oid, since_event_id=cont.metadata.id))
    assert [type(e.data) for e in later] == [types.ObjectiveEventData_AssistantMessage]
    assert later[0].data.assistant_message.content == "done"

    fb = client.objectives.create_feedback(oid, metadata={}, data={"score": 0.5, "comment": "fine"})
    assert fb.data.score == 0.5 and fb.info.submitted_by.metadata.id == o.info.created_by.metadata.id
    assert fb.info.objective.id == oid and fb.info.agent_variation.id == v.metadata.id

    cancelled = client.objectives.cancel(oid, reason="enough")
    assert cancelled.state == "STATE_CANCELLED"
    with pytest.raises(cadenya.APIError) as err:
        client.objectives.continue_(oid, message="more?")
    assert err.value.status_code == 400

    # Read everything again, the objective being over.
    o = client.objectives.retrieve(oid)
    assert o.state == "STATE_CANCELLED"
    assert o.info.total_events == 8 and o.info.total_tool_calls == 1
    assert [x.metadata.id for x in client.objectives.list(agent_id=aid, include_info=True)] == [oid]
    events = list(client.objectives.list_events(oid, include_info=True))
    assert len(events) == 8
    assert isinstance(events[-1].data, types.ObjectiveEventData_Cancelled)
    assert events[-1].data.cancelled.message == "enough"

    [record] = list(client.objectives.list_tool_calls(oid, include_info=True))
    assert record.metadata.id == called.data.tool_called.tool_call_id == result.data.tool_result.tool_call_id
    assert record.status == "TOOL_CALL_STATUS_AUTO_APPROVED"
    assert record.execution_status == "TOOL_CALL_EXECUTION_STATUS_COMPLETED"
    assert record.data.arguments == {"round": 1} and record.data.resolved_secrets == []
    assert record.info.objective.id == oid
    got = client.objectives.retrieve_tool_call(oid, record.metadata.id)
    assert json.loads(got.result.content[0].text.text)["answer"] == 42

    [snap] = list(client.objectives.list_tools(oid))
    assert snap.snapshot.metadata.id == tool.metadata.id
    [window] = list(client.objectives.list_context_windows(oid))
    assert window.metadata.id == o.info.current_context_window_id and window.data.sequence == 1
    assert [f.metadata.id for f in client.objectives.list_feedback(oid)] == [fb.metadata.id]
    assert [f.metadata.id for f in client.agents.list_feedback(aid)] == [fb.metadata.id]

    # The stream replays the log and ends after the cancelled event.
    streamed = _read_stream(client, oid)
    assert [e.metadata.id for e in streamed] == [e.metadata.id for e in events]
    assert isinstance(streamed[-1].data, types.ObjectiveEventData_Cancelled)
