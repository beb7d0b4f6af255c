-- No row back: a concurrent submission stored this request id first.
INSERT INTO jobs (id, name, owner, model, priority, max_attempts, task_count,
    request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (request_id) DO NOTHING
RETURNING id, name, owner, model, priority, max_attempts, task_count, created_at, paused
