-- A paused job's queued tasks stay queued but are neither dispatched nor
-- claimed until the job is resumed.
ALTER TABLE jobs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1));
