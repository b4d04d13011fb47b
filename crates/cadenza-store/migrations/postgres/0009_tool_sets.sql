-- Tool sets, their tools, and the sync log. The adapter and a tool's call config are JSON
-- text; `openapi_document` keeps the consumed OpenAPI document (served back by openapi_spec).
CREATE TABLE tool_sets (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    adapter TEXT NOT NULL,
    state TEXT NOT NULL,
    last_sync_at BIGINT,
    openapi_document TEXT
);
CREATE INDEX tool_sets_workspace ON tool_sets(workspace_id, id);
CREATE UNIQUE INDEX tool_sets_external_id ON tool_sets(workspace_id, external_id) WHERE external_id <> '';

CREATE TABLE tools (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    tool_set_id TEXT NOT NULL REFERENCES tool_sets(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL DEFAULT '{}',
    config TEXT NOT NULL,
    requires_approval BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    -- Omitted by a person (kept across syncs) rather than by the set's filters.
    omitted_by_user BIGINT NOT NULL DEFAULT 0,
    llm_tool_name TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX tools_set ON tools(workspace_id, tool_set_id, id);
CREATE UNIQUE INDEX tools_name ON tools(tool_set_id, name);
CREATE UNIQUE INDEX tools_external_id ON tools(tool_set_id, external_id) WHERE external_id <> '';

CREATE TABLE tool_set_events (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    tool_set_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    tools_synced BIGINT NOT NULL DEFAULT 0,
    error_type TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tool_set_events_set ON tool_set_events(workspace_id, tool_set_id, id);
