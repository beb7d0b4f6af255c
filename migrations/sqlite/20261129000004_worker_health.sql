-- A worker's run of failed attempts; at the coordinator's threshold it is
-- quarantined (milliseconds since the Unix epoch) and claims nothing more.
ALTER TABLE workers ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN quarantined_at INTEGER;
