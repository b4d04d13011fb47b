-- One counter per workspace, bumped in the same transaction as every write to agents, tool
-- sets and tools: the search index of a replica rebuilds a workspace when it moved.
CREATE TABLE catalog_versions (
    workspace_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
