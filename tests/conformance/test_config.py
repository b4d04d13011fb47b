"""The configuration plane through the official SDK (cadenya 0.2.0): an agent with variations,
assignments, a memory stack, a schedule, and the per-agent logs."""


def _ws(admin):
    return [w for w in admin.workspaces.list() if w.metadata.name == "default"][0].metadata.id


def test_variations_assignments_and_memory_stack(admin):
    wsid = _ws(admin)
    parent = admin.agents.create(workspace_id=wsid, metadata={"name": "Parent"}, spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_WEIGHTED"})
    child = admin.agents.create(workspace_id=wsid, metadata={"name": "Child", "external_id": "child"}, spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_RANDOM"})
    pid = parent.metadata.id
    v = admin.agents.variations.create(
        pid,
        workspace_id=wsid,
        metadata={"name": "Main", "external_id": "main"},
        spec={
            "system_prompt_template": "You help {{ customer }}.",
            "model_config": {"model_id": "openai/gpt-test", "temperature": 0.3},
            "constraints": {"max_tool_calls": 4, "inactivity_timeout": "600s"},
            "compaction_config": {"trigger_threshold": 0.6},
        },
    )
    assert v.metadata.id.startswith("agentvar_")
    assert v.spec.system_prompt_template == "You help {{ customer }}."
    assert v.spec.api_model_config.api_model_id == "openai/gpt-test"
    assert v.spec.compaction_config.trigger_threshold == 0.6
    assert v.info.score == 0.5

    a = admin.agents.variations.add_assignment(pid, v.metadata.id, workspace_id=wsid, type="subAgentId", sub_agent_id="external_id:child")
    assert a.id.startswith("avt_")
    layer = admin.memory_layers.create(workspace_id=wsid, metadata={"name": "Facts"}, spec={"type": "MEMORY_LAYER_TYPE_SKILLS"})
    m = admin.agents.variations.add_memory_layer(pid, v.metadata.id, workspace_id=wsid, memory_layer_id=layer.metadata.id)
    assert m.position == 0
    m = admin.agents.variations.update_memory_layer(pid, v.metadata.id, m.id, workspace_id=wsid, position=3)
    assert m.position == 3

    got = admin.agents.variations.retrieve(pid, "external_id:main", workspace_id=wsid)
    assert got.info.sub_agent_count == 1
    assert got.info.assignments[0].agent.id == child.metadata.id
    assert got.info.memory_layer_assignments[0].memory_layer.id == layer.metadata.id
    assert [x.metadata.id for x in admin.agents.variations.list(pid, workspace_id=wsid)] == [v.metadata.id]

    admin.agents.variations.remove_assignment(pid, v.metadata.id, a.id, workspace_id=wsid)
    admin.agents.variations.remove_memory_layer(pid, v.metadata.id, m.id, workspace_id=wsid)
    assert admin.agents.variations.retrieve(pid, v.metadata.id, workspace_id=wsid).info.memory_layer_count == 0
    assert admin.agents.publish(pid, workspace_id=wsid).state == "STATE_PUBLISHED"


def test_schedules_and_logs(admin):
    wsid = _ws(admin)
    agent = admin.agents.create(workspace_id=wsid, metadata={"name": "Scheduled"}, spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_RANDOM"})
    aid = agent.metadata.id
    s = admin.agents.schedules.create(
        aid,
        workspace_id=wsid,
        metadata={"name": "Nightly"},
        spec={
            "first_user_message": "Summarise the day",
            "schedule": {"calendars": [{"hour": [{"start": 2}], "minute": [{"start": 30}]}], "timezone": "America/New_York"},
            "overlap_policy": "OVERLAP_POLICY_SKIP",
        },
    )
    assert s.metadata.id.startswith("as_")
    assert s.state == "STATE_ACTIVE"
    assert s.info.next_fire_at is not None
    assert s.info.next_fire_at.minute == 30
    paused = admin.agents.schedules.pause(aid, s.metadata.id, workspace_id=wsid)
    assert paused.state == "STATE_PAUSED" and paused.info.next_fire_at is None
    assert admin.agents.schedules.resume(aid, s.metadata.id, workspace_id=wsid).state == "STATE_ACTIVE"
    assert admin.agents.schedules.archive(aid, s.metadata.id, workspace_id=wsid).state == "STATE_ARCHIVED"
    assert len(list(admin.agents.schedules.list(aid, workspace_id=wsid))) == 1
    assert list(admin.agents.feedback.list(aid, workspace_id=wsid)) == []
    assert list(admin.agents.webhook_deliveries.list(aid, workspace_id=wsid)) == []


def test_tool_sets_and_tools(admin):
    wsid = _ws(admin)
    ts = admin.tool_sets.create(
        workspace_id=wsid,
        metadata={"name": "Weather API"},
        spec={"description": "weather", "adapter": {"type": "http", "http": {"base_url": "https://weather.example.com", "headers": {"X-Key": "{{ secrets.WEATHER }}"}}}},
    )
    assert ts.metadata.id.startswith("toolset_")
    assert ts.state == "STATE_ACTIVE"
    tool = admin.tool_sets.tools.create(
        ts.metadata.id,
        workspace_id=wsid,
        metadata={"name": "current weather"},
        spec={
            "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "requires_approval": False,
            "config": {"type": "http", "http": {"request_method": "GET", "path": "/now/{{ city }}"}},
        },
    )
    assert tool.spec.llm_tool_name == "current_weather"
    assert tool.info.signature
    assert [t.metadata.id for t in admin.tool_sets.tools.list(ts.metadata.id, workspace_id=wsid)] == [tool.metadata.id]
    assert admin.tool_sets.tools.omit(ts.metadata.id, tool.metadata.id, workspace_id=wsid).state == "STATE_OMITTED"
    assert admin.tool_sets.tools.restore(ts.metadata.id, tool.metadata.id, workspace_id=wsid).state == "STATE_AVAILABLE"
    assert admin.tool_sets.archive(ts.metadata.id, workspace_id=wsid).state == "STATE_ARCHIVED"
    assert admin.tool_sets.unarchive(ts.metadata.id, workspace_id=wsid).state == "STATE_ACTIVE"
    assert list(admin.tool_sets.list_events(ts.metadata.id, workspace_id=wsid)) == []
    admin.tool_sets.tools.delete(ts.metadata.id, tool.metadata.id, workspace_id=wsid)
    admin.tool_sets.delete(ts.metadata.id, workspace_id=wsid)
