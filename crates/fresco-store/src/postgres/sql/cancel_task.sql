UPDATE tasks SET state = 'cancelled', finished_at = now(), lease_expires_at = NULL,
    attempt_ended_at = CASE WHEN state = 'running' THEN now() ELSE attempt_ended_at END
WHERE id = $1 AND state IN ('queued', 'running')
RETURNING id, model, priority, seq,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
