-- Free-form labels a submitter attaches to a job (a JSON object of string
-- values); ListJobs matches them with @>, which the GIN index serves.
ALTER TABLE jobs ADD COLUMN labels JSONB NOT NULL DEFAULT '{}';
CREATE INDEX jobs_by_labels ON jobs USING GIN (labels jsonb_path_ops);
-- A job's recent throughput counts its tasks that ended in the last
-- minutes: read by job and end time.
CREATE INDEX tasks_by_job_finished ON tasks (job_id, finished_at)
    WHERE finished_at IS NOT NULL;
