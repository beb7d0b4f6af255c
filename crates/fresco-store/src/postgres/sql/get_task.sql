SELECT id, job_id, idx, model, prompt, negative_prompt, seed, steps, width, height,
       guidance, n, sampler, schedule, state, attempt, worker_id, progress_step,
       lease_expires_at, errors, coordinates::TEXT AS coordinates, created_at, started_at, finished_at,
    weights_sha256, device_ms, worker_name, worker_device
FROM tasks WHERE id = $1
