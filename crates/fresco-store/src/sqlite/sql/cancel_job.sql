UPDATE tasks SET state = 'cancelled', finished_at = ?2, lease_expires_at = NULL
WHERE job_id = ?1 AND state IN ('queued', 'running')
RETURNING id, model, priority, seq
