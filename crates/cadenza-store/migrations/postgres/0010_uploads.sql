-- Uploads. The bytes live in the object store under `object_key`; `due_at` is when the
-- expiry pass next has something to do with the row (URL expiry while PENDING, retention while
-- COMPLETE, byte removal once CONSUMED), so the pass is one indexed range scan.
CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    status TEXT NOT NULL,
    url_expires_at BIGINT NOT NULL,
    object_key TEXT NOT NULL DEFAULT '',
    due_at BIGINT
);
CREATE INDEX uploads_workspace ON uploads(workspace_id, id);
CREATE INDEX uploads_due ON uploads(due_at) WHERE due_at IS NOT NULL;
CREATE UNIQUE INDEX uploads_external_id ON uploads(workspace_id, external_id) WHERE external_id <> '';
