-- No failure counted; `attempt` stays, the last fencing token.
UPDATE tasks SET state = 'queued', lease_expires_at = NULL
WHERE state = 'running'
RETURNING id, model, priority, seq
