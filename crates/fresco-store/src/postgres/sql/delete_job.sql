-- Deletes job $1 (its tasks and outputs go with it, by cascade) while it
-- is still finished and its last task ended more than $2 seconds ago: the
-- conditions of expired_jobs.sql again, so a job retried meanwhile stays.
DELETE FROM jobs j
WHERE j.id = $1
  AND NOT EXISTS (SELECT 1 FROM tasks t
                  WHERE t.job_id = j.id AND t.state IN ('queued', 'running'))
  AND coalesce((SELECT max(t.finished_at) FROM tasks t WHERE t.job_id = j.id),
               j.created_at) < now() - make_interval(secs => $2)
