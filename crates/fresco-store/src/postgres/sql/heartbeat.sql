-- Fenced: only the attempt holding the lease ($1 task, $2 worker, $3
-- attempt) extends it, by $4 seconds; progress never passes the steps.
UPDATE tasks SET lease_expires_at = now() + make_interval(secs => $4),
    progress_step = LEAST($5, steps)
WHERE id = $1 AND worker_id = $2 AND attempt = $3 AND state = 'running'
RETURNING lease_expires_at
