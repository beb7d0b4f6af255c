-- A job's deadline (milliseconds since the Unix epoch; NULL: none): its
-- tasks still queued then fail.
ALTER TABLE jobs ADD COLUMN deadline INTEGER;
CREATE INDEX jobs_by_deadline ON jobs (deadline) WHERE deadline IS NOT NULL;
-- When a task's latest attempt ended (failed, expired, given back,
-- cancelled while running, or completed), and the attempts whose stray
-- output objects (never recorded as outputs) have been swept from storage.
ALTER TABLE tasks ADD COLUMN attempt_ended_at INTEGER;
ALTER TABLE tasks ADD COLUMN swept_through INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_unswept ON tasks (attempt_ended_at)
    WHERE attempt_ended_at IS NOT NULL AND swept_through < attempt;
