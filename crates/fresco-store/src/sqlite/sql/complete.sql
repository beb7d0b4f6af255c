-- Fenced: only the attempt holding the lease records success. When every
-- earlier attempt is swept already, this one is too: a completed attempt
-- leaves no stray objects (its keys are all recorded).
UPDATE tasks SET state = 'succeeded', finished_at = ?4, lease_expires_at = NULL,
    progress_step = steps, attempt_ended_at = ?4,
    swept_through = CASE WHEN swept_through = attempt - 1 THEN attempt ELSE swept_through END
WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND state = 'running'
RETURNING id
