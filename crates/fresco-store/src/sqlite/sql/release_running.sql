-- No failure counted; `attempt` stays, the last fencing token.
-- ?1: now.
UPDATE tasks SET state = 'queued', lease_expires_at = NULL, attempt_ended_at = ?1
WHERE state = 'running'
RETURNING id, model, priority, seq,
    (SELECT tenant FROM jobs WHERE jobs.id = tasks.job_id) AS tenant
