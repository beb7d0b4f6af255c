-- A quarantined worker is released onto probation (after the coordinator's
-- cool-down, or by an operator): it may claim one probe task at a time;
-- success returns it to service, a failure quarantines it again.
-- `recent_errors`: its last failed attempts that counted against it, oldest
-- first (at most 5), each {task, attempt, message, kind, at}: why it was
-- quarantined.
ALTER TABLE workers ADD COLUMN probation BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE workers ADD COLUMN recent_errors JSONB NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(recent_errors) = 'array');
