-- What went into each objective's latest model call (GET …/objectives/{id}/diagnostics): the
-- character length of each part of the context and the call's token counts, as JSON, replaced
-- by every model step's commit.
ALTER TABLE objectives ADD COLUMN diagnostics TEXT NOT NULL DEFAULT '{}';
