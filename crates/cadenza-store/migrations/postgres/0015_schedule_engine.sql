-- The schedule engine. A fired objective keeps the due time it was fired for, and one
-- schedule has at most one objective per fire time: the firing unit already checks the
-- schedule's due time under its lock, and this makes a double fire impossible to commit even
-- if that check ever slipped.
ALTER TABLE objectives ADD COLUMN schedule_fire_at BIGINT;
CREATE UNIQUE INDEX objectives_schedule_fire ON objectives(schedule_id, schedule_fire_at)
    WHERE schedule_fire_at IS NOT NULL;
