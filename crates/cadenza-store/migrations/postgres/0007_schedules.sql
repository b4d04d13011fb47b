-- Agent schedules. The rule is JSON text; `next_fire_at` is the due-time the firing engine
-- claims with a compare-and-set (see Store::advance_schedule), so one fire happens once
-- however many replicas poll.
CREATE TABLE schedules (
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
    first_user_message TEXT NOT NULL DEFAULT '',
    system_prompt_data TEXT,
    first_user_message_data TEXT,
    rule TEXT NOT NULL,
    overlap_policy TEXT NOT NULL,
    state TEXT NOT NULL,
    variation_id TEXT NOT NULL DEFAULT '',
    next_fire_at BIGINT,
    last_fire_at BIGINT,
    last_objective_id TEXT NOT NULL DEFAULT '',
    last_skipped_at BIGINT,
    last_skip_reason TEXT NOT NULL DEFAULT '',
    total_fires BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX schedules_agent ON schedules(workspace_id, agent_id, id);
CREATE INDEX schedules_due ON schedules(next_fire_at) WHERE next_fire_at IS NOT NULL;
CREATE INDEX schedules_variation ON schedules(workspace_id, variation_id);
CREATE UNIQUE INDEX schedules_external_id ON schedules(agent_id, external_id) WHERE external_id <> '';
