-- The webhook outbox: one message per objective event and receiver URL, written in the
-- event's own transaction (so a committed event always has its message), worked per
-- objective in sequence order by the delivery job. Every attempt is logged in
-- webhook_deliveries, so a message may now have several rows there.
CREATE TABLE webhook_outbox (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    objective_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    url TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    payload TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX webhook_outbox_event ON webhook_outbox(event_id, url);
CREATE INDEX webhook_outbox_pending ON webhook_outbox(objective_id, seq) WHERE status = 'PENDING';

DROP INDEX webhook_deliveries_message;
CREATE INDEX webhook_deliveries_message ON webhook_deliveries(webhook_id);
CREATE INDEX webhook_deliveries_objective ON webhook_deliveries(workspace_id, agent_id, objective_id, id);

-- The signing secret before the last rotation, and when it was rotated: deliveries carry a
-- signature with both during the grace period.
ALTER TABLE accounts ADD COLUMN previous_webhook_secret_sealed BLOB;
ALTER TABLE accounts ADD COLUMN webhook_secret_rotated_at INTEGER;
