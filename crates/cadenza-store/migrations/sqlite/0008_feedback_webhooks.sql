-- Objective feedback and webhook deliveries: written by the runtime, listed per agent. Both
-- are operation records (no name); the name/updated_at columns keep the shared metadata row.
CREATE TABLE objective_feedback (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    agent_id TEXT NOT NULL,
    objective_id TEXT NOT NULL,
    variation_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    score REAL NOT NULL DEFAULT 0,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX objective_feedback_agent ON objective_feedback(workspace_id, agent_id, id);
CREATE INDEX objective_feedback_variation ON objective_feedback(workspace_id, variation_id);
CREATE INDEX objective_feedback_objective ON objective_feedback(workspace_id, objective_id, id);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    agent_id TEXT NOT NULL,
    objective_id TEXT NOT NULL,
    objective_event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    webhook_url TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER,
    http_status_code INTEGER NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    response_content_length INTEGER NOT NULL DEFAULT 0,
    response_headers TEXT NOT NULL DEFAULT '{}',
    error_message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhook_deliveries_agent ON webhook_deliveries(workspace_id, agent_id, id);
CREATE UNIQUE INDEX webhook_deliveries_message ON webhook_deliveries(webhook_id, webhook_url);
