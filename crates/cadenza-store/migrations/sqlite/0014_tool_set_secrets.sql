-- Tool-set secrets (CONTRACT §12.6): the shape of workspace_secrets, owned by one tool set.
-- Values are sealed bound to (workspace, tool set, secret id); names are unique per tool set.
-- Deleting a tool set deletes its secrets in the same transaction.
CREATE TABLE tool_set_secrets (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    tool_set_id TEXT NOT NULL REFERENCES tool_sets(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_used_at INTEGER,
    value_sealed BLOB NOT NULL
);
CREATE INDEX tool_set_secrets_set ON tool_set_secrets(workspace_id, tool_set_id, id);
CREATE UNIQUE INDEX tool_set_secrets_name ON tool_set_secrets(tool_set_id, name);
CREATE UNIQUE INDEX tool_set_secrets_external_id ON tool_set_secrets(tool_set_id, external_id) WHERE external_id <> '';
