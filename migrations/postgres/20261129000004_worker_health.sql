-- A worker's run of failed attempts; at the coordinator's threshold it is
-- quarantined and claims nothing more.
ALTER TABLE workers ADD COLUMN consecutive_failures INT NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN quarantined_at TIMESTAMPTZ;
