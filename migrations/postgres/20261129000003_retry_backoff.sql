-- A task requeued after a failure waits until not_before (exponential
-- backoff with jitter) before it is dispatched or claimed again.
ALTER TABLE tasks ADD COLUMN not_before TIMESTAMPTZ;
