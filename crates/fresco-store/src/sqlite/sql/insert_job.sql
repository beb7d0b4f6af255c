-- A request id the tenant stored already fails this with a unique
-- violation: a concurrent submission of the same request won. ?10: the
-- deadline in milliseconds since the Unix epoch (NULL: none). ?13: the
-- sweep's axes as JSON (NULL: not a sweep). ?14: the labels as JSON.
INSERT INTO jobs (id, name, owner, model, priority, max_attempts, task_count,
    created_at, request_id, deadline, tenant, traceparent, sweep, labels)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
