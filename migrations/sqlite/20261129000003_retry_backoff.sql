-- A task requeued after a failure waits until not_before (milliseconds since
-- the Unix epoch; exponential backoff with jitter) before it is dispatched
-- or claimed again.
ALTER TABLE tasks ADD COLUMN not_before INTEGER;
