-- Fenced: only the attempt holding the lease records success.
UPDATE tasks SET state = 'succeeded', finished_at = now(), lease_expires_at = NULL,
    progress_step = steps
WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND state = 'running'
RETURNING id
