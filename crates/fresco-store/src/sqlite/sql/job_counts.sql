-- Per job and state, the task count (kept by the triggers of the
-- job_task_counts migration); over running tasks, steps done and steps
-- needed (a job's progress); over queued tasks, how many are past their
-- backoff at ?2 (now) and when the first of the others may run. Only
-- running tasks and tasks in backoff are read one by one.
-- ?1: the job ids as a JSON array.
WITH ids AS (
    SELECT value AS job_id FROM json_each(?1)
), running AS (
    SELECT t.job_id, sum(t.progress_step) AS done, sum(t.steps) AS total
    FROM tasks t JOIN ids ON ids.job_id = t.job_id
    WHERE t.state = 'running'
    GROUP BY t.job_id
), backing_off AS (
    SELECT t.job_id, count(*) AS tasks, min(t.not_before) AS retry_at
    FROM tasks t JOIN ids ON ids.job_id = t.job_id
    WHERE t.state = 'queued' AND t.not_before IS NOT NULL AND t.not_before > ?2
    GROUP BY t.job_id
)
SELECT c.job_id, c.state, c.tasks,
       CASE WHEN c.state = 'running' THEN coalesce(r.done, 0) ELSE 0 END AS done,
       CASE WHEN c.state = 'running' THEN coalesce(r.total, 0) ELSE 0 END AS total,
       CASE WHEN c.state = 'queued' THEN c.tasks - coalesce(b.tasks, 0) ELSE 0 END AS ready,
       CASE WHEN c.state = 'queued' THEN b.retry_at END AS retry_at
FROM job_task_counts c JOIN ids ON ids.job_id = c.job_id
LEFT JOIN running r ON r.job_id = c.job_id
LEFT JOIN backing_off b ON b.job_id = c.job_id
WHERE c.tasks <> 0
