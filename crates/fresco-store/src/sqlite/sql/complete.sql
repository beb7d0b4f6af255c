-- Fenced: only the attempt holding the lease records success, with the
-- weights hash (?5) and device time (?6) it reported, and its worker's
-- name and device as they are now (for the manifest). When every earlier
-- attempt is swept already, this one is too: a completed attempt leaves
-- no stray objects (its keys are all recorded).
UPDATE tasks SET state = 'succeeded', finished_at = ?4, lease_expires_at = NULL,
    progress_step = steps, attempt_ended_at = ?4,
    swept_through = CASE WHEN swept_through = attempt - 1 THEN attempt ELSE swept_through END,
    weights_sha256 = ?5, device_ms = ?6,
    worker_name = (SELECT name FROM workers WHERE workers.id = ?2),
    worker_device = (SELECT device FROM workers WHERE workers.id = ?2)
WHERE id = ?1 AND worker_id = ?2 AND attempt = ?3 AND state = 'running'
RETURNING id
