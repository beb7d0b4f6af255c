UPDATE tasks SET state = 'cancelled', finished_at = now(), lease_expires_at = NULL
WHERE job_id = $1 AND state IN ('queued', 'running')
RETURNING id, model, priority, seq
