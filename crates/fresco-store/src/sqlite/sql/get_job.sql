SELECT id, name, owner, model, priority, max_attempts, task_count, created_at, paused, deadline, tenant,
       labels, sweep
FROM jobs WHERE id = ?1
