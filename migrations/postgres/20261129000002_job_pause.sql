-- A paused job's queued tasks stay queued but are neither dispatched nor
-- claimed until the job is resumed.
ALTER TABLE jobs ADD COLUMN paused BOOLEAN NOT NULL DEFAULT false;
