-- Memory layers and their keyed entries.
CREATE TABLE memory_layers (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    layer_type TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    system_managed INTEGER NOT NULL DEFAULT 0,
    expires_at INTEGER,
    agent_id TEXT NOT NULL DEFAULT '',
    episodic_key TEXT NOT NULL DEFAULT '',
    last_used_at INTEGER
);
CREATE INDEX memory_layers_ws ON memory_layers(workspace_id, id);
CREATE UNIQUE INDEX memory_layers_external_id ON memory_layers(workspace_id, external_id) WHERE external_id <> '';

CREATE TABLE memory_entries (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    layer_id TEXT NOT NULL REFERENCES memory_layers(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    entry_key TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL DEFAULT ''
);
CREATE INDEX memory_entries_layer ON memory_entries(layer_id, id);
CREATE UNIQUE INDEX memory_entries_key ON memory_entries(layer_id, entry_key);
CREATE UNIQUE INDEX memory_entries_external_id ON memory_entries(layer_id, external_id) WHERE external_id <> '';
