-- The queue, ready for thousands of jobs (docs/ARCHITECTURE.md, "The job queue").
-- * A lease belongs to a worker process: one row in `workers` whose expiry the process renews
--   with one write per beat, however many jobs it holds. A job is held while its owner's row is
--   unexpired and its lease token matches.
-- * `job_key`: at most one queued-or-running job per key (partial unique index); an enqueue
--   for a key whose job is running sets `rerun`, so the job runs again when it finishes.
-- * Claims are served by partial indexes of their shape: ready jobs by (queue, run_at), held
--   jobs by owner, and expired owners by expiry.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX workers_expiry ON workers(expires_at);

CREATE TABLE jobs_v2 (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    workspace_id TEXT,
    payload TEXT NOT NULL,
    job_key TEXT,
    state TEXT NOT NULL,
    run_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    backoff_base_ms INTEGER NOT NULL,
    rerun INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_token TEXT,
    last_error TEXT,
    progress TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Carried over: jobs that were running when the old binary stopped go back to the queue (their
-- leases were per job; the new ones belong to worker rows). Tool-set syncs take the typed
-- payload (with the workspace) and the per-set key, keeping one pending sync per set. The old
-- per-period housekeeping jobs go: the new recurring ones are enqueued at start.
INSERT INTO jobs_v2 (id, kind, queue, workspace_id, payload, job_key, state, run_at, attempts, max_attempts,
    backoff_base_ms, rerun, lease_owner, lease_token, last_error, progress, created_at, updated_at)
SELECT id, kind, queue, workspace_id,
    CASE WHEN kind = 'tool_sets.sync' THEN json_set(payload, '$.workspaceId', COALESCE(workspace_id, '')) ELSE payload END,
    CASE WHEN kind = 'tool_sets.sync' AND state IN ('queued', 'running') THEN 'tool_sets.sync:' || json_extract(payload, '$.toolSetId')
         WHEN state IN ('queued', 'running') THEN dedupe_key ELSE NULL END,
    CASE WHEN state = 'running' THEN 'queued' ELSE state END,
    run_at, attempts, max_attempts, backoff_base_ms, 0, NULL, NULL, last_error, progress, created_at, updated_at
FROM jobs
WHERE kind NOT IN ('maintenance.purge_jobs', 'maintenance.expire_uploads')
  AND NOT (kind = 'tool_sets.sync' AND state IN ('queued', 'running') AND id <> (
      SELECT MIN(o.id) FROM jobs o
      WHERE o.kind = 'tool_sets.sync' AND o.state IN ('queued', 'running') AND json_extract(o.payload, '$.toolSetId') = json_extract(jobs.payload, '$.toolSetId')));
DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;
CREATE UNIQUE INDEX jobs_one_pending_per_key ON jobs(job_key) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_ready ON jobs(queue, run_at, id) WHERE state = 'queued';
CREATE INDEX jobs_held ON jobs(lease_owner) WHERE state = 'running';
CREATE INDEX jobs_by_state ON jobs(state, id);
