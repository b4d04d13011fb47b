"""The configuration plane through the strict SDK (cadenya 1.0.0): every always-present field
of variations, assignments, memory-layer assignments and schedules must decode."""


def test_variations_and_schedules(admin):
    wsid = list(admin.workspaces.list())[0].metadata.id
    agent = admin.agents.create(workspace_id=wsid, metadata={"name": "Strict config"}, spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_RANDOM"})
    sub = admin.agents.create(workspace_id=wsid, metadata={"name": "Strict sub"}, spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_RANDOM"})
    aid = agent.metadata.id
    v = admin.agents.variations.create(
        aid,
        workspace_id=wsid,
        metadata={"name": "V"},
        spec={"system_prompt_template": "Hi", "model_config": {"model_id": "openai/gpt-test", "reasoning_effort": "REASONING_EFFORT_LOW"}},
    )
    assert v.spec.model_config.model_id == "openai/gpt-test"
    a = admin.agents.variations.add_assignment(aid, v.metadata.id, workspace_id=wsid, body={"type": "subAgentId", "subAgentId": sub.metadata.id})
    layer = admin.memory_layers.create(workspace_id=wsid, metadata={"name": "L"}, spec={"type": "MEMORY_LAYER_TYPE_SKILLS"})
    m = admin.agents.variations.add_memory_layer(aid, v.metadata.id, workspace_id=wsid, memory_layer_id=layer.metadata.id, position=2)
    assert m.position == 2
    got = admin.agents.variations.retrieve(aid, v.metadata.id, workspace_id=wsid)
    assert got.info.sub_agent_count == 1 and got.info.memory_layer_count == 1
    admin.agents.variations.remove_assignment(aid, v.metadata.id, a.id, workspace_id=wsid)
    admin.agents.variations.remove_memory_layer(aid, v.metadata.id, m.id, workspace_id=wsid)

    s = admin.agents.schedules.create(
        aid,
        workspace_id=wsid,
        metadata={"name": "S"},
        spec={"schedule": {"intervals": [{"every": "3600s", "offset": "60s"}], "timezone": "UTC"}, "first_user_message": "go"},
    )
    assert s.state == "STATE_ACTIVE" and s.info.total_fires == 0
    assert s.info.next_fire_at is not None
    assert admin.agents.schedules.pause(aid, s.metadata.id, workspace_id=wsid).state == "STATE_PAUSED"
    assert [x.metadata.id for x in admin.agents.schedules.list(aid, workspace_id=wsid)] == [s.metadata.id]
    admin.agents.schedules.delete(aid, s.metadata.id, workspace_id=wsid)
    admin.agents.variations.delete(aid, v.metadata.id, workspace_id=wsid)


def test_tool_sets_and_tools(admin):
    wsid = list(admin.workspaces.list())[0].metadata.id
    ts = admin.tool_sets.create(
        workspace_id=wsid,
        metadata={"name": "Strict tools"},
        spec={"adapter": {"type": "mcp", "mcp": {"url": "http://127.0.0.1:9/mcp", "includeTools": {"operator": "OPERATOR_AND", "filters": [{"attribute": "ATTRIBUTE_NAME", "matcher": {"type": "exact", "exact": "a"}}]}}}},
    )
    assert ts.state == "STATE_ACTIVE" and ts.info.tool_count == 0
    assert ts.spec.adapter.mcp.url == "http://127.0.0.1:9/mcp"
    got = admin.tool_sets.retrieve(ts.metadata.id, workspace_id=wsid)
    assert got.metadata.id == ts.metadata.id
    assert [x.metadata.id for x in admin.tool_sets.list(workspace_id=wsid)] == [ts.metadata.id]
    bare = admin.tool_sets.create(workspace_id=wsid, metadata={"name": "Strict bare"}, spec={"adapter": {"type": "bare", "bare": {}}})
    tool = admin.tool_sets.tools.create(
        bare.metadata.id,
        workspace_id=wsid,
        metadata={"name": "ask human"},
        spec={"description": "Ask a person", "parameters": {}, "requiresApproval": True, "config": {"type": "bare", "bare": {}}},
    )
    assert tool.state == "STATE_AVAILABLE" and tool.info.signature
    assert admin.tool_sets.tools.omit(bare.metadata.id, tool.metadata.id, workspace_id=wsid).state == "STATE_OMITTED"
    admin.tool_sets.tools.delete(bare.metadata.id, tool.metadata.id, workspace_id=wsid)
    assert admin.tool_sets.archive(ts.metadata.id, workspace_id=wsid).state == "STATE_ARCHIVED"


def test_tool_set_secrets_and_usage(admin):
    """Tool-set secrets (the value never comes back) and the set's usage list decode strictly."""
    wsid = list(admin.workspaces.list())[0].metadata.id
    ts = admin.tool_sets.create(workspace_id=wsid, metadata={"name": "Strict secrets"}, spec={"adapter": {"type": "http", "http": {"baseUrl": "https://api.example.com"}}})
    tsid = ts.metadata.id
    s = admin.tool_sets.secrets.create(tsid, workspace_id=wsid, metadata={"name": "API_KEY"}, spec={"value": "strict-tool-set-secret"})
    assert s.metadata.id.startswith("toolsecret_") and s.spec.value is None
    assert [x.metadata.id for x in admin.tool_sets.secrets.list(tsid, workspace_id=wsid)] == [s.metadata.id]
    assert admin.tool_sets.secrets.retrieve(tsid, s.metadata.id, workspace_id=wsid).metadata.name == "API_KEY"
    up = admin.tool_sets.secrets.update(tsid, s.metadata.id, workspace_id=wsid, spec={"value": "rotated"}, update_mask="spec.value")
    assert up.spec.value is None

    agent = admin.agents.create(workspace_id=wsid, metadata={"name": "Strict usage"}, spec={"variation_selection_mode": "VARIATION_SELECTION_MODE_RANDOM"})
    aid = agent.metadata.id
    v = admin.agents.variations.create(aid, workspace_id=wsid, metadata={"name": "V"}, spec={"system_prompt_template": "Hi", "model_config": {"model_id": "openai/gpt-test"}})
    a = admin.agents.variations.add_assignment(aid, v.metadata.id, workspace_id=wsid, body={"type": "toolSetId", "toolSetId": tsid})
    uses = list(admin.tool_sets.list_usage(tsid, workspace_id=wsid))
    assert [(u.agent_variation.id, u.agent.id, u.model.name) for u in uses] == [(v.metadata.id, aid, "openai/gpt-test")]
    admin.agents.variations.remove_assignment(aid, v.metadata.id, a.id, workspace_id=wsid)
    assert list(admin.tool_sets.list_usage(tsid, workspace_id=wsid)) == []
    admin.agents.variations.delete(aid, v.metadata.id, workspace_id=wsid)
    admin.tool_sets.secrets.delete(tsid, s.metadata.id, workspace_id=wsid)
    assert list(admin.tool_sets.secrets.list(tsid, workspace_id=wsid)) == []
    admin.tool_sets.delete(tsid, workspace_id=wsid)
