-- Per job and state, the task count (job_task_counts plus the deltas not
-- folded in yet; see the job_task_counts migration); over running tasks,
-- steps done and steps needed (a job's progress); over queued tasks, how
-- many are past their backoff now and when the first of the others may run.
-- Only running tasks and tasks in backoff are read one by one.
WITH counted AS (
    SELECT job_id, state, sum(tasks)::BIGINT AS tasks
    FROM (SELECT job_id, state, tasks FROM job_task_counts WHERE job_id = ANY($1)
          UNION ALL
          SELECT job_id, state, delta FROM job_task_count_deltas WHERE job_id = ANY($1)) c
    GROUP BY job_id, state
    HAVING sum(tasks) <> 0
), running AS (
    SELECT job_id, sum(progress_step)::BIGINT AS done, sum(steps)::BIGINT AS total
    FROM tasks WHERE job_id = ANY($1) AND state = 'running'
    GROUP BY job_id
), backing_off AS (
    SELECT job_id, count(*) AS tasks, min(not_before) AS retry_at
    FROM tasks
    WHERE job_id = ANY($1) AND state = 'queued' AND not_before IS NOT NULL
      AND not_before > now()
    GROUP BY job_id
)
SELECT c.job_id, c.state, c.tasks,
       CASE WHEN c.state = 'running' THEN coalesce(r.done, 0) ELSE 0 END::BIGINT AS done,
       CASE WHEN c.state = 'running' THEN coalesce(r.total, 0) ELSE 0 END::BIGINT AS total,
       CASE WHEN c.state = 'queued' THEN c.tasks - coalesce(b.tasks, 0) ELSE 0 END::BIGINT
           AS ready,
       CASE WHEN c.state = 'queued' THEN b.retry_at END AS retry_at
FROM counted c
LEFT JOIN running r ON r.job_id = c.job_id
LEFT JOIN backing_off b ON b.job_id = c.job_id
