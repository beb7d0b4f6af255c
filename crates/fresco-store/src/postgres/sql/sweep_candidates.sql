-- Up to $2 tasks with ended attempts whose stray objects are not swept
-- yet, the latest of those attempts ended at least $1 seconds ago (a
-- lease: a worker that lost its lease may still upload for a moment).
-- `ended_through`: the last ended attempt (a running task's current one
-- has not ended).
SELECT id, job_id,
       CASE WHEN state = 'running' THEN attempt - 1 ELSE attempt END AS ended_through
FROM tasks
WHERE attempt_ended_at IS NOT NULL AND swept_through < attempt
  AND attempt_ended_at <= now() - make_interval(secs => $1)
  AND swept_through < CASE WHEN state = 'running' THEN attempt - 1 ELSE attempt END
ORDER BY attempt_ended_at
LIMIT $2
