SELECT id, name, owner, model, priority, max_attempts, task_count, created_at, paused, deadline, tenant,
       sweep::TEXT AS sweep
FROM jobs WHERE ($2::TEXT IS NULL OR owner = $2) AND ($3::TEXT IS NULL OR tenant = $3)
ORDER BY created_at DESC, id DESC LIMIT $1
