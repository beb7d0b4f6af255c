-- Per job and state, the task count; over running tasks, steps done and
-- steps needed (a job's progress). ?1: the job ids as a JSON array.
SELECT job_id, state, count(*) AS tasks,
       coalesce(sum(CASE WHEN state = 'running' THEN progress_step END), 0) AS done,
       coalesce(sum(CASE WHEN state = 'running' THEN steps END), 0) AS total
FROM tasks WHERE job_id IN (SELECT value FROM json_each(?1))
GROUP BY job_id, state
