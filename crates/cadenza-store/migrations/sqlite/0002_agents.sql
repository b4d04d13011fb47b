-- Agents (configuration plane). Schemas are JSON text; NULL when unset.
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    selection_mode TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    input_schema TEXT,
    output_definition TEXT,
    webhook_events_url TEXT NOT NULL DEFAULT '',
    enable_episodic_memory INTEGER NOT NULL DEFAULT 0,
    episodic_memory_ttl INTEGER
);
CREATE INDEX agents_ws ON agents(workspace_id, id);
CREATE UNIQUE INDEX agents_external_id ON agents(workspace_id, external_id) WHERE external_id <> '';
