-- What a job's manifest tells of each image: the SHA-256 of every output's
-- bytes, and, per task, the attempt that succeeded: the SHA-256 of the
-- model weights it sampled with, the device time it took and its worker's
-- name and device as they were then. And when each job's manifest was
-- written to the bucket.
ALTER TABLE outputs ADD COLUMN sha256 TEXT NOT NULL DEFAULT '';

ALTER TABLE tasks ADD COLUMN weights_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN device_ms BIGINT;
ALTER TABLE tasks ADD COLUMN worker_name TEXT;
ALTER TABLE tasks ADD COLUMN worker_device TEXT;

-- How many times a retry queued the job's failed tasks again, and the
-- count its bucket manifest was written at (NULL: none yet). A finished
-- job whose two differ has a manifest to write.
ALTER TABLE jobs ADD COLUMN reopened INT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN manifest_written_for INT;
CREATE INDEX jobs_manifest_due ON jobs (created_at)
    WHERE manifest_written_for IS NULL OR manifest_written_for <> reopened;
