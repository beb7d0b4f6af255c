-- The W3C trace context of the submission that stored the job (empty
-- when it was not traced): every attempt of its tasks joins that trace.
ALTER TABLE jobs ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
