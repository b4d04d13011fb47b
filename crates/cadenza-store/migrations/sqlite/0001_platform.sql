-- Platform plane: account, profiles, workspaces, API keys, workspace secrets, and the job queue.
-- Conventions shared with the PostgreSQL tree: ids are TEXT prefixed ULIDs, times are integer
-- epoch milliseconds, booleans are 0/1 integers, JSON is TEXT.

CREATE TABLE bootstrap (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    account_id TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    billing_email TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    domain TEXT NOT NULL DEFAULT '',
    webhook_secret_sealed BLOB NOT NULL,
    challenge_token TEXT NOT NULL
);

CREATE TABLE profiles (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);
CREATE INDEX profiles_account ON profiles(account_id);

CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL
);
CREATE INDEX workspaces_account ON workspaces(account_id, id);
CREATE UNIQUE INDEX workspaces_external_id ON workspaces(account_id, external_id) WHERE external_id <> '';

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    workspace_id TEXT REFERENCES workspaces(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    key_profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    permissions TEXT NOT NULL DEFAULT '[]',
    system INTEGER NOT NULL DEFAULT 0,
    enabled INTEGER NOT NULL DEFAULT 1,
    token_hash TEXT NOT NULL UNIQUE
);
CREATE INDEX api_keys_account ON api_keys(account_id, workspace_id, id);
CREATE UNIQUE INDEX api_keys_external_id ON api_keys(account_id, external_id) WHERE external_id <> '';

CREATE TABLE workspace_secrets (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_used_at INTEGER,
    value_sealed BLOB NOT NULL
);
CREATE INDEX workspace_secrets_ws ON workspace_secrets(workspace_id, id);
CREATE UNIQUE INDEX workspace_secrets_name ON workspace_secrets(workspace_id, name);
CREATE UNIQUE INDEX workspace_secrets_external_id ON workspace_secrets(workspace_id, external_id) WHERE external_id <> '';

-- The durable job queue (docs/ARCHITECTURE.md, "The job queue").
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    workspace_id TEXT,
    payload TEXT NOT NULL,
    dedupe_key TEXT UNIQUE,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    run_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backoff_base_ms INTEGER NOT NULL,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at INTEGER,
    last_error TEXT,
    progress TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs(queue, state, run_at);
CREATE INDEX jobs_leases ON jobs(state, lease_expires_at);
