SELECT id, job_id, idx, model, prompt, negative_prompt, seed, steps, width, height,
       guidance, n, sampler, schedule, state, attempt, worker_id, progress_step,
       lease_expires_at, errors, coordinates, created_at, started_at, finished_at,
    weights_sha256, device_ms, worker_name, worker_device
FROM tasks
WHERE (?1 IS NULL OR job_id = ?1) AND (?2 IS NULL OR state = ?2) AND idx >= ?3
ORDER BY job_id, idx LIMIT ?4
