-- Milliseconds can tie: the rowid is the order of insertion.
SELECT id, name, owner, model, priority, max_attempts, task_count, created_at, paused, deadline, tenant,
       sweep
FROM jobs WHERE (?2 IS NULL OR owner = ?2) AND (?3 IS NULL OR tenant = ?3)
ORDER BY created_at DESC, rowid DESC LIMIT ?1
