-- Per job and state, the task count; over running tasks, steps done and
-- steps needed (a job's progress).
SELECT job_id, state, count(*) AS tasks,
       coalesce(sum(progress_step) FILTER (WHERE state = 'running'), 0)::BIGINT AS done,
       coalesce(sum(steps) FILTER (WHERE state = 'running'), 0)::BIGINT AS total
FROM tasks WHERE job_id = ANY($1) GROUP BY job_id, state
