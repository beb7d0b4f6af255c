-- Deletes job ?1 (its tasks and outputs go with it, by cascade) while it
-- is still finished and its last task ended before ?2: the conditions of
-- expired_jobs.sql again, so a job retried meanwhile stays.
DELETE FROM jobs
WHERE id = ?1
  AND NOT EXISTS (SELECT 1 FROM tasks t
                  WHERE t.job_id = jobs.id AND t.state IN ('queued', 'running'))
  AND coalesce((SELECT max(t.finished_at) FROM tasks t WHERE t.job_id = jobs.id),
               jobs.created_at) < ?2
