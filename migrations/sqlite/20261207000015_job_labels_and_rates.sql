-- Free-form labels a submitter attaches to a job, as a JSON object of
-- string values.
ALTER TABLE jobs ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
-- A job's recent throughput counts its tasks that ended in the last
-- minutes: read by job and end time.
CREATE INDEX tasks_by_job_finished ON tasks (job_id, finished_at)
    WHERE finished_at IS NOT NULL;
