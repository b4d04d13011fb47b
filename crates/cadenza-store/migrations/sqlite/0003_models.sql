-- A workspace's switch for each model of the configured catalog. The catalog itself (family,
-- limits, prices) comes from the configuration, so it is not copied here.
CREATE TABLE models (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX models_name ON models(workspace_id, name);
CREATE INDEX models_ws ON models(workspace_id, id);
