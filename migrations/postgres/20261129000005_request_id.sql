-- A client's idempotency key for a submission: a submission sent again
-- with the same key returns the job stored the first time.
ALTER TABLE jobs ADD COLUMN request_id TEXT UNIQUE;
