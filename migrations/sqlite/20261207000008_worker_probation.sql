-- A quarantined worker is released onto probation (after the coordinator's
-- cool-down, or by an operator): it may claim one probe task at a time;
-- success returns it to service, a failure quarantines it again.
-- `recent_errors`: its last failed attempts that counted against it, oldest
-- first (at most 5), a JSON array of {task, attempt, message, kind, at}
-- (`at` as RFC 3339 text, like a task's errors): why it was quarantined.
ALTER TABLE workers ADD COLUMN probation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN recent_errors TEXT NOT NULL DEFAULT '[]'
    CHECK (json_type(recent_errors) = 'array');
