-- Up to $1 finished jobs (no task queued or running) whose bucket
-- manifest is due: never written, or written before a retry reopened the
-- job; the oldest first. The partial index jobs_manifest_due holds just
-- these jobs and the unfinished ones.
SELECT j.id, j.reopened FROM jobs j
WHERE (j.manifest_written_for IS NULL OR j.manifest_written_for <> j.reopened)
  AND NOT EXISTS (SELECT 1 FROM tasks t
                  WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
ORDER BY j.created_at
LIMIT $1
