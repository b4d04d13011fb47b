-- Objectives and their event log. The log is the truth: `objective_events` holds every event
-- with a gapless sequence number per objective (the unique index backs it); the objective row
-- carries the derived state, counters and the run configuration copied at creation.
CREATE TABLE objectives (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    agent_id TEXT NOT NULL,
    variation_id TEXT NOT NULL,
    schedule_id TEXT,
    parent_objective_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    state_message TEXT NOT NULL DEFAULT '',
    system_prompt TEXT NOT NULL DEFAULT '',
    initial_message TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL DEFAULT '{}',
    memory_stack TEXT NOT NULL DEFAULT '[]',
    output TEXT,
    secret_names TEXT NOT NULL DEFAULT '[]',
    secrets_sealed BYTEA,
    config_snapshot TEXT NOT NULL DEFAULT '{}',
    run_config TEXT NOT NULL DEFAULT '{}',
    total_events BIGINT NOT NULL DEFAULT 0,
    total_tool_calls BIGINT NOT NULL DEFAULT 0,
    total_input_tokens BIGINT NOT NULL DEFAULT 0,
    total_output_tokens BIGINT NOT NULL DEFAULT 0,
    total_context_windows BIGINT NOT NULL DEFAULT 0,
    total_iterations BIGINT NOT NULL DEFAULT 0,
    current_window_id TEXT NOT NULL DEFAULT '',
    last_activity_at BIGINT NOT NULL,
    -- When the objective times out if nothing happens (activity plus its inactivity timeout).
    inactive_at BIGINT NOT NULL
);
CREATE INDEX objectives_workspace ON objectives(workspace_id, id);
CREATE INDEX objectives_agent ON objectives(workspace_id, agent_id, id);
CREATE INDEX objectives_schedule ON objectives(workspace_id, schedule_id, id) WHERE schedule_id IS NOT NULL;
CREATE INDEX objectives_parent ON objectives(workspace_id, parent_objective_id, id) WHERE parent_objective_id <> '';
CREATE UNIQUE INDEX objectives_external_id ON objectives(workspace_id, external_id) WHERE external_id <> '';
-- The inactivity sweep reads only objectives that can still time out, soonest first.
CREATE INDEX objectives_live ON objectives(inactive_at) WHERE state IN ('PENDING', 'RUNNING', 'WAITING');

CREATE TABLE objective_events (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    objective_id TEXT NOT NULL REFERENCES objectives(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    window_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    duration_ms BIGINT
);
CREATE UNIQUE INDEX objective_events_seq ON objective_events(objective_id, seq);

CREATE TABLE objective_windows (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    objective_id TEXT NOT NULL REFERENCES objectives(id) ON DELETE CASCADE,
    sequence BIGINT NOT NULL,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    previous_instructions TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX objective_windows_sequence ON objective_windows(objective_id, sequence);

CREATE TABLE objective_tools (
    objective_id TEXT NOT NULL REFERENCES objectives(id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    tool_id TEXT NOT NULL,
    tool_set_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    snapshot TEXT NOT NULL,
    exec TEXT NOT NULL,
    PRIMARY KEY (objective_id, tool_id)
);

CREATE TABLE objective_tool_calls (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    objective_id TEXT NOT NULL REFERENCES objectives(id) ON DELETE CASCADE,
    model_call_id TEXT NOT NULL,
    function_name TEXT NOT NULL,
    tool_id TEXT NOT NULL DEFAULT '',
    tool_set_id TEXT NOT NULL DEFAULT '',
    callable TEXT NOT NULL,
    arguments TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    execution_status TEXT NOT NULL,
    memo TEXT NOT NULL DEFAULT '',
    status_changed_by TEXT,
    result TEXT,
    error TEXT,
    resolved_secrets TEXT NOT NULL DEFAULT '[]',
    attempts BIGINT NOT NULL DEFAULT 0,
    content_deadline BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX objective_tool_calls_objective ON objective_tool_calls(objective_id, id);

CREATE TABLE objective_tasks (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    objective_id TEXT NOT NULL REFERENCES objectives(id) ON DELETE CASCADE,
    number BIGINT NOT NULL,
    task TEXT NOT NULL,
    completed BIGINT NOT NULL DEFAULT 0,
    completed_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX objective_tasks_number ON objective_tasks(objective_id, number);
