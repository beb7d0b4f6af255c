-- Per job and state, the task count; over running tasks, steps done and
-- steps needed (a job's progress); over queued tasks, how many are past
-- their backoff now and when the first of the others may run.
SELECT job_id, state, count(*) AS tasks,
       coalesce(sum(progress_step) FILTER (WHERE state = 'running'), 0)::BIGINT AS done,
       coalesce(sum(steps) FILTER (WHERE state = 'running'), 0)::BIGINT AS total,
       count(*) FILTER (WHERE state = 'queued'
                          AND (not_before IS NULL OR not_before <= now())) AS ready,
       min(not_before) FILTER (WHERE state = 'queued' AND not_before > now()) AS retry_at
FROM tasks WHERE job_id = ANY($1) GROUP BY job_id, state
