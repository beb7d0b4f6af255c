SELECT w.id, w.name, w.device, w.models, w.loaded_models, w.registered_at,
       w.last_seen_at, w.consecutive_failures, w.quarantined_at, w.probation,
       w.recent_errors, w.capabilities, w.draining_at,
       coalesce(array_agg(t.id ORDER BY t.started_at, t.id)
                FILTER (WHERE t.id IS NOT NULL), '{}') AS running
FROM workers w LEFT JOIN tasks t ON t.worker_id = w.id AND t.state = 'running'
GROUP BY w.id
ORDER BY w.last_seen_at DESC, w.id LIMIT $1
