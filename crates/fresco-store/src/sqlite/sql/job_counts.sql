-- Per job and state, the task count; over running tasks, steps done and
-- steps needed (a job's progress); over queued tasks, how many are past
-- their backoff at ?2 (now) and when the first of the others may run.
-- ?1: the job ids as a JSON array.
SELECT job_id, state, count(*) AS tasks,
       coalesce(sum(CASE WHEN state = 'running' THEN progress_step END), 0) AS done,
       coalesce(sum(CASE WHEN state = 'running' THEN steps END), 0) AS total,
       coalesce(sum(CASE WHEN state = 'queued'
                          AND (not_before IS NULL OR not_before <= ?2) THEN 1 END), 0) AS ready,
       min(CASE WHEN state = 'queued' AND not_before > ?2 THEN not_before END) AS retry_at
FROM tasks WHERE job_id IN (SELECT value FROM json_each(?1))
GROUP BY job_id, state
