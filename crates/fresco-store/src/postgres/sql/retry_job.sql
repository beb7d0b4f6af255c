-- The failure count starts again; the error history stays.
UPDATE tasks SET state = 'queued', failures = 0, finished_at = NULL, not_before = NULL
WHERE job_id = $1 AND state = 'failed'
RETURNING id, model, priority, seq,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
