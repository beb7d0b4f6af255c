-- No row back: a concurrent submission stored this request id first.
-- $9: seconds from now to the deadline (NULL: none).
-- $12: the sweep's axes as JSON text (NULL: not a sweep). $13: the labels.
INSERT INTO jobs (id, name, owner, model, priority, max_attempts, task_count,
    request_id, deadline, tenant, traceparent, sweep, labels)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9), $10, $11,
    $12::JSONB, $13::JSONB)
ON CONFLICT (tenant, request_id) WHERE request_id IS NOT NULL DO NOTHING
RETURNING id, name, owner, model, priority, max_attempts, task_count, created_at, paused, deadline, tenant,
    labels, sweep::TEXT AS sweep
