-- Agent variations and what is assigned to them. Spec sub-objects are JSON text; the model is
-- also kept as its own column so "which variations use this model" is one indexed query.
CREATE TABLE variations (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    agent_id TEXT NOT NULL REFERENCES agents(id),
    name TEXT NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    profile_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    prompt TEXT NOT NULL DEFAULT '',
    first_user_message_template TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    model_id TEXT,
    model_config TEXT,
    constraints TEXT NOT NULL DEFAULT '{}',
    compaction TEXT NOT NULL DEFAULT '{}',
    progressive_discovery TEXT,
    enable_episodic_memory BIGINT NOT NULL DEFAULT 0,
    episodic_memory_ttl BIGINT,
    weight BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX variations_agent ON variations(workspace_id, agent_id, id);
CREATE INDEX variations_model ON variations(workspace_id, model_id);
CREATE UNIQUE INDEX variations_external_id ON variations(agent_id, external_id) WHERE external_id <> '';

CREATE TABLE variation_assignments (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    variation_id TEXT NOT NULL REFERENCES variations(id),
    kind TEXT NOT NULL,
    target_id TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX variation_assignments_target ON variation_assignments(variation_id, kind, target_id);
CREATE INDEX variation_assignments_by_target ON variation_assignments(workspace_id, target_id);

CREATE TABLE variation_memory_layers (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    variation_id TEXT NOT NULL REFERENCES variations(id),
    layer_id TEXT NOT NULL REFERENCES memory_layers(id),
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX variation_memory_layers_layer ON variation_memory_layers(variation_id, layer_id);
CREATE UNIQUE INDEX variation_memory_layers_position ON variation_memory_layers(variation_id, position);
CREATE INDEX variation_memory_layers_by_layer ON variation_memory_layers(workspace_id, layer_id);
